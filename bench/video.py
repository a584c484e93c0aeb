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

    .venv/bin/python bench/video.py --at-512 [--routes gpu-512,latent-512] [--small] [--frames 32] [--steps 10]
                                    [--device cuda] [--json OUT.json]

    .venv/bin/python bench/video.py --at-512 [--batch-windows 1,4,auto] [--precision auto|bf16|fp32]
                                    [--compile [BACKEND]] ...

4. (`--at-512`) Output frames per second at 512² per route (a CASCADES name: `gpu-512` = base -> 256 -> 512,
   `latent-512` = one 512² latent model on a Stable-Diffusion-1.5-shaped base + SD VAE) and per preset (stage)
   of it, random weights, and the share of the device's measured matmul FLOP/s the render reaches: FLOPs per
   output frame counted by torch.utils.flop_counter (FlopCounterMode) over one eager render of the same videos
   (denoisers, VAE), times output frames per second, over the best large-matmul FLOP/s measured here in the
   arithmetic the denoiser runs in (bf16 with --precision auto on CUDA / bf16; fp32 otherwise). Each
   --batch-windows value N renders N videos of --frames frames together through the renderer's own batching
   (video/batching.py: window k of every video in one denoiser call, windows saved to frame stores as a render
   does); `auto` is what `vlogger render --batch-windows auto` does (8 videos on CUDA, windows per call measured
   from free memory; 1 on the CPU). --compile times after a warm-up render that compiles.
   `--small`: every width / 8, for a CPU run of the same structure (the GPU box runs the full size).
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


def matmul_flops(device, dtype, seconds: float = 2.0) -> float:
    """Best FLOP/s of a large square matmul on `device` (the practical limit the render is compared with)."""
    import torch

    n = 8192 if device.type == "cuda" else 1024
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    best, t_end = float("inf"), time.perf_counter() + seconds
    a @ b
    while time.perf_counter() < t_end:
        sync()
        t0 = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def shrink(config, factor: int):
    """The same model structure with every width / factor (multiples of 4; a pixel model's first level stays at
    least as wide as a grid cell's channels)."""
    def w(c, low=4):
        return max(low, -(-c // factor // 4) * 4)

    cell = -(-config.sample_channels // 4) * 4
    blocks = tuple(w(c, cell if i == 0 and config.space == "pixel" else 4)
                   for i, c in enumerate(config.block_out_channels))
    return config.replace(block_out_channels=blocks, attention_heads=2, norm_num_groups=4,
                          cross_attention_dim=w(config.cross_attention_dim),
                          conditioning_embedding_out_channels=tuple(w(c) for c in config.conditioning_embedding_out_channels),
                          reference_channels=tuple(w(c) for c in config.reference_channels))


def route_models(name: str, small: bool, device):
    """Random-weight models of a 512² route: a pixel cascade, or a latent model on an SD-1.5-shaped base + SD VAE."""
    import torch
    from diffusers import AutoencoderKL

    from vlogger_cli.video.config import CASCADES, preset
    from vlogger_cli.video.model import VideoDiffusionModel

    torch.manual_seed(0)
    base_name, sr_names = CASCADES[name]
    models = []
    for preset_name in (base_name, *sr_names):
        config = shrink(preset(preset_name), 8) if small else preset(preset_name)
        vae = None
        if config.space == "latent":  # Stable Diffusion's AutoencoderKL (84 M parameters), one frame at a time
            widths = tuple(c // 8 for c in (128, 256, 512, 512)) if small else (128, 256, 512, 512)
            vae = AutoencoderKL(latent_channels=config.vae_channels, block_out_channels=widths, layers_per_block=2,
                                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                                norm_num_groups=4 if small else 32, sample_size=512)
            vae.enable_slicing()
        models.append(VideoDiffusionModel.from_config(config, vae=vae).to(device).eval())
    return models


def at_512(args) -> dict:
    """Output frames per second at 512² per route and per preset (stage), FLOPs per frame and the share of the
    device's measured matmul limit, for each --batch-windows value (N videos rendered together)."""
    import tempfile

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from vlogger_cli.video.batching import parse_batch_windows
    from vlogger_cli.video.compile import compile_denoiser, compiled_backend
    from vlogger_cli.video.config import CASCADES

    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    autocast = {"auto": None, "bf16": True, "fp32": False}[args.precision]
    bf16 = autocast if autocast is not None else device.type == "cuda"
    dtype = torch.bfloat16 if bf16 else torch.float32  # the limit in the arithmetic the denoiser runs in
    peak = matmul_flops(device, dtype)
    batches = [parse_batch_windows(b) for b in str(args.batch_windows).split(",")]
    report = {"device": str(device), "device_name": _device_name(device), "threads": torch.get_num_threads(),
              "small": args.small, "frames": args.frames, "steps": args.steps, "precision": args.precision,
              "denoiser_dtype": str(dtype).removeprefix("torch."), "compile": args.compile,
              "matmul_dtype": str(dtype).removeprefix("torch."), "matmul_flops": peak, "routes": {}}
    print(f"device {report['device_name']}: large {report['matmul_dtype']} matmul {peak / 1e12:.3f} TFLOP/s "
          f"(the limit below); denoiser {report['denoiser_dtype']}, compile {args.compile or 'off'}")
    for name in args.routes.split(","):
        models = route_models(name, args.small, device)
        presets = [CASCADES[name][0], *CASCADES[name][1]]
        route = {"presets": presets, "params": sum(sum(m.num_parameters().values()) for m in models), "batches": {}}
        with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
            # FLOPs per output frame, per stage, counted on one eager render (also the warm-up: kernel selection)
            flops = [0.0] * len(models)

            def count(stage, model, run_stage):
                with FlopCounterMode(display=False) as counter:
                    run_stage()
                flops[stage] += counter.get_total_flops()

            render_videos(models, 1, args, device, autocast, f"{tmp}/flops", on_stage=count)
            per_frame = [f / args.frames for f in flops]
            if args.compile:
                for model in models:
                    compile_denoiser(model, args.compile, warn=print)
            for batch in batches:
                videos = _videos(batch, device, args)
                if args.compile:  # compilation (and its recompilations for this batch's shapes) outside the timing
                    render_videos(models, videos, args, device, autocast, f"{tmp}/warm{batch}", batch=batch)
                seconds = [0.0] * len(models)

                def timed(stage, model, run_stage):
                    sync()
                    t0 = time.perf_counter()
                    run_stage()
                    sync()
                    seconds[stage] += time.perf_counter() - t0

                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                render_videos(models, videos, args, device, autocast, f"{tmp}/timed{batch}", batch=batch,
                              on_stage=timed)
                frames_out = videos * args.frames
                total = sum(seconds)
                figures = _figures(frames_out, total, sum(per_frame), peak)
                figures.update(videos=videos, stages={})
                for preset_name, model, s, f in zip(presets, models, seconds, per_frame):
                    figures["stages"][preset_name] = {"resolution": model.config.resolution,
                                                      **_figures(frames_out, s, f, peak)}
                if device.type == "cuda":
                    figures["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
                if args.compile:
                    figures["compiled"] = [compiled_backend(m) for m in models]
                route["batches"][str(batch)] = figures
                print(f"[512² {name}{' small' if args.small else ''} batch {batch} ({videos} video(s) x {args.frames} "
                      f"frames)] {figures['frames_per_second']:.3f} frames/s ({figures['seconds_per_frame']:.3f} s per "
                      f"frame), {figures['gflop_per_frame']:.1f} GFLOP per frame -> {figures['achieved_tflops']:.3f} "
                      f"TFLOP/s = {100 * figures['share_of_matmul_limit']:.1f} % of the matmul limit; "
                      f"{route['params'] / 1e6:.1f} M parameters")
                for preset_name, st in figures["stages"].items():
                    print(f"    {preset_name} ({st['resolution']}²): {st['frames_per_second']:.3f} frames/s, "
                          f"{st['gflop_per_frame']:.1f} GFLOP per frame, {100 * st['share_of_matmul_limit']:.1f} % of "
                          f"the limit")
        first = route["batches"][str(batches[0])]
        route.update({k: v for k, v in first.items() if k not in ("stages", "videos")})  # the figures as before
        report["routes"][name] = route
        del models
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return report


def _device_name(device) -> str:
    import platform

    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _videos(batch, device, args) -> int:
    """Videos rendered together for a --batch-windows value: N, or for auto the runner's (8 on CUDA, 1 on CPU)."""
    if batch != "auto":
        return int(batch)
    return 8 if device.type == "cuda" else 1


def _figures(frames: int, seconds: float, flop_per_frame: float, peak: float) -> dict:
    fps = frames / seconds if seconds else float("nan")
    return {"frames_per_second": round(fps, 4), "seconds_per_frame": round(seconds / frames, 4),
            "gflop_per_frame": round(flop_per_frame / 1e9, 2), "achieved_tflops": round(flop_per_frame * fps / 1e12, 4),
            "share_of_matmul_limit": round(flop_per_frame * fps / peak, 4)}


def render_videos(models, videos: int, args, device, autocast, folder: str, *, batch=1, on_stage=None) -> None:
    """`videos` random-control videos of args.frames frames through the cascade, stage-major, window k of the
    videos in one batch of up to `batch` (video/batching.py, as `vlogger render --batch-windows`); each stage's
    windows saved to frame stores under `folder` as a render does. on_stage(stage, model, run): wraps each
    stage's run (timing, FLOP counting)."""
    import torch

    from vlogger_cli.video.batching import StageTask, render_together, window_limit
    from vlogger_cli.video.chunks import stage_run, window_store

    def controls(c, video):
        return lambda s, e: torch.randn(e - s, c.control_channels, c.resolution, c.resolution,
                                        generator=torch.Generator().manual_seed(1000 * video + s))

    portraits = [torch.rand(3, 512, 512, generator=torch.Generator().manual_seed(v)) * 2 - 1 for v in range(videos)]
    for i, model in enumerate(models):
        tasks = []
        for v in range(videos):
            store = window_store(f"{folder}/v{v}/s{i}")
            below = window_store(f"{folder}/v{v}/s{i - 1}") if i else None
            run = stage_run(model, store, controls(model.config, v), portraits[v], args.frames, lowres=below,
                            steps=args.steps, seed=i + 10 * v, device=device, autocast=autocast)
            tasks.append(StageTask(run, store))
        limit = window_limit(batch, device)

        def run_stage(tasks=tasks, model=model, limit=limit):
            render_together(model, tasks, limit=limit)
            errors = [t.error for t in tasks if t.error is not None]
            if errors:
                raise errors[0]

        if on_stage is None:
            run_stage()
        else:
            on_stage(i, model, run_stage)


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
    ap.add_argument("--at-512", action="store_true", help="frames per second at 512² per route and FLOP use")
    ap.add_argument("--routes", default="gpu-512,latent-512", help="--at-512: CASCADES names ending at 512²")
    ap.add_argument("--small", action="store_true", help="--at-512: every width / 8 (a CPU run)")
    ap.add_argument("--batch-windows", default="1", help="--at-512: comma-separated N|auto, each timed: N videos "
                                                         "rendered together, window k of each in one batch")
    ap.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                    help="--at-512: the denoiser's arithmetic (auto: bf16 on CUDA, fp32 on the CPU)")
    ap.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND",
                    help="--at-512: torch.compile the denoisers (default backend inductor); timed after a warm-up render")
    args = ap.parse_args()
    if args.at_512:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        report = at_512(args)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        return

    import numpy as np
    import torch

    from vlogger_cli.video.config import CASCADES, preset
    from vlogger_cli.video.model import VideoDiffusionModel
    from vlogger_cli.video.outpaint import ideal_frame_evaluations
    from vlogger_cli.video.sampling import DEFAULT_SAMPLER, solver_steps
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
            steps = solver_steps(m.config, kw["steps"], kw.get("sampler", DEFAULT_SAMPLER))  # what the model ran
            ideal = ideal_frame_evaluations(t, m.config.window, int(round(overlap * m.config.window)), steps,
                                            strength=m.config.sample_strength)
            report["per_frame"][name] = {"seconds_per_frame": round(s / t, 3), "steps": steps,
                                         "window": m.config.window, "overlap": overlap,
                                         "frame_evaluations": m.frame_evaluations, "ideal": ideal}
            print(f"[{name}] {m.config.resolution}² window {m.config.window} overlap {overlap} steps {steps}: "
                  f"{s / t:.3f} s per output frame; denoiser frame-evaluations {m.frame_evaluations} (ideal {ideal})")
        report["end_to_end_seconds_per_frame"] = round(total / t, 3)
        print(f"[end to end] {t} frames at {models[-1].config.resolution}²: {total / t:.3f} s per output frame "
              f"({total:.1f} s in all; {t / 25:.2f} s of 25 fps video)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
