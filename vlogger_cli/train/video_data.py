"""The video dataset on disk (format documented in weights/README.md, "Video dataset").

    DIR/index.json                  {"format": "vlogger-video-dataset", "version": 1, "fps": 25, "size": S,
                                     "clips": [{"id", "split": "train"|"val", "frames": T}, ...]}
    DIR/clips/<id>/frames.npy       (T, S, S, 3) uint8 target frames (memory-mapped when read)
    DIR/clips/<id>/reference.png    the portrait the clip is generated from (S x S RGB; need not be a frame)
    DIR/clips/<id>/controls/        the clip's control maps in a job's own format (controls/store.py
                                     chunks: C^d, body mask, C^m, C^w + mask, flow), T frames at S x S

The skeleton (index.json + clips/<id>…) is the motion dataset's; a clip id can carry both a motion
file and a video folder. Frames and controls are stored once, at the largest resolution any model
trains on; each model's loader resizes (box filter) to its own resolution, and SR models get their
low-res input by downsampling the target frames.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vlogger_cli.controls.render import ControlFrames
from vlogger_cli.controls.store import ControlStore
from vlogger_cli.errors import InputError
from vlogger_cli.io import atomic_path, atomic_write_json
from vlogger_cli.video.config import VideoModelConfig
from vlogger_cli.video.controls import control_tensor, resize_frames, to_unit

FORMAT = "vlogger-video-dataset"
VERSION = 1


@dataclass
class VideoClip:
    id: str
    split: str
    folder: Path
    num_frames: int

    def frames(self) -> np.ndarray:
        """(T, S, S, 3) uint8, memory-mapped."""
        return np.load(self.folder / "frames.npy", mmap_mode="r")

    def reference(self) -> np.ndarray:
        from PIL import Image

        with Image.open(self.folder / "reference.png") as img:
            return np.asarray(img.convert("RGB"))

    def controls(self) -> ControlFrames:
        return ControlStore(self.folder / "controls").load(0, self.num_frames)


def write_clip(root: str | Path, clip_id: str, frames: np.ndarray, reference: np.ndarray, controls: ControlFrames,
               *, chunk: int = 50) -> dict:
    """Write one clip folder (atomically per file); returns its index entry (without split)."""
    from PIL import Image

    folder = Path(root) / "clips" / clip_id
    if len(controls) != len(frames):
        raise ValueError(f"clip {clip_id}: {len(frames)} frames but {len(controls)} control frames")
    with atomic_path(folder / "frames.npy") as tmp:
        np.save(tmp, np.ascontiguousarray(frames, dtype=np.uint8))
    with atomic_path(folder / "reference.png") as tmp:
        Image.fromarray(np.asarray(reference, dtype=np.uint8)).save(tmp, format="PNG")
    store = ControlStore(folder / "controls")
    for first in range(0, len(frames), chunk):
        store.write(first, controls[first:first + chunk])
    return {"id": clip_id, "frames": int(len(frames))}


def write_index(root: str | Path, *, fps: float, size: int, clips: list[dict], **extra) -> None:
    atomic_write_json(Path(root) / "index.json",
                      {"format": FORMAT, "version": VERSION, "fps": fps, "size": size, "clips": clips, **extra})


def read_index(root: str | Path) -> dict:
    path = Path(root) / "index.json"
    if not path.is_file():
        raise InputError(f"{root} is not a video dataset (no index.json); see weights/README.md 'Video dataset'")
    index = json.loads(path.read_text())
    if index.get("format") != FORMAT:
        raise InputError(f"{path} is a {index.get('format')!r} index, not {FORMAT!r}; see weights/README.md 'Video dataset'")
    return index


def load_clips(root: str | Path, split: str | None = None) -> list[VideoClip]:
    index = read_index(root)
    clips = [VideoClip(c["id"], c.get("split", "train"), Path(root) / "clips" / c["id"], int(c["frames"]))
             for c in index["clips"] if split is None or c.get("split", "train") == split]
    for clip in clips:
        if not (clip.folder / "frames.npy").is_file():
            raise InputError(f"clip {clip.id}: {clip.folder / 'frames.npy'} is missing; rewrite the dataset")
    return clips


@dataclass
class Batch:
    """One training batch at a model's resolution."""

    frames: torch.Tensor              # (B, T, 3, R, R) targets in [-1, 1]
    controls: torch.Tensor            # (B, T, Cc, R, R)
    reference: torch.Tensor           # (B, 3, S, S) portraits in [-1, 1]
    lowres: torch.Tensor | None       # SR: (B, T, 3, r, r) in [-1, 1]


class ClipSampler:
    """Random training items of `frames` consecutive frames (1 = single frames, training phase 1).

    A batch draws its items from `clips_per_batch` random clips, whose decoded controls stay in a
    small LRU cache, so reading stays cheap for data sets far larger than memory.
    """

    def __init__(self, clips: list[VideoClip], config: VideoModelConfig, *, cache: int = 8, clips_per_batch: int = 4,
                 pool: int = 0, refresh: float = 0.25):
        if not clips:
            raise InputError("the video dataset has no clips for this split")
        self.clips, self.config = clips, config
        self.cache: OrderedDict[str, tuple] = OrderedDict()
        self.cache_size, self.clips_per_batch = cache, clips_per_batch
        lengths = np.array([c.num_frames for c in clips], np.float64)
        self.p = lengths / lengths.sum()
        # pool > 0: a resident pool of `pool` clips already converted to the model's resolution (float16),
        # batches are drawn from it and `refresh` clips per batch are swapped for new random ones. Reading
        # and converting a clip (decompressing 256² controls, warping the portrait) costs more than a CPU
        # training step; the pool amortises it. (A resumed run refills the pool: not bit-identical.)
        self.pool_size, self.refresh, self.pool, self._credit = min(pool, len(clips)), refresh, [], 0.0

    def _load(self, clip: VideoClip) -> tuple:
        if clip.id in self.cache:
            self.cache.move_to_end(clip.id)
            return self.cache[clip.id]
        portrait = clip.reference()
        item = (clip.frames(), clip.controls(), portrait)
        self.cache[clip.id] = item
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return item

    def item(self, clip: VideoClip, start: int, frames: int) -> tuple:
        c = self.config
        video, controls, portrait = self._load(clip)
        idx = np.clip(np.arange(start, start + frames), 0, clip.num_frames - 1)  # short clips repeat their last frame
        target = resize_frames(to_unit(np.asarray(video[idx])), c.resolution)
        ctrl_portrait = portrait if portrait.shape[:2] == controls.position.shape[1:3] else None
        if c.flow_reference and ctrl_portrait is None:
            ctrl_portrait = _resize_uint8(portrait, controls.position.shape[1])
        ctrl = control_tensor(controls[int(idx[0]):int(idx[-1]) + 1], c.resolution, num_parts=c.num_parts,
                              flow_reference=c.flow_reference, portrait=ctrl_portrait)
        if ctrl.shape[0] < frames:
            ctrl = torch.cat([ctrl, ctrl[-1:].expand(frames - ctrl.shape[0], -1, -1, -1)])
        ref = to_unit(portrait)
        lowres = resize_frames(target, c.lowres_resolution) if c.lowres_resolution else None
        return target, ctrl, ref, lowres

    def _converted(self, clip: VideoClip) -> tuple:
        """The whole clip at the model's resolution: (clip, frames, controls (float16), reference, lowres)."""
        target, ctrl, ref, lowres = self.item(clip, 0, clip.num_frames)
        self.cache.pop(clip.id, None)
        return (clip, target.half(), ctrl.half(), ref, None if lowres is None else lowres.half())

    def _pool_batch(self, rng: np.random.Generator, size: int, frames: int, rows: slice) -> Batch | None:
        while len(self.pool) < self.pool_size:
            self.pool.append(self._converted(self.clips[int(rng.choice(len(self.clips), p=self.p))]))
        self._credit += self.refresh
        while self._credit >= 1:
            self._credit -= 1
            self.pool[int(rng.integers(len(self.pool)))] = self._converted(
                self.clips[int(rng.choice(len(self.clips), p=self.p))])
        plan = []
        for _ in range(size):
            entry = self.pool[int(rng.integers(len(self.pool)))]
            plan.append((entry, int(rng.integers(0, max(1, entry[0].num_frames - frames + 1)))))
        items = []
        for (clip, target, ctrl, ref, lowres), start in plan[rows]:
            idx = torch.from_numpy(np.clip(np.arange(start, start + frames), 0, clip.num_frames - 1))
            items.append((target[idx].float(), ctrl[idx].float(), ref, None if lowres is None else lowres[idx].float()))
        return _collate(items) if items else None

    def batch(self, rng: np.random.Generator, size: int, frames: int = 1, rows: slice = slice(None)) -> Batch | None:
        """`size` random items; `rows`: load only these (all are drawn, so the random stream does not depend on
        them: one process's share of a distributed batch, train/distributed.py); None when `rows` is empty."""
        if self.pool_size:
            return self._pool_batch(rng, size, frames, rows)
        chosen = rng.choice(len(self.clips), size=min(self.clips_per_batch, len(self.clips)), replace=False,
                            p=self.p)
        plan = []
        for b in range(size):
            clip = self.clips[int(chosen[b % len(chosen)])]
            plan.append((clip, int(rng.integers(0, max(1, clip.num_frames - frames + 1)))))
        items = [self.item(clip, start, frames) for clip, start in plan[rows]]
        return _collate(items) if items else None


def _resize_uint8(image: np.ndarray, size: int) -> np.ndarray:
    x = F.interpolate(to_unit(image)[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return ((x[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def write_synthetic_dataset(root: str | Path, *, clips: int = 4, frames: int = 12, size: int = 32, fps: float = 25.0,
                            val_clips: int = 1, seed: int = 0) -> dict:
    """A tiny, exactly-labelled data set for tests and smoke runs: a textured head disc and a torso moving
    rigidly over a smooth background. C^w is the reference moved by the true displacement, so the task
    (copy C^w where valid, keep the background) is learnable in a few hundred steps."""
    from vlogger_cli.body.model import PART_INDEX

    rng = np.random.default_rng(seed)
    root = Path(root)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    entries = []
    for k in range(clips):
        bg = (rng.uniform(40, 215, 3)[None, None] + rng.uniform(-30, 30, 3)[None, None] * (xx / size)[..., None]).astype(np.float32)
        skin, shirt = rng.uniform(60, 250, 3), rng.uniform(0, 255, 3)
        stripes = 25 * np.sin(xx / size * rng.uniform(6, 14) + rng.uniform(0, 6))[..., None]
        r = size * rng.uniform(0.14, 0.2)
        c0 = np.array([size / 2, size * 0.42])
        amp, freq = size * rng.uniform(0.03, 0.1, 2), rng.uniform(0.1, 0.3)

        def scene(shift):
            cx, cy = c0 + shift
            head = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
            torso = (np.abs(xx - cx) < 2.2 * r) & (yy > cy + 1.1 * r)
            img = bg.copy()
            img[torso] = shirt
            img[head] = np.clip(skin + stripes[head].reshape(-1, 1), 0, 255)
            return img, head, torso

        reference = scene(np.zeros(2))[0].astype(np.uint8)
        video, maps = [], {k_: [] for k_ in ControlFrames.FIELDS}
        for t in range(frames):
            shift = amp * np.sin(2 * np.pi * freq * t + np.array([0.0, 1.3]))
            img, head, torso = scene(shift)
            # the reference's pixels moved by the shift: head/torso texture follow exactly
            src_x = np.clip(np.round(xx - 0.5 - shift[0]), 0, size - 1).astype(int)
            src_y = np.clip(np.round(yy - 0.5 - shift[1]), 0, size - 1).astype(int)
            body = head | torso
            cx, cy = c0 + shift
            position = np.stack([(xx - cx) / (2.2 * r), (yy - cy) / (2.2 * r), np.zeros_like(xx)], -1)
            position[head, 2] = np.sqrt(np.clip(1 - ((xx[head] - cx) ** 2 + (yy[head] - cy) ** 2) / r ** 2, 0, 1))
            parts = np.zeros((size, size), np.uint8)
            parts[torso] = PART_INDEX["torso"]
            parts[head] = PART_INDEX["face_skin"]
            flow = np.zeros((size, size, 2), np.float32)
            flow[body] = -shift
            video.append(img.astype(np.uint8))
            for key, value in (("position", position * body[..., None]), ("mask", body), ("parts", parts),
                               ("warped", reference[src_y, src_x] * body[..., None]), ("warped_mask", body),
                               ("flow", flow)):
                maps[key].append(value)
        controls = ControlFrames(**{
            key: np.stack(v).astype({"position": np.float32, "mask": bool, "parts": np.uint8, "warped": np.uint8,
                                     "warped_mask": bool, "flow": np.float32}[key]) for key, v in maps.items()})
        entry = write_clip(root, f"synth{k:04d}", np.stack(video), reference, controls)
        entry["split"] = "val" if k >= clips - val_clips else "train"
        entries.append(entry)
    write_index(root, fps=fps, size=size, clips=entries, source="synthetic")
    return {"clips": len(entries), "frames": clips * frames}


def _collate(items: list[tuple]) -> Batch:
    """(frames, controls, reference, lowres | None) items -> one Batch (references resized to the largest)."""
    size_ref = max(i[2].shape[-1] for i in items)
    return Batch(
        frames=torch.stack([i[0] for i in items]),
        controls=torch.stack([i[1] for i in items]),
        reference=torch.stack([resize_frames(i[2][None], size_ref)[0] for i in items]),
        lowres=torch.stack([i[3] for i in items]) if items[0][3] is not None else None,
    )
