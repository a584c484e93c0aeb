"""`vlogger doctor`: a table of the system pieces, with the fix for each missing one."""

from __future__ import annotations

import sys

import click


@click.command()
def doctor() -> None:
    """Check espeak-ng, OpenGL, ffmpeg, torch and its device, packages, weights and caches.

    Exit code 0 when everything needed is present, 1 when something is missing.

    \b
    Example:
      vlogger doctor
    """
    from vlogger_cli.doctor import format_table, run_checks

    checks = run_checks()
    click.echo(format_table(checks))
    missing = [c for c in checks if c.status == "missing"]
    if missing:
        click.echo(f"\n{len(missing)} missing: " + "; ".join(f"{c.name}: {c.fix}" for c in missing))
    sys.exit(1 if missing else 0)
