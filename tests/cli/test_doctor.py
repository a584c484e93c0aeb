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
