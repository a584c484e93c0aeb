"""The shape of a metric group in `vlogger eval`'s results: {metric: number | None, ..., "reasons": {...}}.

A metric that cannot be computed (no portrait given, no audio track, the cpbd package absent) is None,
and `reasons[metric]` says why and what to pass; scripts never meet a missing key.
"""

from __future__ import annotations


def not_available(group: dict, keys, reason: str) -> dict:
    """Set each of `keys` in `group` to None with `reason`; returns `group`."""
    reasons = group.setdefault("reasons", {})
    for key in keys:
        group[key] = None
        reasons[key] = reason
    return group
