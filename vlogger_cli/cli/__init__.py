"""The `vlogger` command: a click group whose subcommands are imported only when used.

`vlogger --help` and `vlogger --version` must answer instantly, so nothing here (or in the
subcommand listing) imports torch, diffusers or the stages.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

from vlogger_cli import __version__

# name -> "module:attribute"; a command is listed here only once it works (no placeholders).
SUBCOMMANDS = {
    "render": ("vlogger_cli.cli.render:render", "Render the jobs of a manifest into talking videos."),
    "edit": ("vlogger_cli.cli.edit:edit", "Edit a talking video: eyes, expression, head, new speech; keep the lips."),
    "doctor": ("vlogger_cli.cli.doctor:doctor", "Check system pieces and weights; print fixes."),
    "train": ("vlogger_cli.cli.train:train", "Train models and build the repo's own data sets."),
    "eval": ("vlogger_cli.cli.eval:eval_", "Measure talking videos: identity, sharpness, lip sync, motion."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in SUBCOMMANDS if self._available(name))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS or not self._available(name):
            return None
        module_name, attr = SUBCOMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from the table above: listing must not import the command modules.
        rows = [(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    @staticmethod
    def _available(name: str) -> bool:
        module_name = SUBCOMMANDS[name][0].split(":")[0]
        return importlib.util.find_spec(module_name) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="vlogger")
def main() -> None:
    """Turn one portrait photo plus speech into a talking, gesturing upper-body video.

    \b
    Example:
      vlogger render manifests/demo.yaml --output out/demo
      vlogger edit talk.mp4 -o closed.mp4 --keep-lips --eyes closed
      vlogger eval out/demo
      vlogger doctor
    """
    from vlogger_cli.native_logs import quiet_native_logs

    quiet_native_logs()
