"""Benchmark of stage 2 (temporal ControlNet diffusion + cascaded SR), random weights.

    .venv/bin/python bench/video.py [--cascade cpu-demo] [--frames 16] [--steps 10] [--sr-steps N]
                                    [--sr-overlap F] [--threads N] [--device cpu|cuda] [--repeat 5]
                                    [--skip-e2e] [--json OUT.json]

1. Wrapper overhead: one forward of VideoDiffusionModel (N frames: control branch + base + temporal
   layers, and with the temporal layers switched off) vs the plain diffusers calls of the same config
   (ControlNetModel then UNet2DConditionModel with its residuals). Target <= 1.10x.
2. Seconds per output frame for the base model, the SR model(s) and end to end (cascade), by
   temporal outpainting with the preset's window N and overlap, DPM-Solver++ `--steps`.
3. Denoiser frame-evaluations counted vs the ideal for N, N', steps (target: exactly ideal).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def timed(fn, repeat: int, sync) -> float:
    fn()  # warm-up (oneDNN / cuDNN kernel selection)
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def overhead(model, device, repeat: int, sync) -> dict:
    """Our forward vs plain diffusers ControlNet + UNet calls on the same tensors."""
    import torch

    c = model.config
    n = c.window
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, n, c.sample_channels, c.grid, c.grid, generator=gen).to(device)
    lowres = torch.randn(1, n, c.lowres_channels, c.grid, c.grid, generator=gen).to(device) if c.lowres_channels else None
    controls = torch.randn(1, n, c.control_channels, c.resolution, c.resolution, generator=gen).to(device)
    with torch.no_grad():
        tokens = model.encode_reference(torch.zeros(1, 3, c.resolution, c.resolution, device=device))
    t = torch.tensor(500, device=device)
    flat_x = x.flatten(0, 1) if lowres is None else torch.cat([x.flatten(0, 1), lowres.flatten(0, 1)], 1)
    flat_tokens, flat_controls, ts = tokens.expand(n, -1, -1).contiguous(), controls.flatten(0, 1), t.expand(n)

    @torch.no_grad()
    def plain():
        down, mid = model.controlnet(flat_x, ts, encoder_hidden_states=flat_tokens, controlnet_cond=flat_controls,
                                     return_dict=False)
        model.unet(flat_x, ts, encoder_hidden_states=flat_tokens, down_block_additional_residuals=down,
                   mid_block_additional_residual=mid, return_dict=False)

    @torch.no_grad()
    def ours(temporal=True):
        model(x, t, tokens, controls, lowres, temporal=temporal)

    # interleave the three measurements so drifting load on a shared machine hits them alike
    rounds = {"plain": [], "wrapper": [], "full": []}
    for _ in range(3):
        rounds["plain"].append(timed(plain, repeat, sync))
        rounds["wrapper"].append(timed(lambda: ours(False), repeat, sync))
        rounds["full"].append(timed(ours, repeat, sync))
    best = {k: min(v) for k, v in rounds.items()}
    return {"frames": n, "plain_s": round(best["plain"], 4), "wrapper_s": round(best["wrapper"], 4),
            "with_temporal_s": round(best["full"], 4),
            "wrapper_ratio": round(best["wrapper"] / best["plain"], 3),
            "with_temporal_ratio": round(best["full"] / best["plain"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cascade", default="cpu-demo", help="video.config.CASCADES name")
    ap.add_argument("--frames", type=int, default=16, help="video length for the per-frame timings")
    ap.add_argument("--steps", type=int, default=10, help="DPM-Solver++ steps of the base model")
    ap.add_argument("--sr-steps", type=int, default=None, help="steps of the SR models (default --steps)")
    ap.add_argument("--sr-overlap", type=float, default=None, help="overlap of the SR windows (default: preset's)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=5, help="timed forwards per overhead measurement")
    ap.add_argument("--skip-e2e", action="store_true", help="only the overhead measurement")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()

    import numpy as np
    import torch

    from vlogger_cli.video.config import CASCADES, preset
    from vlogger_cli.video.model import VideoDiffusionModel
    from vlogger_cli.video.outpaint import ideal_frame_evaluations
    from vlogger_cli.video.sr import cascade

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    base_name, sr_names = CASCADES[args.cascade]
    torch.manual_seed(0)
    models = [VideoDiffusionModel.from_config(preset(n)).to(device).eval() for n in (base_name, *sr_names)]
    report = {"cascade": args.cascade, "device": str(device), "threads": torch.get_num_threads(),
              "params": {n: m.num_parameters() for n, m in zip((base_name, *sr_names), models)}}
    print(f"device {device}, torch threads {torch.get_num_threads()}, cascade {args.cascade}: {base_name} + {', '.join(sr_names)}")

    report["overhead"] = {}
    for name, model in zip((base_name, *sr_names), models):
        o = overhead(model, device, args.repeat, sync)
        report["overhead"][name] = o
        print(f"[overhead] {name}: {o['frames']} frames  plain diffusers {o['plain_s']:.3f} s  ours {o['wrapper_s']:.3f} s "
              f"({o['wrapper_ratio']:.3f}x)  + temporal layers {o['with_temporal_s']:.3f} s ({o['with_temporal_ratio']:.3f}x)")

    if not args.skip_e2e:
        t = args.frames
        rng = np.random.default_rng(0)
        portrait = rng.integers(0, 256, (models[-1].config.resolution,) * 2 + (3,)).astype(np.uint8)
        controls = [torch.randn(t, m.config.control_channels, m.config.resolution, m.config.resolution) for m in models]
        settings = [dict(steps=args.steps, seed=0)] + [
            dict(steps=args.sr_steps or args.steps, seed=i + 1, overlap=args.sr_overlap) for i in range(len(sr_names))]
        seconds = [0.0] * len(models)
        for m in models:
            m.calls = m.frame_evaluations = 0
        t_all = time.perf_counter()
        last = time.perf_counter()
        for stage, _window in cascade(models, controls, portrait, t, settings=settings):
            sync()
            now = time.perf_counter()
            seconds[stage] += now - last
            last = now
        total = time.perf_counter() - t_all
        report["per_frame"] = {}
        for name, m, s, kw in zip((base_name, *sr_names), models, seconds, settings):
            overlap = m.config.overlap if kw.get("overlap") is None else kw["overlap"]
            ideal = ideal_frame_evaluations(t, m.config.window, int(round(overlap * m.config.window)), kw["steps"],
                                            strength=m.config.sample_strength)
            report["per_frame"][name] = {"seconds_per_frame": round(s / t, 3), "steps": kw["steps"],
                                         "window": m.config.window, "overlap": overlap,
                                         "frame_evaluations": m.frame_evaluations, "ideal": ideal}
            print(f"[{name}] {m.config.resolution}² window {m.config.window} overlap {overlap} steps {kw['steps']}: "
                  f"{s / t:.3f} s per output frame; denoiser frame-evaluations {m.frame_evaluations} (ideal {ideal})")
        report["end_to_end_seconds_per_frame"] = round(total / t, 3)
        print(f"[end to end] {t} frames at {models[-1].config.resolution}²: {total / t:.3f} s per output frame "
              f"({total:.1f} s in all; {t / 25:.2f} s of 25 fps video)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
