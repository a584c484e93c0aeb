#!/usr/bin/env bash
# GPU smoke test (issues 5, 13): run once on a CUDA machine as one script, paste the printed figures into
# CHANGELOG and the closing note. Never part of CI. Assumes the venv from `make setup` (.venv). Writes only
# under out/gpu_smoke/. The whole script stops itself after GPU_SMOKE_TIMEOUT seconds (default 600), and
# every step has its own limit, so one hung step costs its limit, not the machine.
#
#   bash bench/gpu_smoke.sh                  # everything (~6-10 min on one modern GPU)
#   QUICK=1 bash bench/gpu_smoke.sh          # skip the training smoke
#   SMOKE_CPU=1 bash bench/gpu_smoke.sh      # on a CPU box: the parts that run anywhere (doctor, set-up plan,
#                                            # the CUDA tests (they skip), a tiny warp render and its report)
#
# 0. `vlogger doctor` (GPU, CUDA, driver, free memory, bf16, renderer backend, render threads) and set-up's plan
# 1. device + versions
# 2. stage-2 benchmark, random weights: gpu-256 and gpu-512 cascades — seconds per output frame per stage,
#    end to end, denoiser evaluations vs ideal, and the peak GPU memory of each
# 3. training smoke on CUDA (bf16 autocast): a few steps of each phase, s/step, `auto` batch sizes, real peak
# 4. `vlogger render` of the demo manifest on CUDA at 256 (committed weights) and at 512 when 512 weights
#    exist (weights/sr/512/): seconds per output frame per stage from each job.json, peak GPU memory
# 5. the tests that need CUDA (skipped on CPU machines)
# 6. training at scale, latent 512², throughput (bench/train_scale.py)
# 7. throughput on one GPU: 512² frames/s per route and preset with --batch-windows 1 / auto and --compile, and
#    `vlogger render --batch-windows / --precision / --compile` on 4 diffusion jobs (issue 13)
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${GPU_SMOKE_INNER:-}" ]; then  # the guard: re-run this script under one overall time limit
  export GPU_SMOKE_INNER=1
  exec timeout --kill-after=20 "${GPU_SMOKE_TIMEOUT:-600}" bash "$0" "$@"
fi
PY=.venv/bin/python
OUT=out/gpu_smoke
mkdir -p "$OUT"
export VLOGGER_CACHE_DIR="${VLOGGER_CACHE_DIR:-$PWD/.cache}" ANNY_CACHE_DIR="${ANNY_CACHE_DIR:-$PWD/.cache/anny}"
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.cache/numba}" MPLCONFIGDIR="${MPLCONFIGDIR:-$PWD/.cache/matplotlib}"
CPU="${SMOKE_CPU:-}"
DEVICE=cuda; [ -n "$CPU" ] && DEVICE=cpu

# step SECONDS CMD...: run one step under its own limit; a failure or a timeout is reported and the script goes on.
step() {
  local limit=$1; shift
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then echo "  (step timed out after ${limit}s: $*)"
  elif [ "$rc" != 0 ]; then echo "  (step exit code $rc: $*)"; fi
  return 0
}

# $PEAK SCRIPT|vlogger ARGS...: run a Python script or `vlogger` in one process, then print its peak GPU memory.
PEAK="$OUT/peak.py"
cat > "$PEAK" <<'EOF'
import runpy, sys
import torch
target, sys.argv = sys.argv[1], sys.argv[1:]
try:
    if target == "vlogger":
        from vlogger_cli.cli import main
        main(sys.argv[1:])
    else:
        runpy.run_path(target, run_name="__main__")
except SystemExit as exc:
    if exc.code:
        print(f"  exit code {exc.code}")
if torch.cuda.is_available():
    print(f"  peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB "
          f"(reserved {torch.cuda.max_memory_reserved() / 2**30:.2f} GiB)")
else:
    print("  peak GPU memory: n/a (no CUDA)")
EOF
# stage_report DIR: seconds per output frame per stage of every job under DIR (from job.json).
cat > "$OUT/stage_report.py" <<'EOF'
import json, sys
from pathlib import Path
for path in sorted(Path(sys.argv[1]).glob("*/job.json")):
    job = json.loads(path.read_text())
    frames = job.get("frames") or 0
    stages = {name: rec["seconds"] for name, rec in job.get("stages", {}).items() if isinstance(rec, dict)}
    per_frame = ", ".join(f"{name} {s / frames:.3f}" for name, s in stages.items()) if frames else "no frames"
    print(f"  {path.parent.name}: {job.get('state')} {job.get('error') or ''}; {frames} frames at "
          f"{job.get('config', {}).get('resolution')}²; s per output frame: {per_frame}; "
          f"total {sum(stages.values()) / max(frames, 1):.3f}")
EOF

# demo_manifest RESOLUTION [RENDERER]: the demo manifest at that resolution, paths made absolute.
demo_manifest() {
  $PY - "$OUT" "$@" <<'EOF'
import sys, yaml
from pathlib import Path
out, resolution, renderer = Path(sys.argv[1]), int(sys.argv[2]), (sys.argv[3] if len(sys.argv) > 3 else None)
src = Path("manifests/demo.yaml")
m = yaml.safe_load(src.read_text())
m.setdefault("defaults", {})["resolution"] = resolution
for job in m["jobs"]:
    for key in ("portrait", "audio", "video"):
        if key in job and not Path(job[key]).is_absolute():
            job[key] = str((src.parent / job[key]).resolve())
    if renderer:
        job["renderer"] = renderer
name = out / f"demo{resolution}{'-' + renderer if renderer else ''}.yaml"
name.write_text(yaml.safe_dump(m, sort_keys=False))
print(name)
EOF
}

echo "== 0. doctor and set-up plan"
step 60 .venv/bin/vlogger doctor
echo "  set-up would install: $($PY -m vlogger_cli.install_plan torch-args torch==2.13.0 2>&1)"
step 60 $PY -m vlogger_cli.install_plan check

echo "== 1. device"
if [ -z "$CPU" ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || { echo "no nvidia-smi: not a GPU machine (SMOKE_CPU=1 for the CPU parts)"; exit 1; }
fi
$PY - "$DEVICE" <<'EOF'
import sys, torch, diffusers
print(f"torch {torch.__version__} cuda {torch.version.cuda} available {torch.cuda.is_available()} "
      f"bf16 {torch.cuda.is_available() and torch.cuda.is_bf16_supported()}  diffusers {diffusers.__version__}")
assert sys.argv[1] == "cpu" or torch.cuda.is_available(), "CUDA not available to torch"
EOF
[ $? = 0 ] || exit 1

if [ -z "$CPU" ]; then
  echo "== 2. stage-2 benchmark (random weights): seconds per output frame per stage, peak memory"
  for cascade in gpu-256 gpu-512; do
    SECONDS=0
    step 150 $PY "$PEAK" bench/video.py --cascade "$cascade" --device cuda --frames 48 --steps 25 --repeat 10 \
      --json "$OUT/bench_$cascade.json"
    echo "  $cascade: ${SECONDS}s"
  done
fi

if [ -z "$CPU" ] && [ -z "${QUICK:-}" ]; then
  echo "== 3. training smoke (CUDA, bf16 autocast)"
  rm -rf "$OUT/data" "$OUT/train_video" "$OUT/train_sr"
  step 60 $PY -c "from vlogger_cli.train.video_data import write_synthetic_dataset as w; print(w('$OUT/data', clips=8, frames=32, size=256))"
  SECONDS=0
  step 200 $PY - "$OUT" <<'EOF'
import sys, time
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

echo "== 4. render the demo manifest on $DEVICE: seconds per output frame per stage, peak memory"
if [ -n "$CPU" ]; then
  # CPU: one short warp job at 128² through the same code paths (manifest, in-process render, report).
  m=$(demo_manifest 128 warp) && $PY - "$m" <<'EOF'
import sys, yaml
from pathlib import Path
m = yaml.safe_load(Path(sys.argv[1]).read_text())
m["jobs"] = [dict(m["jobs"][0], text="Hello from the smoke test.")]
Path(sys.argv[1]).write_text(yaml.safe_dump(m, sort_keys=False))
EOF
  SECONDS=0
  step 400 $PY "$PEAK" vlogger render "$m" --output "$OUT/render128-cpu" --device cpu --force
  echo "  render: ${SECONDS}s"
  $PY "$OUT/stage_report.py" "$OUT/render128-cpu"
else
  for res in 256 512; do
    if ! $PY -c "from vlogger_cli.video.render import cascade_folders; from vlogger_cli.paths import weights_dir; cascade_folders(weights_dir(), $res)" 2>"$OUT/weights$res.err"; then
      echo "  no stage-2 weights for $res²: $(tail -1 "$OUT/weights$res.err" | sed 's/^[A-Za-z_.]*Error: //'); render skipped"
      continue
    fi
    m=$(demo_manifest "$res")
    SECONDS=0
    step 200 $PY "$PEAK" vlogger render "$m" --output "$OUT/render$res" --device cuda --force
    echo "  render at $res²: ${SECONDS}s"
    $PY "$OUT/stage_report.py" "$OUT/render$res"
  done
fi

echo "== 5. tests that need CUDA (they skip on a CPU machine)"
mapfile -t cuda_tests < <(grep -rl --include='test_*.py' 'cuda.is_available()' tests | sort)
step 180 $PY -m pytest -q -rs "${cuda_tests[@]}"

# ---- issue 13, training at scale / latent 512² / throughput (bench/train_scale.py; appended by its author) ----
# 512² frames per second + share of the matmul limit per route, latent-512 training on a random SD-1.5-shaped
# base under torchrun (one process per GPU, bf16: s/step per phase, peak memory), DDP 2 vs 1 processes.
# Needs ~5 min beyond the sections above: raise GPU_SMOKE_TIMEOUT (e.g. 1200), or run it alone:
#   .venv/bin/python bench/train_scale.py --json out/gpu_smoke/scale.json
echo "== 6. training at scale, latent 512², throughput (issue 13)"
if [ -n "$CPU" ]; then
  step 900 $PY bench/train_scale.py --device cpu --small --json "$OUT/scale.json"
else
  step 900 $PY bench/train_scale.py --device cuda --json "$OUT/scale.json"
fi
# ---- issue 13, throughput on one GPU: --batch-windows, --precision, --compile ----
# 7a. bench/video.py --at-512: output frames/s at 512² per route and per preset, GFLOP per frame (torch's flop
#     counter) and the share of the card's measured matmul limit; batch 1 vs auto (8 videos, windows per call
#     measured from free memory), eager vs torch.compile (inductor).
# 7b. `vlogger render` of 4 diffusion jobs (2 short ones with SMOKE_CPU=1): the frames stage alone (everything
#     before it rendered once, then reset), timed as today (--batch-windows 1), batched (auto; 2 on a CPU),
#     batched + --compile (GPU only), and batched with --precision fp32; seconds per output frame and the largest
#     frame difference to the first run.
echo "== 7. throughput on one GPU: --batch-windows, --precision, --compile (issue 13)"
if [ -n "$CPU" ]; then
  step 600 $PY bench/video.py --at-512 --small --device cpu --frames 8 --steps 2 --routes gpu-512 \
    --batch-windows 1,2 --json "$OUT/at512_batch.json"
else
  step 300 $PY "$PEAK" bench/video.py --at-512 --device cuda --frames 32 --steps 10 --batch-windows 1,auto \
    --json "$OUT/at512_batch.json"
  step 300 $PY "$PEAK" bench/video.py --at-512 --device cuda --frames 32 --steps 10 --batch-windows auto --compile \
    --json "$OUT/at512_compile.json"
fi
RES=256; [ -n "$CPU" ] && RES=128
if $PY -c "from vlogger_cli.video.render import cascade_folders; from vlogger_cli.paths import weights_dir; cascade_folders(weights_dir(), $RES)" 2>/dev/null; then
  m=$(demo_manifest "$RES") && $PY - "$m" "$CPU" <<'EOF'
import sys, yaml
from pathlib import Path
m = yaml.safe_load(Path(sys.argv[1]).read_text())
job = next(j for j in m["jobs"] if j.get("renderer", "diffusion") == "diffusion")
if sys.argv[2]:  # CPU: two short jobs, 2 steps (the same code paths, minutes instead of hours)
    m["defaults"]["steps"] = 2
    m["jobs"] = [dict(job, id=f"b{i}", seed=i, text=f"Job {i} of the batch.") for i in range(2)]
else:
    m["jobs"] = [dict(job, id=f"b{i}", seed=i, text=f"Job {i} of the batch says a few words about the space station.")
                 for i in range(4)]
Path(sys.argv[1]).write_text(yaml.safe_dump(m, sort_keys=False))
EOF
  cat > "$OUT/reset_frames.py" <<'EOF'
# reset_frames.py SRC DST: copy a finished output root and undo its frames and export stages (they re-run).
import json, shutil, sys
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
shutil.rmtree(dst, ignore_errors=True)
shutil.copytree(src, dst, ignore=shutil.ignore_patterns("chunks", "frames.json", "*.mp4", "preview.png", ".lock"))
for state_path in dst.glob("*/job.json"):
    state = json.loads(state_path.read_text())
    for stage in ("frames", "export"):
        state["stages"].pop(stage, None)
    state["state"] = "interrupted"
    state_path.write_text(json.dumps(state))
EOF
  cat > "$OUT/frames_report.py" <<'EOF'
# frames_report.py BASELINE RUN...: each run's frames stage in seconds per output frame, and how far its frames
# are from the baseline's (the largest |difference| in grey levels over every job's frames).
import json, sys
from pathlib import Path
import numpy as np
from vlogger_cli.frame_store import FrameStore
def frames(root):
    out = {}
    for state_path in sorted(Path(root).glob("*/job.json")):
        job = state_path.parent
        info = json.loads((job / "frames.json").read_text())
        record = json.loads(state_path.read_text())["stages"]["frames"]
        out[job.name] = (record["seconds"], info["frames"],
                         FrameStore(job / info["folder"]).frames(0, info["frames"]).astype(int),
                         len(record.get("together", [job.name])))
    return out
base = frames(sys.argv[1])
for root in sys.argv[1:]:
    run = frames(root)
    # jobs rendered together (job.json: stages.frames.together) each record the group's time: count it once
    total_s = sum(v[0] / v[3] for v in run.values())
    total_f = sum(v[1] for v in run.values())
    diff = max(int(np.abs(run[j][2] - base[j][2]).max()) for j in run)
    print(f"  {Path(root).name}: frames stage {total_s:.1f} s for {total_f} frames = {total_s / total_f:.3f} s per "
          f"output frame ({total_f / total_s:.2f} frames/s); max difference to {Path(sys.argv[1]).name}: {diff}")
EOF
  SECONDS=0
  step 900 .venv/bin/vlogger render "$m" --output "$OUT/batch_inputs" --device "$DEVICE" --force
  echo "  the jobs, every stage, one at a time: ${SECONDS}s"
  BATCH=auto; [ -n "$CPU" ] && BATCH=2  # auto is 1 on a CPU
  runs=()
  for variant in "one:--batch-windows 1" "batched:--batch-windows $BATCH" \
                 "compiled:--batch-windows $BATCH --compile" "fp32:--batch-windows $BATCH --precision fp32"; do
    name=${variant%%:*}; flags=${variant#*:}
    [ -n "$CPU" ] && [ "$name" = compiled ] && continue  # inductor on a small CPU: minutes of compiling
    $PY "$OUT/reset_frames.py" "$OUT/batch_inputs" "$OUT/batch_$name"
    SECONDS=0
    # shellcheck disable=SC2086
    step 300 $PY "$PEAK" vlogger render "$m" --output "$OUT/batch_$name" --device "$DEVICE" $flags
    echo "  frames + export with $flags: ${SECONDS}s $(grep -h 'batch windows auto' "$OUT/batch_$name"/*/log.txt | head -1 | sed 's/.*frames: /; /')"
    runs+=("$OUT/batch_$name")
  done
  $PY "$OUT/frames_report.py" "${runs[@]}"
else
  echo "  no stage-2 weights for $RES²: render skipped"
fi
echo "== done"
