"""Planning a real-video dataset (train/video_real.py): which frames of a tracked video become training clips,
the square each clip is framed in, the reference frame each clip is drawn with, and which videos are held out.
Pure numpy on the track and per-frame thumbnails: nothing is rendered here.

Per video:
- usable frames: the tracker found a face (`Track.lost`) and the fit matches it (mean face error at most
  MAX_FIT_ERROR of the face diagonal); the others count as "lost".
- shot cuts (`shot_cuts`): a jump of the thumbnails' mean absolute frame difference. The first CUT_GUARD frames
  of a new shot count as "cut" (the tracker's warm start needs a few frames to catch up after a jump) and no
  clip spans a cut.
- clips: consecutive blocks of `frames` usable frames within one shot; what is left of a run counts as "short".
- too small a face: the clip's square (below) would be upscaled more than MAX_UPSCALE to reach the data size
  (a face a few dozen pixels high in a wide shot): the clip counts as "small face".
- reference (VLOGGER §3.2 "Training": a random frame of the same video): a usable frame drawn at random (seeded
  per clip, recorded) at least REFERENCE_GAP_S away from the clip, whose square shows every clip frame's face;
  failing that, any usable frame outside the clip; a clip without one counts as "no reference".
- framing: the square the render pipeline chooses for a portrait (body/framing.choose_framing on the face box),
  applied to the clip's REFERENCE frame, which plays the portrait's part; the clip's frames are cropped to the
  same square, so the person moves in it as a generated motion moves a portrait's body.

Held-out videos (`choose_holdout`): by name and/or a seeded fraction of the videos. The split is by video,
never by frame, so no frame of a held-out video is ever trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlogger_cli.body.framing import CROP_FACE_HEIGHTS, Framing, choose_framing
from vlogger_cli.errors import InputError

MAX_FIT_ERROR = 0.05
"""Mean face error (fraction of the face diagonal) above which a tracked frame counts as lost (the tracker's
frames sit at ~1 %; the portrait fit warns above 3 %)."""
CUT_MIN_DIFF = 20.0
CUT_RATIO = 5.0
"""A shot cut: the 32x32 grey thumbnails' mean absolute difference (0-255) to the previous frame exceeds both
CUT_MIN_DIFF and CUT_RATIO times the video's median difference (talking heads move a few grey levels per frame)."""
CUT_GUARD = 3
"""Frames from the start of a new shot that are not used."""
MAX_UPSCALE = 1.5
"""A clip whose square is smaller than data size / MAX_UPSCALE source pixels has "too small a face"."""
REFERENCE_GAP_S = 1.0
"""The reference frame is drawn at least this far (seconds) from the clip when the video allows it."""
THUMB = 32


@dataclass(frozen=True)
class ClipPlan:
    """One training clip: track frames first..last (inclusive), its reference frame and square, and the seed
    its reference was drawn with."""

    first: int
    last: int
    reference: int
    framing: Framing
    seed: tuple[int, ...] = ()

    @property
    def num_frames(self) -> int:
        return self.last + 1 - self.first


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """(THUMB, THUMB) float32 grey thumbnail (area average) of an RGB frame, for cut detection."""
    from PIL import Image

    grey = Image.fromarray(np.ascontiguousarray(frame)).convert("L")
    return np.asarray(grey.resize((THUMB, THUMB), Image.BOX), np.float32)


def shot_cuts(thumbs: np.ndarray) -> np.ndarray:
    """(T,) bool: True at the first frame of every shot after the first (module docstring)."""
    thumbs = np.asarray(thumbs, np.float32)
    cuts = np.zeros(len(thumbs), bool)
    if len(thumbs) < 2:
        return cuts
    diff = np.abs(np.diff(thumbs, axis=0)).reshape(len(thumbs) - 1, -1).mean(1)  # (T-1,) change into frame t
    cuts[1:] = diff > max(CUT_MIN_DIFF, CUT_RATIO * float(np.median(diff)))
    return cuts


def face_boxes(track) -> np.ndarray:
    """(T, 4) x0, y0, x1, y1 of the detected face points per frame (zeros on lost frames)."""
    face = track.landmarks["face"][..., :2]
    return np.concatenate([face.min(axis=1), face.max(axis=1)], axis=1).astype(np.float64)


def usable_frames(track) -> np.ndarray:
    """(T,) bool: a face was found and the fit matches it (MAX_FIT_ERROR)."""
    with np.errstate(invalid="ignore"):
        fits = np.nan_to_num(track.relative_errors, nan=np.inf) <= MAX_FIT_ERROR
    return ~track.lost & fits


def reference_framing(track, reference: int, boxes: np.ndarray | None = None) -> Framing:
    """The portrait framing of frame `reference` (body/framing.choose_framing on its face box)."""
    boxes = face_boxes(track) if boxes is None else boxes
    return choose_framing(track.image_size, tuple(boxes[reference]))


def plan_video(track, thumbs: np.ndarray, *, frames: int, size: int, seed: int, key: int) -> tuple[list[ClipPlan], dict]:
    """The clips of one tracked video and the per-reason frame counts (module docstring). `key`: a number
    that identifies the video (from its content), so each clip's reference draw has its own seed."""
    n = track.num_frames
    if len(thumbs) < n:
        raise InputError(f"{track.source}: {len(thumbs)} frames decoded, {n} tracked; re-encode the video")
    good = usable_frames(track)
    cuts = shot_cuts(thumbs[:n])
    guard = np.zeros(n, bool)
    for t in np.flatnonzero(cuts):
        guard[t:t + CUT_GUARD] = True
    counts = {"frames": n, "lost": int((~good).sum()), "cut": int((good & guard).sum()), "small_face": 0,
              "no_reference": 0, "short": 0, "used": 0}
    usable = good & ~guard
    shot = np.cumsum(cuts)
    boxes = face_boxes(track)
    gap = int(round(REFERENCE_GAP_S * track.fps))
    height, width = track.image_size
    plans = []
    for start, stop in _runs(usable, shot):
        whole = (stop - start) // frames * frames
        counts["short"] += stop - start - whole
        for first in range(start, start + whole, frames):
            last = first + frames - 1
            box = boxes[first:last + 1]
            face_h = float(np.median(np.maximum(box[:, 3] - box[:, 1], box[:, 2] - box[:, 0])))
            if min(CROP_FACE_HEIGHTS * face_h, float(min(width, height))) * MAX_UPSCALE < size:
                counts["small_face"] += frames
                continue
            clip_seed = (int(seed), int(key), int(first))
            found = _draw_reference(np.random.default_rng(list(clip_seed)), track.image_size, usable, boxes,
                                    first, last, gap)
            if found is None:
                counts["no_reference"] += frames
                continue
            reference, framing = found
            plans.append(ClipPlan(first, last, reference, framing, clip_seed))
            counts["used"] += frames
    return plans, counts


def _runs(usable: np.ndarray, shot: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) runs of consecutive usable frames within one shot."""
    runs, start = [], None
    for t in range(len(usable) + 1):
        inside = t < len(usable) and usable[t] and (start is None or shot[t] == shot[start])
        if start is not None and not inside:
            runs.append((start, t))
            start = None
        if start is None and t < len(usable) and usable[t]:
            start = t
    return runs


def _draw_reference(rng: np.random.Generator, image_size, usable: np.ndarray, boxes: np.ndarray, first: int,
                    last: int, gap: int) -> tuple[int, Framing] | None:
    """A random usable frame away from the clip whose square holds every clip frame's face, with its square."""
    t = np.arange(len(usable))
    outside = usable & ((t < first) | (t > last))
    far = outside & ((t < first - gap) | (t > last + gap))
    clip = boxes[first:last + 1]
    for candidates in (np.flatnonzero(far), np.flatnonzero(outside & ~far)):
        for r in rng.permutation(candidates):
            f = choose_framing(image_size, tuple(boxes[r]))
            if (clip[:, 0] >= f.left).all() and (clip[:, 1] >= f.top).all() and \
                    (clip[:, 2] <= f.left + f.side).all() and (clip[:, 3] <= f.top + f.side).all():
                return int(r), f
    return None


def choose_holdout(names: list[str], requested: list[str] | None = None, fraction: float = 0.0,
                   seed: int = 0) -> set[str]:
    """The held-out videos among `names` (file names): those `requested` (file name or stem; an unknown one is
    an InputError), then videos drawn with `seed` until round(fraction * len(names)) are held out (at least one
    when fraction > 0, never all of them)."""
    from pathlib import PurePath

    if not 0.0 <= fraction < 1.0:
        raise InputError(f"--holdout-fraction {fraction}: choose a fraction in [0, 1)")
    held = set()
    for want in requested or []:
        match = [n for n in names if want in (n, PurePath(n).stem)]
        if not match:
            raise InputError(f"--holdout {want}: no such video among --videos ({', '.join(sorted(names))})")
        held.update(match)
    if fraction > 0:  # named videos count towards the fraction; at least one video stays for training
        want = min(max(1, int(round(fraction * len(names)))), max(1, len(names) - 1))
        rest = sorted(set(names) - held)
        k = min(len(rest), max(0, want - len(held)))
        if k:
            held.update(np.random.default_rng(seed).choice(rest, size=k, replace=False).tolist())
    return held
