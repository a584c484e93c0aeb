"""The stages of one job, in order (DESIGN.md "The data flow").

A stage writes its artifacts into the job folder (atomically) and leaves its in-memory hand-off in
`ctx.results`; when a resumed run finds a stage already done, the stage's `load` restores that
hand-off from the artifacts instead of recomputing. `make demo` runs all stages that exist.

    portrait -> speech -> fit -> motion -> controls -> frames -> export
"""

from __future__ import annotations

from vlogger_cli.pipeline.base import Stage, StageContext
from vlogger_cli.pipeline.controls import CONTROLS
from vlogger_cli.pipeline.fit import FIT
from vlogger_cli.pipeline.inputs import PORTRAIT, SPEECH
from vlogger_cli.pipeline.motion import MOTION
from vlogger_cli.pipeline.render import EXPORT, FRAMES

STAGES: tuple[Stage, ...] = (PORTRAIT, SPEECH, FIT, MOTION, CONTROLS, FRAMES, EXPORT)

__all__ = ["Stage", "StageContext", "STAGES", "final_stage_note", "INTERMEDIATES"]

# What `render --keep-intermediates` removes from a finished job: controls can be re-rendered
# cheaply; chunks are the (costly) frames per window, already assembled into the MP4.
INTERMEDIATES: dict[str, tuple[str, ...]] = {"all": (), "chunks": ("controls",), "none": ("controls", "chunks")}


def final_stage_note(stages) -> str | None:
    """What a user should know when the pipeline in this version stops short of a video."""
    names = [s.name for s in stages]
    if "export" in names:
        return None
    return f"this version's pipeline ends after stage '{names[-1]}': no video is made yet (see CHANGELOG.md)"
