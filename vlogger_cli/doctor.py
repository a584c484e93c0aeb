"""`vlogger doctor`: check every system piece the pipeline needs and say how to fix what is missing.

Checks are cheap (no model is built); imports that are slow (torch) are done once.
Each check returns a `Check`; "missing" makes the command exit 1, "warn" does not.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass

from vlogger_cli.paths import anny_cache_dir, weights_dir

PIP_HINT = "run `make setup` (or see README: install torch==2.13.0 first, then `pip install -e .`)"


@dataclass(frozen=True)
class Check:
    name: str
    status: str      # ok | warn | missing
    detail: str
    fix: str = ""


def check_python() -> Check:
    ok = sys.version_info >= (3, 11)
    version = ".".join(map(str, sys.version_info[:3]))
    return Check("python", "ok" if ok else "missing", version, "" if ok else "use Python 3.11 or newer")


def check_espeak() -> Check:
    exe, lib = shutil.which("espeak-ng"), ctypes.util.find_library("espeak-ng")
    if exe and lib:
        return Check("espeak-ng (TTS)", "ok", exe)
    missing = " and ".join(n for n, v in (("espeak-ng program", exe), ("libespeak-ng library", lib)) if not v)
    return Check("espeak-ng (TTS)", "missing", f"{missing} not found", "apt-get install espeak-ng")


def check_opengl() -> Check:
    platform = os.environ.get("PYOPENGL_PLATFORM") or "auto (osmesa on CPU, egl with CUDA)"
    osmesa, egl = ctypes.util.find_library("OSMesa"), ctypes.util.find_library("EGL")
    if os.environ.get("PYOPENGL_PLATFORM") == "egl":
        ok, fix = bool(egl), "apt-get install libegl1"
    else:
        ok, fix = bool(osmesa), "apt-get install libosmesa6"
    libs = ", ".join(f"{n}: {'yes' if v else 'no'}" for n, v in (("OSMesa", osmesa), ("EGL", egl)))
    return Check("OpenGL offscreen", "ok" if ok else "missing", f"PYOPENGL_PLATFORM={platform}; {libs}", "" if ok else fix)


def check_ffmpeg() -> Check:
    try:
        import imageio_ffmpeg

        return Check("ffmpeg", "ok", imageio_ffmpeg.get_ffmpeg_exe())
    except Exception as exc:  # noqa: BLE001 - any failure here means "no usable ffmpeg"
        return Check("ffmpeg", "missing", f"{type(exc).__name__}: {exc}", "pip install imageio-ffmpeg")


def check_torch() -> Check:
    try:
        import torch
    except ImportError:
        return Check("torch", "missing", "not installed", PIP_HINT)
    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} device(s))"
    else:
        device = "cpu only (no CUDA device visible)"
    return Check("torch", "ok", f"{torch.__version__}; {device}")


PACKAGES = ("diffusers", "safetensors", "anny", "smplx", "pyrender", "mediapipe", "cv2", "librosa",
            "soundfile", "pyttsx3", "moviepy", "PIL", "yaml", "tqdm")


def check_packages() -> Check:
    missing = [name for name in PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        return Check("python packages", "missing", "not installed: " + ", ".join(missing), PIP_HINT)
    return Check("python packages", "ok", f"{len(PACKAGES)} present")


# Weight sets the pipeline loads: name -> (file under weights/, needed for every job?, fix).
WEIGHT_SETS: dict[str, tuple[str, bool, str]] = {
    "motion (stage 1)": ("motion/config.json", True,
                         "restore weights/motion/ from git, or train: see weights/motion/README.md"),
    "video (renderer: diffusion)": ("video/video_model.json", False,
                                    "train: `vlogger train video` (weights/README.md); renderer: warp works without"),
}


def check_weights() -> list[Check]:
    root = weights_dir()
    checks = []
    for name, (rel, required, fix) in WEIGHT_SETS.items():
        path = root / rel
        if path.exists():
            checks.append(Check(f"weights: {name}", "ok", str(path.parent)))
        else:
            checks.append(Check(f"weights: {name}", "missing" if required else "warn", f"{path} not found", fix))
    return checks


def check_anny_cache() -> Check:
    path = anny_cache_dir()
    if path.is_dir() and any(path.iterdir()):
        return Check("anny cache", "ok", str(path))
    return Check("anny cache", "warn", f"{path} is empty",
                 "nothing to do: it is built on first use (about 100 s and 1.2 GB, once)")


def run_checks() -> list[Check]:
    return [check_python(), check_espeak(), check_opengl(), check_ffmpeg(), check_torch(), check_packages(),
            *check_weights(), check_anny_cache()]


def format_table(checks: list[Check]) -> str:
    headers = ("check", "status", "detail", "fix")
    rows = [(c.name, c.status.upper() if c.status != "ok" else "ok", c.detail, c.fix) for c in checks]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers[:3])]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers[:3], widths)) + "  fix"]
    for row in rows:
        lines.append(("  ".join(v.ljust(w) for v, w in zip(row[:3], widths)) + "  " + row[3]).rstrip())
    return "\n".join(lines)
