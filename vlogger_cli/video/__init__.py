"""Stage 2 (paper §3.2-3.3): temporal ControlNet image diffusion, temporal outpainting, cascaded SR.

    config.py     VideoModelConfig, PRESETS, CASCADES
    model.py      VideoDiffusionModel (frozen base UNet + control branch + temporal layers + reference tokens)
    temporal.py   zero-initialised 1D temporal convolutions hooked into the base
    reference.py  portrait -> cross-attention tokens
    controls.py   ControlFrames -> control tensor
    sampling.py   schedulers and the sampling loop of one window (`sample_windows`: several in one batch)
    outpaint.py   windows of any-length video: `outpaint` generator, `Outpainter`, resumable `WindowState`
    sr.py         `super_resolve`, `cascade` (streaming, in memory)
    chunks.py     `render_stage` (resumable, into a frame store: vlogger_cli/frame_store.py), `window_store`
    batching.py   several videos' windows in one denoiser batch (`render --batch-windows`)
    compile.py    opt-in torch.compile of the denoiser, eager fallback (`render --compile`)
    render.py     a job's cascade from weight folders: `load_cascade`, `render_cascade`, `render_cascades`
    quality.py    face-region PSNR, seam report
"""

from vlogger_cli.video.chunks import render_stage, window_store
from vlogger_cli.video.config import CASCADES, PRESETS, VideoModelConfig, preset
from vlogger_cli.video.controls import control_tensor
from vlogger_cli.video.model import VideoDiffusionModel
from vlogger_cli.video.outpaint import WindowState, ideal_frame_evaluations, outpaint
from vlogger_cli.video.sampling import DEFAULT_SAMPLER, DEFAULT_STEPS, SAMPLERS, make_scheduler, sample_window
from vlogger_cli.video.render import load_cascade, render_cascade
from vlogger_cli.video.sr import cascade, super_resolve

__all__ = [
    "CASCADES", "PRESETS", "VideoModelConfig", "preset", "control_tensor", "VideoDiffusionModel", "WindowState",
    "ideal_frame_evaluations", "outpaint", "DEFAULT_SAMPLER", "DEFAULT_STEPS", "SAMPLERS", "make_scheduler",
    "sample_window", "cascade", "super_resolve", "window_store", "render_stage", "load_cascade", "render_cascade",
]
