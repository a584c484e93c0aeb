"""Set-up's torch choice (vlogger_cli/install_plan.py) in every branch, and the Makefile calling it, without a GPU."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from vlogger_cli import install_plan as plan

ROOT = Path(__file__).resolve().parent.parent
PIN = "torch==2.13.0"


def smi(driver: str = "570.86.15", cuda: str = "12.8") -> str:
    """The header of plain `nvidia-smi` as drivers print it."""
    return ("Tue Mar  4 10:00:00 2026\n+" + "-" * 89 + "+\n"
            f"| NVIDIA-SMI {driver}              Driver Version: {driver}      CUDA Version: {cuda}     |\n"
            "|   0  NVIDIA H100 80GB HBM3          On  |   00000000:19:00.0 Off |                    0 |\n")


def test_cpu_box_installs_the_pin_as_set_up_always_did():
    assert plan.torch_pip_args(PIN, None, None) == [PIN]
    assert plan.torch_pip_args(PIN, None, "") == [PIN]


@pytest.mark.parametrize("cuda, label", [("12.8", "cu128"), ("12.9", "cu128"), ("13.1", "cu130"),
                                         ("12.6", "cu126"), ("12.7", "cu126")])
def test_gpu_box_gets_the_newest_cuda_build_its_driver_runs(cuda, label):
    assert plan.torch_pip_args(PIN, smi(cuda=cuda), None) == [
        "--index-url", f"https://download.pytorch.org/whl/{label}", f"{PIN}+{label}"]


def test_driver_older_than_every_build_is_one_line_naming_the_fix():
    with pytest.raises(plan.PlanError, match=r"driver 535.104.05 supports CUDA up to 12.2.*upgrade the driver.*TORCH_INDEX="):
        plan.torch_pip_args(PIN, smi("535.104.05", "12.2"), None)


def test_unreadable_cuda_version_takes_the_newest_build():
    assert plan.torch_pip_args(PIN, "NVIDIA-SMI has no header here", None)[-1] == f"{PIN}+{plan.CUDA_BUILDS[0][0]}"


@pytest.mark.parametrize("index, pin", [
    ("https://download.pytorch.org/whl/cu126", f"{PIN}+cu126"),
    ("https://download.pytorch.org/whl/cpu/", f"{PIN}+cpu"),
    ("https://download.pytorch.org/whl/rocm6.4", f"{PIN}+rocm6.4"),
    ("https://mirror.example/simple", PIN),  # no build label in the URL: the pin as it is
])
def test_torch_index_overrides_detection_on_any_box(index, pin):
    for smi_text in (None, smi()):
        assert plan.torch_pip_args(PIN, smi_text, index) == ["--index-url", index.rstrip("/"), pin]


def test_a_malformed_pin_is_refused():
    with pytest.raises(plan.PlanError, match="TORCH_PIN"):
        plan.torch_pip_args("torch>=2", None, None)


def test_parse_driver():
    assert plan.parse_driver(smi("550.54.15", "12.4")) == plan.Driver("550.54.15", (12, 4))
    assert plan.parse_driver("garbage") == plan.Driver(None, None)


def test_setup_check_branches():
    assert plan.setup_check(None, "2.13.0+cpu", None, False) == (True, None)  # CPU box: nothing to say
    ok, line = plan.setup_check(smi(), "2.13.0+cu128", "12.8", True, ("NVIDIA H100",))
    assert ok and "CUDA ok" in line and "NVIDIA H100" in line and "570.86.15" in line
    ok, line = plan.setup_check(smi(), "2.13.0+cpu", None, False)
    assert not ok and "CPU build" in line and "TORCH_INDEX=https://download.pytorch.org/whl/cu128 make setup" in line
    ok, line = plan.setup_check(smi(cuda="13.0"), "2.13.0+cu128", "12.8", False)
    assert not ok and "cannot use the GPU" in line and "upgrade the driver" in line
    ok, line = plan.setup_check(smi(), None, None, False)
    assert not ok and "make setup" in line
    for _, text in (plan.setup_check(smi(), "2.13.0+cpu", None, False), plan.setup_check(smi(), "x", "12.8", False)):
        assert "\n" not in text


def fake_nvidia_smi(folder: Path, cuda: str) -> dict:
    """PATH with an `nvidia-smi` that prints a driver header: the Makefile's GPU branch without a GPU."""
    exe = folder / "nvidia-smi"
    exe.write_text(f"#!/bin/sh\ncat <<'EOF'\n{smi(cuda=cuda)}EOF\n")
    exe.chmod(0o755)
    return {"PATH": f"{folder}:{os.environ['PATH']}"}


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_makefile_rewrites_torch_args_only_when_they_change(tmp_path):
    venv = tmp_path / "venv"
    args_file = venv / ".torch-args"

    def make(env):
        return subprocess.run(["make", "-s", f"VENV={venv}", str(args_file)], cwd=ROOT, env=env,
                              capture_output=True, text=True)

    # Not TORCH_INDEX, nor the flags of a `make test` this runs under.
    cpu_env = {k: v for k, v in os.environ.items() if k not in ("TORCH_INDEX", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    assert make(cpu_env).returncode == 0
    assert args_file.read_text().split() == [PIN]
    before = args_file.stat().st_mtime_ns
    assert make(cpu_env).returncode == 0 and args_file.stat().st_mtime_ns == before  # unchanged: no reinstall

    assert make({**cpu_env, **fake_nvidia_smi(bin_dir, "12.8")}).returncode == 0
    assert args_file.read_text().split() == ["--index-url", "https://download.pytorch.org/whl/cu128", f"{PIN}+cu128"]

    old = make({**cpu_env, **fake_nvidia_smi(bin_dir, "11.4")})
    assert old.returncode != 0 and "upgrade the driver" in old.stderr


def test_check_command_is_silent_on_a_cpu_box_and_warns_on_a_gpu_box_with_a_cpu_torch(monkeypatch, capsys):
    monkeypatch.setattr(plan, "read_nvidia_smi", lambda *a, **k: None)
    assert plan.main(["check"]) == 0 and capsys.readouterr().out == ""
    monkeypatch.setattr(plan, "read_nvidia_smi", lambda *a, **k: smi())
    monkeypatch.setattr(plan, "_installed_torch", lambda: ("2.13.0+cpu", None, False, ()))
    assert plan.main(["check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("warning: an NVIDIA GPU is present but torch 2.13.0+cpu is a CPU build") and out.count("\n") == 1
