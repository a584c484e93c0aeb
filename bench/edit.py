"""Video editing figures (issue 7): seconds per frame of each edit stage, peak memory, the acceptance measures.

    .venv/bin/python bench/edit.py [VIDEO] [--renderer warp|diffusion] [--frames A:B] [--steps N]

VIDEO defaults to ../shared/testdata/videos/videoretalking_face_4.mp4 (a real talking clip, not in the repo).
Runs `vlogger edit VIDEO --keep-lips --eyes closed` in a child process, then prints the per-stage seconds
(from the job's job.json) per video frame, the peak RSS, and the acceptance measures of the issue: PSNR of
the output against the source inside the lips (mediapipe's outer lip outline) and the eye aspect ratio of the
source and the output (the tracker's EAR: target a drop of >= 50 %). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("VLOGGER_CACHE_DIR", str(ROOT / ".cache"))
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
os.environ.setdefault("GLOG_minloglevel", "2")
DEFAULT_VIDEO = ROOT.parent / "shared" / "testdata" / "videos" / "videoretalking_face_4.mp4"
LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
PROBE = ("import resource, sys\nfrom vlogger_cli.cli import main\ntry:\n    main(sys.argv[1:])\n"
         "except SystemExit as e:\n    code = e.code\nprint('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
         " file=sys.stderr)\n")


def measures(source: Path, edited: Path, frames: range) -> dict:
    from PIL import Image, ImageDraw

    from vlogger_cli.body.landmarks import detect_landmarks
    from vlogger_cli.body.landmarks import eye_aspect_ratio
    from vlogger_cli.errors import JobError
    from vlogger_cli.media import read_frames

    errors, ear_src, ear_out = [], [], []
    for t, (a, b) in enumerate(zip(read_frames(source), read_frames(edited))):
        if t not in frames:
            continue
        face = detect_landmarks(a).face
        mask = Image.new("L", (a.shape[1], a.shape[0]), 0)
        ImageDraw.Draw(mask).polygon([tuple(face[i, :2]) for i in LIPS], fill=1)
        m = np.asarray(mask).astype(bool)
        b = b[: a.shape[0], : a.shape[1]]
        errors.append(np.mean((a[m].astype(np.float64) - b[m]) ** 2))
        ear_src.append(np.mean(eye_aspect_ratio(face)))
        try:
            ear_out.append(np.mean(eye_aspect_ratio(detect_landmarks(b).face)))
        except JobError:
            ear_out.append(0.0)
    psnr = 10 * math.log10(255 ** 2 / max(float(np.mean(errors)), 1e-10))
    return {"lips_psnr_db": round(psnr, 2), "ear_source": round(float(np.mean(ear_src)), 4),
            "ear_edited": round(float(np.mean(ear_out)), 4),
            "ear_drop": round(1 - float(np.mean(ear_out)) / float(np.mean(ear_src)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--renderer", choices=["warp", "diffusion"], default="diffusion")
    parser.add_argument("--frames", default=None, help="edit only A:B")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    if not args.video.is_file():
        sys.exit(f"{args.video}: not found; pass a talking video")
    from vlogger_cli.edit.options import parse_frames
    from vlogger_cli.media import probe_video

    with tempfile.TemporaryDirectory(prefix="vlogger-bench-edit-") as tmp:
        out = Path(tmp) / "edited.mp4"
        cmd = [sys.executable, "-c", PROBE, "edit", str(args.video), "-o", str(out), "--keep-lips", "--eyes", "closed",
               "--renderer", args.renderer, "--steps", str(args.steps), "--device", "cpu"]
        if args.frames:
            cmd += ["--frames", args.frames]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        rss = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("MAXRSS_KB")]
        if not out.is_file():
            sys.exit(f"edit failed:\n{proc.stderr[-3000:]}")
        state = json.loads((Path(tmp) / "edited.mp4.vlogger" / "edit" / "job.json").read_text())
        info = probe_video(args.video)
        n = info.num_frames
        first, last = (0, n) if not args.frames else parse_frames(args.frames)
        last = n if last is None else min(last, n)
        print(f"{args.video.name}: {n} frames {info.width}x{info.height} at {info.fps:g} fps; renderer "
              f"{args.renderer}, steps {args.steps}, edited frames {first}..{last - 1}")
        for stage, record in state["stages"].items():
            frames = (last - first) if stage == "frames" else n
            print(f"  {stage:9s} {record['seconds']:8.1f} s   {record['seconds'] / max(frames, 1):6.3f} s/frame")
        total = sum(r["seconds"] for r in state["stages"].values())
        print(f"  total     {total:8.1f} s   ({total / (n / info.fps):.1f} x the video's duration)")
        if rss:
            print(f"  peak RSS  {int(rss[0]) / 1024:.0f} MB")
        print("  acceptance:", json.dumps(measures(args.video, out, range(first, last))))


if __name__ == "__main__":
    main()
