"""What every stage is: `run` writes artifacts and leaves hand-offs in `ctx.results` (typed fields,
`StageResults`); `load` restores those hand-offs from the artifacts when a resumed run finds the stage
already done."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from vlogger_cli.manifest import JobSpec

if TYPE_CHECKING:  # types only: the job store (jobs/) runs the pipeline, the pipeline never imports it
    import numpy as np

    from vlogger_cli.body.fit import BodyFit
    from vlogger_cli.body.framing import Framing
    from vlogger_cli.body.track import Track
    from vlogger_cli.controls.store import ControlStore
    from vlogger_cli.frame_store import FrameStore
    from vlogger_cli.jobs.store import JobDir
    from vlogger_cli.motion.artifacts import Motion
    from vlogger_cli.types import AudioFeatures


@dataclass
class StageResults:
    """The hand-offs between the stages of one job (DESIGN.md "The data flow"), each set by one stage's
    `run` or `load`: None until that stage has run or been loaded."""

    # render jobs: portrait -> speech -> fit -> motion -> controls -> frames -> export
    portrait: np.ndarray | None = None       # "portrait": the photo, (H, W, 3) uint8, EXIF-rotated
    features: AudioFeatures | None = None    # "speech": log-mel and loudness at the video's frame rate
    fit: BodyFit | None = None               # "fit": the body fitted to the portrait (edit: unused)
    framing: Framing | None = None           # "fit": the square crop every later stage works in
    reference: np.ndarray | None = None      # "fit" / "track": the framed reference image, (S, S, 3) uint8
    motion: Motion | None = None             # "motion": the per-frame motion the controls render
    controls: ControlStore | None = None     # "controls": control maps per window
    frames: object | None = None             # "frames": the finished frames (pipeline/render.py FrameSource)
    # edit jobs: source -> track -> speech -> motion -> controls -> frames -> export
    source: dict | None = None               # "source": what probe_video measured (fps, frames, audio)
    speech: dict | None = None               # "speech": the new speech's facts (edit jobs with --audio/--text)
    track: Track | None = None               # "track": the tracked body of every source frame
    tracked: Motion | None = None            # "track": the source's own motion, relative to reference_index
    framings: list[Framing] | None = None    # "track": each source frame's square crop
    reference_index: int | None = None       # "track": the source frame the motion is relative to
    source_frames: FrameStore | None = None  # "track": the source frames' squares
    masks: FrameStore | None = None          # "controls": blend / keep / known masks per frame
    texture_donors: np.ndarray | None = None  # per frame, the source frame its texture comes from
    lid_closing: object = None               # --eyes closed: per-frame 2-D lid closing (pipeline/edit.py)


PRECISIONS = ("auto", "bf16", "fp32")


@dataclass(frozen=True)
class InferenceSettings:
    """How stage 2 runs its denoiser (`vlogger render --precision / --compile / --batch-windows`). None of them is
    part of a job's config: like the device, they change the floats, not what is rendered, so a done job stays
    done and a job resumed under other settings continues from its finished windows."""

    precision: str = "auto"          # auto (bf16 on CUDA, fp32 on the CPU) | bf16 | fp32: the denoiser's autocast
    compile: str | None = None       # a torch.compile backend ("inductor") or None: eager (video/compile.py)
    batch_windows: int | str = 1     # windows of several jobs per denoiser call; "auto": what fits (CUDA), 1 on CPU

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.batch_windows != "auto" and not (isinstance(self.batch_windows, int) and self.batch_windows >= 1):
            raise ValueError(f"batch_windows must be 'auto' or a whole number >= 1, not {self.batch_windows!r}")

    @property
    def autocast(self) -> bool | None:
        """sampling.py's `autocast`: None = bf16 on CUDA only (auto), True = bf16 anywhere, False = fp32."""
        return {"auto": None, "bf16": True, "fp32": False}[self.precision]


@dataclass
class StageContext:
    spec: JobSpec
    job: JobDir
    device: str                      # "cpu", "cuda" or "auto" (see `torch_device`)
    log: logging.Logger
    config_hash: str = ""            # the job's config hash: resume states made under another are refused
    results: StageResults = field(default_factory=StageResults)
    inference: InferenceSettings = field(default_factory=InferenceSettings)

    def torch_device(self) -> str:
        """The device for torch work: "auto" becomes "cuda" when a GPU is visible."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[StageContext], None]
    load: Callable[[StageContext], None]
    outputs: tuple[str, ...]         # artifacts, relative to the job folder, that a finished stage leaves
    # a stage that can run for several jobs at once (frames: their windows batched, render --batch-windows):
    # run_group(contexts) -> per job None (done) or the error that failed it; `run` stays the one-job way
    run_group: Callable[[list[StageContext]], list[BaseException | None]] | None = None
    # folders (relative to the job folder) the stage continues from by what they hold: the windows an
    # interrupted run finished. Only a resume of the same config may continue them; the runner empties them
    # before any other run of the stage (a redo, or a stage after one that ran again: their inputs changed)
    resumes: tuple[str, ...] = ()
