"""The finished jobs of a render's output folder, with what `vlogger eval` needs from each.

Reads the job folder layout of CONTRACT.md directly (`OUTPUT/<id>/job.json`, `<id>.mp4`, `portrait.png`,
`audio.wav`); it does not import `vlogger_cli.jobs` (stages never do).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

EVAL_JSON = "eval.json"
EVAL_PNG = "eval.png"


@dataclass(frozen=True)
class FinishedJob:
    id: str
    folder: Path
    video: Path
    portrait: Path | None  # the photo as the job used it (portrait.png); None for edit jobs
    audio: Path | None  # the speech the job used (audio.wav); None: the video's own track


def is_output_root(path: Path) -> bool:
    """A folder that holds job folders (or a render's summary.json)."""
    return path.is_dir() and ((path / "summary.json").is_file() or any(path.glob("*/job.json")))


def finished_jobs(root: Path) -> tuple[list[FinishedJob], list[str]]:
    """(the done jobs under `root` in id order, one line per job folder that is not done or lacks its video)."""
    jobs, skipped = [], []
    for state_file in sorted(root.glob("*/job.json")):
        folder = state_file.parent
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            skipped.append(f"{folder.name}: job.json unreadable ({err})")
            continue
        job_id = state.get("id") or folder.name
        video = folder / f"{job_id}.mp4"
        if state.get("state") != "done":
            skipped.append(f"{job_id}: {state.get('state')}, not done")
            continue
        if not video.is_file():
            skipped.append(f"{job_id}: {video.name} missing")
            continue
        portrait = folder / "portrait.png"
        audio = folder / "audio.wav"
        jobs.append(FinishedJob(job_id, folder, video, portrait if portrait.is_file() else None,
                                audio if audio.is_file() else None))
    return jobs, skipped
