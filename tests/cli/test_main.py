import subprocess
import sys
import time

from click.testing import CliRunner

from vlogger_cli import __version__
from vlogger_cli.cli import main


def test_help_is_fast_and_does_not_import_torch():
    code = (
        "import sys, time; t=time.perf_counter(); from vlogger_cli.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit: pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', time.perf_counter()-t, file=sys.stderr)"
    )
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    assert "render" in proc.stdout and "doctor" in proc.stdout
    assert "NO-TORCH" in proc.stderr
    assert wall < 1.0, f"vlogger --help took {wall:.2f} s"


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_unknown_command_is_usage_error():
    result = CliRunner().invoke(main, ["paint"])
    assert result.exit_code == 2


def test_subcommand_help_has_example():
    for name in ("render", "doctor"):
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0 and "Example" in result.output
