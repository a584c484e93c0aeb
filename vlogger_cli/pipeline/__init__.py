"""The stages of one job, in order (DESIGN.md "The data flow").

A stage writes its artifacts into the job folder (atomically) and leaves its in-memory hand-off in
`ctx.results`; when a resumed run finds a stage already done, the stage's `load` restores that
hand-off from the artifacts instead of recomputing. `make demo` runs all stages that exist.

    portrait -> speech -> fit -> motion -> controls -> frames -> export      (render jobs)
    source -> track -> speech -> motion -> controls -> frames -> export      (edit jobs: pipeline/edit.py)
"""

from __future__ import annotations

from vlogger_cli.pipeline.base import InferenceSettings, Stage, StageContext
from vlogger_cli.pipeline.controls import CONTROLS
from vlogger_cli.pipeline.edit import EDIT_CONTROLS, EDIT_MOTION, EDIT_SOURCE, EDIT_SPEECH, EDIT_TRACK
from vlogger_cli.pipeline.edit_render import EDIT_EXPORT, EDIT_FRAMES
from vlogger_cli.pipeline.fit import FIT
from vlogger_cli.pipeline.inputs import PORTRAIT, SPEECH
from vlogger_cli.pipeline.motion import MOTION
from vlogger_cli.pipeline.render import EXPORT, FRAMES

STAGES: tuple[Stage, ...] = (PORTRAIT, SPEECH, FIT, MOTION, CONTROLS, FRAMES, EXPORT)
EDIT_STAGES: tuple[Stage, ...] = (EDIT_SOURCE, EDIT_TRACK, EDIT_SPEECH, EDIT_MOTION, EDIT_CONTROLS, EDIT_FRAMES,
                                  EDIT_EXPORT)

__all__ = ["Stage", "StageContext", "InferenceSettings", "STAGES", "EDIT_STAGES", "stages_for", "final_stage_note", "INTERMEDIATES"]


def stages_for(spec) -> tuple[Stage, ...]:
    """The pipeline of a job: render jobs from a portrait, edit jobs from a video."""
    return EDIT_STAGES if spec.kind == "edit" else STAGES

# What `render --keep-intermediates` removes from a finished job: controls can be re-rendered
# cheaply; chunks are the (costly) frames per window, already assembled into the MP4.
INTERMEDIATES: dict[str, tuple[str, ...]] = {"all": (), "chunks": ("controls",),
                                             "none": ("controls", "chunks", "masks", "source")}


def final_stage_note(stages) -> str | None:
    """What a user should know when the pipeline in this version stops short of a video."""
    names = [s.name for s in stages]
    if "export" in names:
        return None
    return f"this version's pipeline ends after stage '{names[-1]}': no video is made yet (see CHANGELOG.md)"
