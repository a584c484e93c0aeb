import pytest
from click.testing import CliRunner

from vlogger_cli.cli import main
from vlogger_cli import doctor as doctor_mod


def test_doctor_reports_every_piece():
    result = CliRunner().invoke(main, ["doctor"])
    for name in ("python", "espeak-ng", "OpenGL", "ffmpeg", "torch", "packages", "weights", "anny cache"):
        assert name in result.output
    assert result.exit_code in (0, 1)


def test_doctor_without_espeak_names_the_apt_package(monkeypatch):
    monkeypatch.setattr(doctor_mod.shutil, "which", lambda name: None)
    real = doctor_mod.ctypes.util.find_library
    monkeypatch.setattr(doctor_mod.ctypes.util, "find_library", lambda n: None if "espeak" in n else real(n))
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 1
    assert "apt-get install espeak-ng" in result.output
    line = next(l for l in result.output.splitlines() if l.startswith("espeak-ng"))
    assert "MISSING" in line


def test_doctor_without_osmesa_names_the_apt_package(monkeypatch):
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    monkeypatch.setattr(doctor_mod.ctypes.util, "find_library", lambda n: None if n == "OSMesa" else "lib")
    check = doctor_mod.check_opengl()
    assert check.status == "missing" and check.fix == "apt-get install libosmesa6"


def test_doctor_names_missing_weights_and_how_to_make_them(tmp_path, monkeypatch):
    monkeypatch.setenv("VLOGGER_WEIGHTS_DIR", str(tmp_path))
    checks = {c.name: c for c in doctor_mod.check_weights()}
    motion = checks["weights: motion (stage 1)"]
    assert motion.status == "missing" and "weights/motion/README.md" in motion.fix
    video = checks["weights: video (renderer: diffusion)"]
    assert video.status == "warn" and "renderer: warp works without" in video.fix


SMI_HEADER = "| NVIDIA-SMI 570.86.15   Driver Version: 570.86.15   CUDA Version: 12.8 |\n"
SMI_QUERY = "0, NVIDIA H100 80GB HBM3, 80000, 81559\n1, NVIDIA H100 80GB HBM3, 1024, 81559\n"


def test_doctor_on_a_cpu_box_says_no_gpu_plainly():
    checks = doctor_mod.gpu_checks(None, None, doctor_mod.TorchCuda("2.13.0+cpu", None))
    assert [(c.name, c.status) for c in checks] == [("GPU", "ok")]
    assert checks[0].detail.startswith("no GPU: renders run on the CPU") and "CPU build" in checks[0].detail


def test_doctor_reports_each_gpu_cuda_driver_and_bf16():
    facts = doctor_mod.TorchCuda("2.13.0+cu128", "12.8", ("NVIDIA H100 80GB HBM3",) * 2, bf16=True)
    checks = {c.name: c for c in doctor_mod.gpu_checks(SMI_HEADER, SMI_QUERY, facts)}
    assert checks["GPU 0"].detail == "NVIDIA H100 80GB HBM3: 78.1 of 79.6 GiB free"
    assert checks["GPU 1"].detail.endswith("1.0 of 79.6 GiB free")
    cuda = checks["CUDA"]
    assert cuda.status == "ok"
    assert "torch 2.13.0+cu128, CUDA 12.8" in cuda.detail and "driver 570.86.15 (CUDA up to 12.8)" in cuda.detail
    assert "bf16 yes" in cuda.detail


def test_doctor_with_a_gpu_but_a_cpu_torch_warns_with_the_fix():
    checks = {c.name: c for c in doctor_mod.gpu_checks(SMI_HEADER, SMI_QUERY, doctor_mod.TorchCuda("2.13.0+cpu", None))}
    cuda = checks["CUDA"]
    assert cuda.status == "warn" and "torch cannot use the GPU" in cuda.detail
    assert "TORCH_INDEX=https://download.pytorch.org/whl/cu128 make setup" in cuda.fix
    assert "GPU 0" in checks  # the GPU is still listed


def test_doctor_without_nvidia_smi_takes_memory_from_torch():
    facts = doctor_mod.TorchCuda("2.13.0+cu128", "12.8", ("NVIDIA L4",), bf16=True, memory=((20 * 2**30, 24 * 2**30),))
    checks = {c.name: c for c in doctor_mod.gpu_checks(None, None, facts)}
    assert checks["GPU 0"].detail == "NVIDIA L4: 20.0 of 24.0 GiB free"
    assert checks["CUDA"].status == "ok" and "driver unknown" in checks["CUDA"].detail


def test_parse_gpu_query_skips_what_it_cannot_read():
    assert doctor_mod.parse_gpu_query(SMI_QUERY + "2, Broken GPU, [N/A], [N/A]\n") == [
        ("0", "NVIDIA H100 80GB HBM3", 80000 / 1024, 81559 / 1024), ("1", "NVIDIA H100 80GB HBM3", 1.0, 81559 / 1024)]


@pytest.mark.parametrize("cuda, platform", [(False, "osmesa"), (True, "egl")])
def test_doctor_names_the_renderer_backend_it_will_use(monkeypatch, cuda, platform):
    import torch

    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(doctor_mod.ctypes.util, "find_library", lambda n: None if n == "EGL" else "lib")
    check = doctor_mod.check_opengl()
    assert check.detail.startswith(f"renders with {platform} (")
    assert (check.status, check.fix.split(" (")[0]) == (("ok", "") if platform == "osmesa" else
                                                        ("missing", "apt-get install libegl1"))
    assert "PYOPENGL_PLATFORM" not in __import__("os").environ  # reporting does not choose


def test_doctor_reports_render_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert doctor_mod.check_threads().detail.startswith("3 torch thread(s) per render (OMP_NUM_THREADS), "
                                                         "OpenMP waiting passive")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert "OpenMP waiting active" in doctor_mod.check_threads().detail
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert "core(s) this process may use" in doctor_mod.check_threads().detail


def test_doctor_command_shows_gpu_and_threads_rows():
    result = CliRunner().invoke(main, ["doctor"])
    names = [line.split("  ")[0] for line in result.output.splitlines()]
    assert "render threads" in names and any(n == "GPU" or n.startswith("GPU ") for n in names)
