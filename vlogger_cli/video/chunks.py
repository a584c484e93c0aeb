"""Resumable rendering of one stage-2 stage into a job's frame store (frame_store.py).

    OUTPUT/<job>/chunks/<stage>/w00000.safetensors   one WindowState per finished window (outpaint.py),
    OUTPUT/<job>/chunks/<stage>/w00001.safetensors   written atomically as soon as the window is done

`render_stage` continues after the last window on disk (bit-identical to an uninterrupted run: the
state holds the frames the next window is conditioned on and the RNG state), so a killed render
loses at most the window in flight. Frames are read back by range (`frames`), which is how an SR
stage gets its low-res input and how the MP4 is assembled, window by window, in bounded memory.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from vlogger_cli.frame_store import FrameStore
from vlogger_cli.video.outpaint import Outpainter, WindowState
from vlogger_cli.video.sr import lowres_frames


def window_store(folder: str | os.PathLike) -> FrameStore:
    """The finished windows of one stage (`base`, `sr256`, ...) of one job, read back as `WindowState`s."""
    return FrameStore(folder, WindowState)


def stage_run(model, store: FrameStore, controls, reference, num_frames: int, *,
              lowres: FrameStore | np.ndarray | None = None, sample: int = 0, **outpaint_kwargs) -> Outpainter | None:
    """The `Outpainter` that renders (or finishes) one stage into `store`, resumed after the store's last
    window; None when the store already holds the whole stage made under the same `key`."""
    source = None
    if lowres is not None:
        r = model.config.lowres_resolution
        read = lowres.frames if isinstance(lowres, FrameStore) else (lambda s, e, sample=0: lowres[s:e])
        source = lambda s, e: lowres_frames(read(s, e, sample), r)  # noqa: E731
    resume = store.last()
    if resume is not None and resume.is_last and resume.meta.get("key") == outpaint_kwargs.get("key", ""):
        return None
    return Outpainter(model, controls, reference, num_frames, lowres=source, resume=resume, **outpaint_kwargs)


def render_stage(model, store: FrameStore, controls, reference, num_frames: int, *,
                 lowres: FrameStore | np.ndarray | None = None, sample: int = 0,
                 on_window: Callable[[WindowState], None] | None = None, **outpaint_kwargs) -> FrameStore:
    """Render (or finish) one stage into `store`; SR stages read their low-res frames from `lowres`.

    outpaint_kwargs: window, overlap, sampler, steps, seed, batch, guidance_scale, key, device, autocast.
    A store whose windows were made with other settings (another `key`) raises ValueError: clear it first.
    """
    run = stage_run(model, store, controls, reference, num_frames, lowres=lowres, sample=sample, **outpaint_kwargs)
    while run is not None and not run.done:
        state = run.step()
        store.save(state)
        if on_window is not None:
            on_window(state)
    return store
