"""A job's folder `OUTPUT/<id>/` and its state file `job.json` (CONTRACT.md "A job's folder").

job.json is the single source of truth about a job: its state, the resolved config and its hash,
and one record per finished stage. It is rewritten atomically after every change, so a run killed
at any moment leaves either the previous or the next consistent state behind.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from vlogger_cli import __version__
from vlogger_cli.io import TMP_MARKER, atomic_write_json, file_sha256
from vlogger_cli.manifest import JobSpec

STATES = ("pending", "running", "interrupted", "done", "failed")
STATE_FILE = "job.json"

# Bump when a stage's output for the same inputs changes, so finished jobs are redone.
PIPELINE_VERSION = "1"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")



def config_hash(spec: JobSpec) -> str:
    """Hash of everything that decides a job's output: the resolved config, the *content* of its
    input files (a replaced portrait with the same name must redo the job) and the pipeline version."""
    config = spec.config()
    inputs = {key: file_sha256(Path(config[key])) for key in ("portrait", "audio", "video") if config.get(key)}
    blob = json.dumps({"config": config, "inputs": inputs, "pipeline": PIPELINE_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"vlogger": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("torch", "diffusers", "anny", "librosa", "moviepy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


class JobDir:
    """Paths and state of one job. Every path handed out stays inside the job's folder."""

    def __init__(self, output_root: Path, job_id: str):
        self.output_root = Path(output_root).resolve()
        self.root = (self.output_root / job_id).resolve()
        if self.root.parent != self.output_root:
            raise ValueError(f"job id {job_id!r} would leave the output root")  # ids are validated: a bug

    def path(self, name: str) -> Path:
        """`name` relative to the job folder; refuses anything that would escape it."""
        target = (self.root / name).resolve()
        if target != self.root and self.root not in target.parents:
            raise ValueError(f"{name!r} is outside the job folder {self.root}")
        return target

    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    def read_state(self) -> dict[str, Any] | None:
        """The saved state, or None when the job never ran (or its state file is unreadable)."""
        try:
            return json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            # Cannot happen through our atomic writes; a hand-edited file is treated as "never ran".
            return None

    def write_state(self, state: dict[str, Any]) -> None:
        if state.get("state") not in STATES:
            raise ValueError(f"bad job state {state.get('state')!r}")
        state["updated_at"] = now_iso()
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.state_path, state)

    def remove_stale_temps(self) -> int:
        """Delete temporary files a killed run left behind (ours only: `.name.<rand>.tmp.ext`)."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                if name.startswith(".") and TMP_MARKER in name:
                    Path(dirpath, name).unlink(missing_ok=True)
                    removed += 1
        return removed
