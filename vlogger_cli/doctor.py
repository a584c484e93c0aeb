"""`vlogger doctor`: check every system piece the pipeline needs and say how to fix what is missing.

Checks are cheap (no model is built); imports that are slow (torch) are done once.
Each check returns a `Check`; "missing" makes the command exit 1, "warn" does not.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
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
    """The renderer backend pyrender will use (vlogger_cli/gl.py chooses it) and whether its library is there."""
    from vlogger_cli.gl import gl_platform

    platform, why = gl_platform()
    osmesa, egl = ctypes.util.find_library("OSMesa"), ctypes.util.find_library("EGL")
    if platform == "egl":
        ok, fix = bool(egl), "apt-get install libegl1 (and the NVIDIA driver's EGL library on a GPU box)"
    else:
        ok, fix = bool(osmesa), "apt-get install libosmesa6"
    libs = ", ".join(f"{n}: {'yes' if v else 'no'}" for n, v in (("OSMesa", osmesa), ("EGL", egl)))
    return Check("OpenGL offscreen", "ok" if ok else "missing", f"renders with {platform} ({why}); {libs}",
                 "" if ok else fix)


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


@dataclass(frozen=True)
class TorchCuda:
    """What torch says about CUDA (`torch_cuda`)."""
    version: str
    cuda: str | None                   # torch.version.cuda: None for a CPU build
    devices: tuple[str, ...] = ()      # names of the CUDA devices torch can use
    bf16: bool = False
    memory: tuple[tuple[int, int], ...] = ()  # (free, total) bytes per device; read only without nvidia-smi


def torch_cuda(with_memory: bool) -> TorchCuda | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return TorchCuda(torch.__version__, torch.version.cuda)
    count = torch.cuda.device_count()
    return TorchCuda(torch.__version__, torch.version.cuda, tuple(torch.cuda.get_device_name(i) for i in range(count)),
                     torch.cuda.is_bf16_supported(),
                     tuple(torch.cuda.mem_get_info(i) for i in range(count)) if with_memory else ())


def parse_gpu_query(text: str) -> list[tuple[str, str, float, float]]:
    """(index, name, free GiB, total GiB) per GPU from
    `nvidia-smi --query-gpu=index,name,memory.free,memory.total --format=csv,noheader,nounits` (MiB)."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4 and parts[2].isdigit() and parts[3].isdigit():
            gpus.append((parts[0], parts[1], int(parts[2]) / 1024, int(parts[3]) / 1024))
    return gpus


def gpu_checks(smi_header: str | None, smi_query: str | None, facts: TorchCuda | None) -> list[Check]:
    """GPU rows of the report: each GPU with its free memory, then CUDA (torch's build, the driver, bf16).
    No GPU is not a failure: renders run on the CPU."""
    from vlogger_cli.install_plan import parse_driver, setup_check

    usable = facts is not None and bool(facts.devices)
    if smi_header is None and not usable:
        build = f"; torch {facts.version} is a {'CUDA ' + facts.cuda if facts.cuda else 'CPU'} build" if facts else ""
        return [Check("GPU", "ok", f"no GPU: renders run on the CPU (no working nvidia-smi{build})")]
    rows = []
    gpus = parse_gpu_query(smi_query or "")
    if not gpus and usable:  # torch sees GPUs that nvidia-smi does not list (e.g. a container without the tool)
        gpus = [(str(i), name, free / 2**30, total / 2**30) for i, (name, (free, total)) in
                enumerate(zip(facts.devices, facts.memory))]
    for index, name, free, total in gpus:
        rows.append(Check(f"GPU {index}", "ok", f"{name}: {free:.1f} of {total:.1f} GiB free"))
    driver = parse_driver(smi_header or "")
    driver_text = (f"driver {driver.version} (CUDA up to {'.'.join(map(str, driver.cuda))})"
                   if driver.version and driver.cuda else "driver unknown (no nvidia-smi)")
    if facts is None:
        return rows + [Check("CUDA", "missing", f"torch not installed; {driver_text}", PIP_HINT)]
    detail = f"torch {facts.version}, CUDA {facts.cuda or 'none (CPU build)'}; {driver_text}"
    if usable:
        visible = f"; torch sees {len(facts.devices)} device(s)" if len(facts.devices) != len(gpus) else ""
        return rows + [Check("CUDA", "ok", f"{detail}; bf16 {'yes' if facts.bf16 else 'no'}{visible}")]
    _, fix = setup_check(smi_header or "", facts.version, facts.cuda, False)
    return rows + [Check("CUDA", "warn", detail + "; torch cannot use the GPU: renders run on the CPU", fix or "")]


def check_gpus() -> list[Check]:
    from vlogger_cli.install_plan import read_nvidia_smi

    header = read_nvidia_smi()
    query = read_nvidia_smi("--query-gpu=index,name,memory.free,memory.total", "--format=csv,noheader,nounits") \
        if header is not None else None
    return gpu_checks(header, query, torch_cuda(with_memory=query is None))


def check_threads() -> Check:
    """How many torch threads a render uses here (vlogger_cli/threads.py)."""
    from vlogger_cli.threads import available_cores, passive_openmp_env, thread_choice

    n, why = thread_choice(available_cores())
    wait = passive_openmp_env()["OMP_WAIT_POLICY"]
    return Check("render threads", "ok", f"{n} torch thread(s) per render ({why}), OpenMP waiting {wait.lower()}; "
                                         "--threads N or --workers N change it")


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
    return [check_python(), check_espeak(), check_opengl(), check_ffmpeg(), check_torch(), *check_gpus(),
            check_threads(), check_packages(), *check_weights(), check_anny_cache()]


def format_table(checks: list[Check]) -> str:
    headers = ("check", "status", "detail", "fix")
    rows = [(c.name, c.status.upper() if c.status != "ok" else "ok", c.detail, c.fix) for c in checks]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers[:3])]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers[:3], widths)) + "  fix"]
    for row in rows:
        lines.append(("  ".join(v.ljust(w) for v, w in zip(row[:3], widths)) + "  " + row[3]).rstrip())
    return "\n".join(lines)
