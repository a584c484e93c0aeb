"""Batch production figures (issues 6, 13): memory vs video length, resume cost, re-run cost, renderers sharing a box.

    .venv/bin/python bench/batch.py [--renderer warp|diffusion] [--skip rss,resume,rerun,renderers]
    .venv/bin/python bench/batch.py --skip rss,resume,rerun --renderer diffusion --steps 4   # (d) only (~5-10 min)

(a) peak RSS of one render process for 10 s and for 60 s of speech (target: ratio <= 1.2 —
    frames, controls and windows stream through disk, so memory must not grow with length);
(b) a job killed (SIGKILL) at ~90 % of its duration, then resumed: resume time / full time (target <= 0.2);
(c) re-running a finished manifest of 10 jobs (target < 5 s in all);
(d) a 4-job manifest rendered by one `vlogger render` alone (default threads: every core; and with --threads 1)
    vs two processes sharing the output root, each `--threads 1` (target: no more wall time than alone on a
    2-core box), vs the same two left at the default thread count, vs one `--workers 2`; the -spin setups
    show OpenMP spin-waiting (what renders did before they chose OMP_WAIT_POLICY=PASSIVE).
Uses the demo portrait and espeak-ng speech; prints figures, asserts nothing. Timing: run it un-niced, and
more than once on a shared machine (the load average is printed before each run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("VLOGGER_CACHE_DIR", str(ROOT / ".cache"))
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

SENTENCE = "This sentence is spoken again and again so that the benchmark has speech of the length it needs. "
RSS_PROBE = (
    "import resource, sys\n"
    "from vlogger_cli.cli import main\n"
    "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
    "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
)


def speech(folder: Path, seconds: float, text: str | None = None) -> Path:
    """A WAV of about `seconds` of espeak-ng speech (trimmed to length by the sentence count), or of `text`."""
    out = folder / f"speech_{int(seconds)}s.wav"
    words_per_second = 2.6
    text = text or SENTENCE * max(1, round(seconds * words_per_second / len(SENTENCE.split())))
    subprocess.run(["espeak-ng", "-v", "gmw/en-us", "-s", "160", "-w", str(out), text], check=True)
    return out


def manifest(folder: Path, jobs: dict[str, Path], renderer: str, name: str = "m.yaml", steps: int = 10,
             resolution: int = 256) -> Path:
    shutil.copy(ROOT / "manifests" / "media" / "astronaut.jpg", folder / "face.jpg")
    body = "".join(f"  - id: {i}\n    portrait: face.jpg\n    audio: {a.name}\n" for i, a in jobs.items())
    path = folder / name
    path.write_text(f"defaults:\n  renderer: {renderer}\n  resolution: {resolution}\n  steps: {steps}\njobs:\n" + body)
    return path


def render(path: Path, out: Path, *extra: str) -> tuple[float, int]:
    """(seconds, peak RSS in MB) of one render process."""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", RSS_PROBE, "render", str(path), "-o", str(out), *extra],
                          capture_output=True, text=True)
    seconds = time.monotonic() - t0
    rss = next((int(l.split()[1]) for l in proc.stderr.splitlines() if l.startswith("MAXRSS_KB")), 0)
    return seconds, rss // 1024


def bench_rss(folder: Path, renderer: str) -> None:
    results = {}
    for seconds in (10, 60):
        audio = speech(folder, seconds)
        path = manifest(folder, {f"len{seconds}": audio}, renderer, f"rss{seconds}.yaml")
        wall, rss = render(path, folder / f"out_rss{seconds}")
        results[seconds] = rss
        print(f"(a) {seconds:3d} s of speech: {wall:6.1f} s wall, peak RSS {rss} MB")
    print(f"(a) peak RSS 60 s / 10 s = {results[60] / max(results[10], 1):.2f} (target <= 1.2)")


def bench_resume(folder: Path, renderer: str) -> None:
    audio = speech(folder, 20)
    path = manifest(folder, {"resume": audio}, renderer, "resume.yaml")
    full, _ = render(path, folder / "out_full")
    out = folder / "out_killed"
    proc = subprocess.Popen([sys.executable, "-m", "vlogger_cli", "render", str(path), "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.9 * full)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed, _ = render(path, out)
    state = json.loads((out / "resume" / "job.json").read_text())
    print(f"(b) full job {full:.1f} s; killed at {0.9 * full:.1f} s; resume {resumed:.1f} s "
          f"-> ratio {resumed / full:.2f} (target <= 0.2); state {state['state']}")


def bench_rerun(folder: Path, renderer: str) -> None:
    audio = speech(folder, 2)
    path = manifest(folder, {f"job{i}": audio for i in range(10)}, renderer, "rerun.yaml")
    first, _ = render(path, folder / "out_rerun")
    again, _ = render(path, folder / "out_rerun")
    print(f"(c) 10 jobs: first run {first:.1f} s; re-run of the finished manifest {again:.2f} s (target < 5 s)")


# (d): the `vlogger render` processes started at once on one output root: (command-line options, environment).
# The -spin setups make OpenMP spin-wait (ACTIVE, close to libgomp's default, which renders used before they
# chose PASSIVE themselves: vlogger_cli/threads.py).
SPIN = {"OMP_WAIT_POLICY": "ACTIVE"}
RENDERER_SETUPS = {
    "alone": [([], {})],
    "alone-1-thread": [(["--threads", "1"], {})],
    "pair-1-thread": [(["--threads", "1"], {})] * 2,
    "pair-default": [([], {})] * 2,
    "workers-2": [(["--workers", "2"], {})],
    "alone-spin": [([], SPIN)],
    "pair-spin": [([], SPIN)] * 2,
}


def run_together(path: Path, out: Path, setups: list[tuple[list[str], dict]]) -> float:
    """Wall seconds until every one of the `vlogger render` processes (started at once) has finished."""
    t0 = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-m", "vlogger_cli", "render", str(path), "-o", str(out), *extra],
                              env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for extra, env in setups]
    for proc in procs:
        proc.wait()
    return time.monotonic() - t0


def bench_renderers(folder: Path, renderer: str, steps: int, resolution: int, setups: list[str]) -> None:
    audio = speech(folder, 1, "Good evening.")  # short jobs: ~1 s of speech
    path = manifest(folder, {f"job{i}": audio for i in range(4)}, renderer, "renderers.yaml", steps, resolution)
    walls = {}
    for name in setups:
        out = folder / f"out_{name}"
        load = os.getloadavg()[0]
        walls[name] = run_together(path, out, RENDERER_SETUPS[name])
        states = [json.loads((out / f"job{i}" / "job.json").read_text()) for i in range(4)]
        done = sum(s["state"] == "done" for s in states)
        stages = {k: sum(s["stages"].get(k, {}).get("seconds", 0) for s in states) for k in states[0]["stages"]}
        print(f"(d) {name:14s} {walls[name]:6.1f} s wall for 4 jobs ({done} done, {states[0]['frames']} frames each at "
              f"{resolution}²); load before {load:.1f}; stage seconds summed over the jobs: "
              + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
    if "alone" in walls:
        print("(d) wall / alone: " + ", ".join(f"{k} {v / walls['alone']:.2f}" for k, v in walls.items() if k != "alone")
              + " (target for pair-1-thread: <= 1.0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renderer", default="warp", choices=["warp", "diffusion"])
    parser.add_argument("--skip", default="", help="comma-separated: rss,resume,rerun,renderers")
    parser.add_argument("--steps", type=int, default=10, help="stage-2 steps of the (d) jobs")
    parser.add_argument("--resolution", type=int, default=128, choices=[128, 256, 512],
                        help="(d) jobs' resolution (128: the stage-2 base alone, the quickest diffusion render)")
    parser.add_argument("--setups", default="alone,pair-1-thread,pair-default,workers-2",
                        help=f"(d): which, comma-separated, of {','.join(RENDERER_SETUPS)}")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory(dir=ROOT / ".cache") as tmp:
        folder = Path(tmp)
        print(f"renderer {args.renderer}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        if "rss" not in skip:
            bench_rss(folder, args.renderer)
        if "resume" not in skip:
            bench_resume(folder, args.renderer)
        if "rerun" not in skip:
            bench_rerun(folder, args.renderer)
        if "renderers" not in skip:
            bench_renderers(folder, args.renderer, args.steps, args.resolution, args.setups.split(","))


if __name__ == "__main__":
    main()
