"""GPU-box figures of issue 13 (training at scale, latent 512², throughput), random weights, one short script.

    .venv/bin/python bench/train_scale.py [--out out/gpu_smoke/scale] [--device cuda|cpu] [--small] [--json F]

1. `bench/video.py --at-512`: output frames per second at 512² per route, GFLOP per frame, share of the
   measured matmul limit (full size on CUDA; `--small` widths / 8 for a CPU run).
2. Latent stage 2 on a Stable-Diffusion-1.5-shaped base (random weights, written once as an SD folder with
   save_pretrained: unet/ + vae/ + scheduler/): `vlogger train video --preset latent-512 --base SD --phases
   control,temporal` on 512² synthetic clips, bf16 on CUDA, under torchrun with one process per GPU —
   seconds per step of each phase and rank 0's peak GPU memory (log.jsonl).
3. The same few steps of the tiny motion model on 2 processes vs 1 (gloo on the CPU when the box has fewer
   than 2 GPUs, nccl otherwise): seconds per step of each, and the largest weight difference (same model).
Prints figures, asserts nothing; each step has its own time limit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def run(cmd: list[str], limit: int, **kw) -> tuple[int, str, float]:
    """(exit code, output tail, seconds) of one command under a time limit (124 when it ran out)."""
    t0 = time.time()
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=limit, **kw)
        code, out = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        text = exc.stdout or ""
        code, out = 124, text.decode(errors="replace") if isinstance(text, bytes) else text
    return code, out[-3000:], time.time() - t0


def torchrun(procs: int, *args: str) -> list[str]:
    return [PY, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs), "-m", "vlogger_cli",
            "train", *args]


def sd_folder(path: Path, small: bool) -> Path:
    """A random Stable-Diffusion-1.5-shaped folder (UNet 860 M, VAE 84 M parameters; widths / 8 with small)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    if (path / "unet" / "config.json").is_file():
        return path
    d = 8 if small else 1
    torch.manual_seed(0)
    UNet2DConditionModel(sample_size=64, block_out_channels=tuple(c // d for c in (320, 640, 1280, 1280)),
                         cross_attention_dim=768 // d, attention_head_dim=8 // d if small else 8,
                         norm_num_groups=32 // d).save_pretrained(path / "unet")
    AutoencoderKL(latent_channels=4, block_out_channels=tuple(c // d for c in (128, 256, 512, 512)), layers_per_block=2,
                  down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                  norm_num_groups=32 // d, sample_size=512).save_pretrained(path / "vae")
    DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                  prediction_type="epsilon").save_pretrained(path / "scheduler")
    return path


def phase_figures(run_dir: Path) -> dict:
    """Seconds per step and peak GPU memory per phase from a run's log.jsonl (one record per step)."""
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    out = {}
    for phase in dict.fromkeys(r["phase"] for r in log):
        rows = [r for r in log if r["phase"] == phase]
        steps = rows[-1]["step"] - rows[0]["step"]
        out[phase] = {"seconds_per_step": round((rows[-1]["seconds"] - rows[0]["seconds"]) / max(steps, 1), 3),
                      "gpu_peak_gb": rows[-1].get("gpu_peak_gb")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/gpu_smoke/scale")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="widths / 8 everywhere (a CPU run of the same steps)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    out = (ROOT / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    import torch

    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    report = {"device": args.device, "gpus": gpus, "small": args.small}

    # 1. throughput at 512²
    cmd = [PY, "bench/video.py", "--at-512", "--device", args.device, "--frames", "32", "--steps", "10",
           "--json", str(out / "at512.json")] + (["--small", "--frames", "8", "--steps", "2"] if args.small else [])
    code, text, seconds = run(cmd, 300)
    print(f"== 1. 512² throughput ({seconds:.0f} s, exit {code})")
    print("\n".join(line for line in text.splitlines() if line.startswith(("device", "[512"))) or text)
    if (out / "at512.json").is_file():
        report["at_512"] = json.loads((out / "at512.json").read_text())

    # 2. latent stage 2 on an SD-shaped base, one process per GPU
    from vlogger_cli.train.video_data import write_synthetic_dataset

    sd = sd_folder(out / "sd15-random", args.small)
    data = out / "data512"
    if not (data / "index.json").is_file():
        write_synthetic_dataset(data, clips=4, frames=16, size=512, seed=0, val_clips=1)
    procs = max(1, gpus)
    config = {"batch_size": 4 * procs, "clip_batch_size": procs, "clip_frames": 8 if args.small else 16,
              "log_every": 1, "val_every": 1000, "ckpt_every": 1000, "val_items": 1, "val_steps": 2,
              "mixed_precision": "bf16" if args.device == "cuda" else "fp32"}
    if args.small:
        config["model_overrides"] = {"conditioning_embedding_out_channels": [4, 8, 8, 8], "reference_channels": [8, 16],
                                     "reference_size": 64, "window": 8}
    (out / "train512.json").write_text(json.dumps(config))
    run_dir = out / "train512"
    subprocess.run(["rm", "-rf", str(run_dir)])
    cmd = torchrun(procs, "video", "--data", str(data), "--out", str(run_dir), "--preset", "latent-512", "--base",
                   str(sd), "--phases", "control,temporal", "--steps", "2,1" if args.small else "6,4", "--device", args.device,
                   "--config", str(out / "train512.json"))
    code, text, seconds = run(cmd, 420)
    print(f"== 2. latent-512 on an SD-1.5-shaped base, {procs} process(es), batch {config['batch_size']} frames / "
          f"{config['clip_batch_size']} clips of {config['clip_frames']} ({seconds:.0f} s, exit {code})")
    if (run_dir / "log.jsonl").is_file():
        report["train_latent_512"] = {"processes": procs, **phase_figures(run_dir)}
        for phase, f in report["train_latent_512"].items():
            if isinstance(f, dict):
                print(f"  {phase}: {f['seconds_per_step']} s per step, rank 0 peak GPU memory "
                      f"{f['gpu_peak_gb'] or 'n/a'} GiB")
    if code:
        print(text)

    # 3. DDP: 2 processes vs 1, the same steps of the tiny motion model
    motion = out / "motion-data"
    if not (motion / "index.json").is_file():
        run([PY, "-m", "vlogger_cli", "train", "synth-corpus", "--out", str(motion), "--clips", "4", "--seed", "1"], 300)
    (out / "motion.json").write_text(json.dumps({"preset": "tiny", "batch_size": 8, "window": 48, "warmup": 1,
                                                 "log_every": 1, "val_every": 1000, "ckpt_every": 10,
                                                 "model_overrides": {"attention_window": 16}}))
    ddp_device = "cuda" if gpus >= 2 else "cpu"
    figures = {}
    for n in (1, 2):
        run_dir = out / f"motion{n}"
        subprocess.run(["rm", "-rf", str(run_dir)])
        code, text, seconds = run(torchrun(n, "motion", "--data", str(motion), "--out", str(run_dir), "--config",
                                           str(out / "motion.json"), "--steps", "10", "--device", ddp_device), 240)
        if code:
            print(text)
            continue
        log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
        figures[n] = (log[-1]["seconds"] - log[0]["seconds"]) / (len(log) - 1)
    if len(figures) == 2:
        from safetensors.torch import load_file

        a, b = (load_file(str(out / f"motion{n}" / "checkpoints" / "step_00000010" / "model.safetensors")) for n in (1, 2))
        diff = max(float((a[k] - b[k]).abs().max()) for k in a)
        report["ddp_motion"] = {"device": ddp_device, "s_per_step_1": round(figures[1], 4),
                                "s_per_step_2": round(figures[2], 4), "max_weight_difference": diff}
        print(f"== 3. DDP ({ddp_device}, {'nccl' if ddp_device == 'cuda' else 'gloo'}): tiny motion model, 10 steps of "
              f"8 windows: {figures[1]:.4f} s/step on 1 process, {figures[2]:.4f} on 2; largest weight difference "
              f"{diff:.2e}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("VLOGGER_CACHE_DIR", str(ROOT / ".cache"))
    main()
