"""Set-up on a GPU box: which torch build `make setup` installs, and whether CUDA works afterwards.

Run by the Makefile with the venv's Python before the project is installed, so it uses the standard
library only (and `vlogger_cli/__init__.py`, which imports nothing):

    python -m vlogger_cli.install_plan torch-args torch==2.13.0   # pip arguments for torch, one line
    python -m vlogger_cli.install_plan check                      # after set-up: is CUDA usable?

The decision is a pure function of what `nvidia-smi` printed (None: no NVIDIA GPU, or no driver), the
`TORCH_INDEX` environment variable and the pin, so every branch is unit-tested without a GPU:

- no GPU, no TORCH_INDEX: the pin as it is (`torch==2.13.0`), exactly what set-up always did (CPU boxes, CI);
- TORCH_INDEX=URL: `--index-url URL` plus the pin, with the build's local label (`+cu128`, `+cpu`) when the
  URL names one, so pip replaces an installed build of another kind instead of keeping it;
- a GPU: the newest CUDA build of the pin that the driver runs (nvidia-smi's "CUDA Version" is the newest
  CUDA the driver supports), from PyTorch's own index, e.g. `--index-url .../whl/cu128 torch==2.13.0+cu128`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

TORCH_INDEX_BASE = "https://download.pytorch.org/whl"
# CUDA builds on PyTorch's index for the pinned release, newest first, with the CUDA version each needs
# from the driver. Follows the 2.9+ release matrix (cu126/cu128/cu130); a release that ships others is
# reached with TORCH_INDEX without changing this table.
CUDA_BUILDS: tuple[tuple[str, tuple[int, int]], ...] = (("cu130", (13, 0)), ("cu128", (12, 8)), ("cu126", (12, 6)))
_LABEL = re.compile(r"^(cu\d+|cpu|rocm[\d.]+|xpu)$")


class PlanError(Exception):
    """Set-up cannot pick a torch build; the message says what to do."""


@dataclass(frozen=True)
class Driver:
    version: str | None            # e.g. "550.54.15"
    cuda: tuple[int, int] | None   # newest CUDA the driver supports, e.g. (12, 4)


def read_nvidia_smi(*args: str, timeout: float = 20.0) -> str | None:
    """nvidia-smi's output, or None where there is no NVIDIA GPU (no program, or it fails: no driver)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def parse_driver(smi_text: str) -> Driver:
    """Driver and CUDA versions from the header of plain `nvidia-smi`:
    '| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4 |'."""
    driver = re.search(r"Driver Version:\s*([\d.]+)", smi_text)
    cuda = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", smi_text)
    return Driver(driver.group(1) if driver else None, (int(cuda.group(1)), int(cuda.group(2))) if cuda else None)


def cuda_build_for(cuda: tuple[int, int] | None) -> str | None:
    """The newest CUDA build the driver can run; the newest of all when the driver's CUDA is unknown;
    None when the driver is older than every build."""
    if cuda is None:
        return CUDA_BUILDS[0][0]
    return next((label for label, needs in CUDA_BUILDS if cuda >= needs), None)


def _pin_with_label(pin: str, label: str | None) -> str:
    if not re.fullmatch(r"torch==[\w.]+", pin):
        raise PlanError(f"TORCH_PIN {pin!r}: expected torch==VERSION (Makefile)")
    return f"{pin}+{label}" if label else pin


def torch_pip_args(pin: str, smi_text: str | None, torch_index: str | None) -> list[str]:
    """pip install arguments for torch (see the module docstring for the three cases)."""
    if torch_index:
        url = torch_index.rstrip("/")
        label = url.rsplit("/", 1)[-1]
        return ["--index-url", url, _pin_with_label(pin, label if _LABEL.match(label) else None)]
    if smi_text is None:
        return [_pin_with_label(pin, None)]
    driver = parse_driver(smi_text)
    label = cuda_build_for(driver.cuda)
    if label is None:
        oldest = ".".join(map(str, CUDA_BUILDS[-1][1]))
        raise PlanError(f"NVIDIA driver {driver.version} supports CUDA up to {'.'.join(map(str, driver.cuda))}, "
                        f"older than every CUDA build of {pin} (needs {oldest}+): upgrade the driver, or pick a build: "
                        f"TORCH_INDEX={TORCH_INDEX_BASE}/cpu make setup")
    return ["--index-url", f"{TORCH_INDEX_BASE}/{label}", _pin_with_label(pin, label)]


def setup_check(smi_text: str | None, torch_version: str | None, torch_cuda: str | None,
                cuda_available: bool, gpu_names: tuple[str, ...] = ()) -> tuple[bool, str | None]:
    """(ok, one line) after set-up: None where there is no GPU (nothing to say), else what works or what to do."""
    if smi_text is None:
        return True, None
    driver = parse_driver(smi_text)
    if torch_version is None:
        return False, "torch is not installed in the venv: run `make setup`"
    if cuda_available:
        return True, f"CUDA ok: torch {torch_version} (CUDA {torch_cuda}), driver {driver.version}, {', '.join(gpu_names)}"
    label = cuda_build_for(driver.cuda) or "cpu"
    reinstall = f"TORCH_INDEX={TORCH_INDEX_BASE}/{label} make setup"
    if torch_cuda is None:
        return False, (f"an NVIDIA GPU is present but torch {torch_version} is a CPU build: {reinstall} "
                       "(the render still works on the CPU)")
    cuda = ".".join(map(str, driver.cuda)) if driver.cuda else "unknown"
    return False, (f"torch {torch_version} (CUDA {torch_cuda}) cannot use the GPU (driver {driver.version} supports "
                   f"CUDA {cuda}; in a container, is it started with --gpus?): upgrade the driver or {reinstall}")


def _installed_torch() -> tuple[str | None, str | None, bool, tuple[str, ...]]:
    try:
        import torch
    except ImportError:
        return None, None, False, ()
    available = torch.cuda.is_available()
    names = tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) if available else ()
    return torch.__version__, torch.version.cuda, available, names


def main(argv: list[str]) -> int:
    import os

    try:
        if argv[:1] == ["torch-args"] and len(argv) == 2:
            print(" ".join(torch_pip_args(argv[1], read_nvidia_smi(), os.environ.get("TORCH_INDEX"))))
            return 0
        if argv == ["check"]:
            smi = read_nvidia_smi()
            if smi is None:  # CPU box: no torch import, nothing printed
                return 0
            ok, line = setup_check(smi, *_installed_torch())
            print(line if ok else f"warning: {line}")
            return 0
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("usage: python -m vlogger_cli.install_plan torch-args torch==VERSION | check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
