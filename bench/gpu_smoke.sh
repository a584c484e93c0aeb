#!/usr/bin/env bash
# GPU smoke test of stage 2 (issue 5): run once on a CUDA machine, paste the printed figures into the
# closing note. Assumes the venv from `make setup` (.venv). Writes only under out/gpu_smoke/.
#
#   bash bench/gpu_smoke.sh            # everything (~5-10 min on one modern GPU)
#   QUICK=1 bash bench/gpu_smoke.sh    # skip the training smoke
#
# 1. device + versions
# 2. stage-2 benchmark at 512: gpu-512 cascade (128 base -> 256 -> 512 SR), random weights, wrapper
#    overhead vs plain diffusers, seconds per output frame per stage and end to end, evaluations vs ideal
# 3. training smoke on CUDA (bf16 autocast): toy dataset, a few steps of each phase, s/step; batch sizes
#    `auto` (measured per phase, sized to the card): the chosen batches, the figures and the real peak
# 4. `vlogger render` of the demo manifest at resolution 512 on CUDA (both stages + SR), stage timings
#    from each job.json (needs the stage-2 weights under weights/; reported, not fatal, when missing)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=out/gpu_smoke
mkdir -p "$OUT"
export VLOGGER_CACHE_DIR="${VLOGGER_CACHE_DIR:-$PWD/.cache}" ANNY_CACHE_DIR="${ANNY_CACHE_DIR:-$PWD/.cache/anny}"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}"

echo "== 1. device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || { echo "no nvidia-smi: not a GPU machine"; exit 1; }
$PY - <<'EOF'
import torch, diffusers
print(f"torch {torch.__version__} cuda {torch.version.cuda} available {torch.cuda.is_available()} "
      f"bf16 {torch.cuda.is_available() and torch.cuda.is_bf16_supported()}  diffusers {diffusers.__version__}")
assert torch.cuda.is_available(), "CUDA not available to torch"
EOF

echo "== 2. stage-2 benchmark, gpu-512 cascade"
SECONDS=0
$PY bench/video.py --cascade gpu-512 --device cuda --frames 48 --steps 25 --repeat 10 --json "$OUT/bench_gpu512.json"
echo "bench: ${SECONDS}s"
$PY bench/video.py --cascade gpu-256 --device cuda --frames 48 --steps 25 --repeat 10 --json "$OUT/bench_gpu256.json" \
  | grep -E "end to end|\] gpu"

if [ -z "${QUICK:-}" ]; then
  echo "== 3. training smoke (CUDA, bf16 autocast)"
  rm -rf "$OUT/data" "$OUT/train_video" "$OUT/train_sr"
  $PY -c "from vlogger_cli.train.video_data import write_synthetic_dataset as w; print(w('$OUT/data', clips=8, frames=32, size=256))"
  SECONDS=0
  $PY - "$OUT" <<'EOF'
import sys, time, json
from pathlib import Path
import torch
from vlogger_cli.train.video import TrainVideoConfig, train_video
from vlogger_cli.train.sr import TrainSRConfig, train_sr
out = Path(sys.argv[1])
common = dict(phases=["base", "control", "temporal"], phase_steps=[20, 20, 20], batch_size="auto", clip_batch_size="auto",
              log_every=10, val_every=60, ckpt_every=60, val_steps=10, device="cuda")
total = torch.cuda.mem_get_info()[1]
for name, cls, fn, preset in (("video", TrainVideoConfig, train_video, "gpu-base"), ("sr", TrainSRConfig, train_sr, "gpu-sr256")):
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    info = fn(out / "data", out / f"train_{name}", cls(preset=preset, **common),
              log=lambda s: print(" ", s) if "auto" in s else None)
    dt = time.time() - t0
    losses = [r["loss"] for r in info["history"] if "loss" in r]
    print(f"train {name} ({preset}): {info['steps']} steps in {dt:.1f} s ({dt / info['steps']:.3f} s/step incl. validation); "
          f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    print(f"  batch {info['batch_size']} frames / {info['clip_batch_size']} clips per step; peak "
          f"{torch.cuda.max_memory_allocated() / 2**30:.1f} of {total / 2**30:.1f} GiB; measured {info.get('batch_measured')}")
EOF
  echo "training: ${SECONDS}s"
fi

echo "== 4. render the demo manifest at 512 on CUDA"
$PY - "$OUT" <<'EOF'
import sys, yaml
from pathlib import Path
src = Path("manifests/demo.yaml")
m = yaml.safe_load(src.read_text())
m.setdefault("defaults", {})["resolution"] = 512
for job in m["jobs"]:
    for key in ("portrait", "audio", "video"):
        if key in job and not Path(job[key]).is_absolute():
            job[key] = str((src.parent / job[key]).resolve())
Path(sys.argv[1], "demo512.yaml").write_text(yaml.safe_dump(m, sort_keys=False))
EOF
SECONDS=0
.venv/bin/vlogger render "$OUT/demo512.yaml" --output "$OUT/render" --device cuda --force
echo "render exit code $? in ${SECONDS}s"
$PY - "$OUT/render" <<'EOF'
import json, sys
from pathlib import Path
for job in sorted(Path(sys.argv[1]).glob("*/job.json")):
    j = json.loads(job.read_text())
    stages = j.get("stages", {})
    timing = {k: (v.get("seconds") if isinstance(v, dict) else v) for k, v in stages.items()}
    print(f"{job.parent.name}: state {j.get('state')} {j.get('error') or ''} stages {timing}")
EOF
