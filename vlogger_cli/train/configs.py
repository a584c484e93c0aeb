"""Training configs from plain dicts (config file + `--set` overrides): unknown keys are user errors."""

from __future__ import annotations

import dataclasses

from vlogger_cli.errors import InputError


def config_from_dict(cls, values: dict, what: str):
    """`cls(**values)` for a config dataclass, refusing unknown fields with a one-line error."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise InputError(f"unknown {what} training option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return cls(**values)
