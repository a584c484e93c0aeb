"""Training the mouth stage (`vlogger train mouth`, video/mouth.py) on real talking video.

    vlogger train mouth --data DIR[:weight]... --out RUN [--weights weights] [--set key=value ...] [--resume]

Data: video datasets of real footage (`vlogger train video-data`); their `train` clips only. For each clip
the cascade in --weights renders its frames from its controls and reference (cached per clip in
RUN/cascade/<id>.npy, resumable), because that is what the refiner corrects at render time; the real frames
are the targets. Every frame with a mouth becomes one sample: the refiner's inputs and paste mask
(video/mouth.mouth_inputs), and the real frame cropped the same way. The loss is the squared error of the
pasted crop (outside the paste mask the cascade's pixels stay, so it counts only the mouth and its
surroundings), plus a horizontal flip of each sample half of the time (a mouth is nearly symmetric: twice
the data for free). AdamW with a cosine decay to 0 at the last step; the EMA weights (train/ema.py) are
exported to RUN/final/ (a weights/mouth folder). Checkpoints are the trainers' own (train/checkpoint.py:
RUN/checkpoints/, latest.json, RUN/config.json), so a killed run resumes where it stopped (--resume).
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vlogger_cli.errors import InputError
from vlogger_cli.io import atomic_path, atomic_write_json
from vlogger_cli.video.mouth import IN_CHANNELS, MouthConfig, MouthRefiner, mouth_inputs


@dataclass
class TrainMouthConfig:
    steps: int = 2000
    batch_size: int = 16
    lr: float = 1e-3
    warmup: int = 100
    ema_decay: float = 0.995
    ema_warmup: bool = False
    """The EMA's decay fixed from the first step (train/ema.py), not warmed up: the exported average then keeps
    0.995**500 = 8% of the initialisation, the identity (a zero correction), which shrinks the correction a
    little. On the held-out real clips, 500 steps: open mouths 19.73 dB without the warm-up, 19.38 with it
    (weights/mouth/README.md)."""
    seed: int = 0
    threads: int = 1
    ckpt_every: int = 250
    val_videos: list = field(default_factory=list)
    """Videos (file stems) of the data whose clips are not trained on but validate: their loss every val_every
    steps (EMA weights) goes to the log and RUN/log.jsonl. The datasets' own `val` split (the videos held out
    for the real check) is never read."""
    val_every: int = 250
    channels: list = field(default_factory=lambda: [32, 64, 96])
    model: dict = field(default_factory=dict)   # MouthConfig fields

    @classmethod
    def from_dict(cls, values: dict) -> "TrainMouthConfig":
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise InputError(f"unknown train mouth setting(s): {', '.join(unknown)} "
                             f"(known: {', '.join(cls.__dataclass_fields__)})")
        values = dict(values)
        if "channels" in values:
            values["channels"] = [int(c) for c in values["channels"]]
        return cls(**values)


def cascade_frames(models, clip, cache: Path) -> np.ndarray:
    """(T, S, S, 3) uint8: the cascade's frames of one dataset clip from its controls and reference (the
    render's settings: seed 0, 10 steps), cached as cache/<id>.npy."""
    from vlogger_cli.video.render import render_cascade

    dest = cache / f"{clip.id}.npy"
    if dest.is_file():
        return np.load(dest)
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        store = render_cascade(models, clip.controls(), clip.reference(), clip.num_frames, Path(tmp), seed=0,
                               steps=10)
        frames = np.asarray(store.frames(0, clip.num_frames))
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, frames)
    return frames


def cascade_cache(folder: Path, weights) -> Path:
    """folder, checked to hold renders of this cascade: folder/cascade.json records its weights' files (the
    stage-2 folders' safetensors and configs, by content); another cascade's renders there are refused, not
    mixed in."""
    import hashlib

    folder.mkdir(parents=True, exist_ok=True)
    weights = Path(weights)
    files = sorted(f for d in [weights / "video", *sorted((weights / "sr").glob("*"))] for f in d.rglob("*")
                   if f.suffix in (".safetensors", ".json"))
    stamp = {str(f.relative_to(weights)): hashlib.sha256(f.read_bytes()).hexdigest()[:16] for f in files}
    record = folder / "cascade.json"
    if record.is_file() and json.loads(record.read_text()) != stamp:
        raise InputError(f"{folder} holds renders of another stage-2 cascade than {weights}'s; "
                         "pass another --cascade-cache (or empty this one)")
    if not record.is_file():
        atomic_write_json(record, stamp)
    return folder


def clip_samples(clip, rendered: np.ndarray, config: MouthConfig) -> dict:
    """The clip's training samples: {"inputs": (N, C, s, s) float16, "alpha": (N, 1, s, s) float16,
    "target": (N, 3, s, s) float16}, one per frame with a mouth (video/mouth.mouth_inputs, as a render reads
    them), the target the real frame cropped the same way."""
    from vlogger_cli.video.controls import to_unit
    from vlogger_cli.video.mouth import crop

    controls = clip.controls()
    size = rendered.shape[1]
    if controls.parts.shape[1] != size:
        raise InputError(f"clip {clip.id}: controls at {controls.parts.shape[1]}², frames at {size}²")
    prepared = mouth_inputs(rendered, controls.parts, controls.flow, controls.cavity, config,
                            portrait=clip.reference())
    if prepared is None:  # no frame shows a mouth
        return {key: torch.zeros((0, c, config.crop, config.crop), dtype=torch.float16)
                for key, c in (("inputs", IN_CHANNELS), ("alpha", 1), ("target", 3))}
    keep, boxes, inputs, alpha = prepared
    target = crop(to_unit(np.asarray(clip.frames())[keep]), boxes, config.crop)
    return {"inputs": inputs.half(), "alpha": alpha.half(), "target": target.half()}


def video_of(clip_id: str) -> str:
    """The video (file stem) a real-video clip id comes from: `<stem>-<hash>-<first frame>`."""
    return clip_id.rsplit("-", 2)[0]


def build_samples(data: list[tuple[str, float]], weights, cache: Path, config: MouthConfig,
                  log: Callable[[str], None] = print, val_videos=()) -> tuple[list[dict], dict | None]:
    """(per dataset: its train clips' samples concatenated, with the dataset's sampling weight; the samples of
    the clips of `val_videos`, taken out of those, or None)."""
    from vlogger_cli.train.video_data import load_clips
    from vlogger_cli.video.render import load_cascade

    cache.mkdir(parents=True, exist_ok=True)
    models = None
    sets, val = [], []
    for root, weight in data:
        clips = load_clips(root, "train")
        if not clips:
            raise InputError(f"{root}: no train clips; build one with `vlogger train video-data --videos ...`")
        parts = []
        for k, clip in enumerate(clips):
            if models is None and not (cache / f"{clip.id}.npy").is_file():
                models = load_cascade(weights, _dataset_size(root))
            samples = clip_samples(clip, cascade_frames(models, clip, cache), config)
            (val if video_of(clip.id) in val_videos else parts).append(samples)
            if (k + 1) % 20 == 0 or k + 1 == len(clips):
                log(f"{root}: {k + 1}/{len(clips)} clips")
        if not parts:
            raise InputError(f"{root}: every train clip is of a val_videos video; nothing left to train on")
        joined = _join(parts)
        sets.append({**joined, "weight": weight, "root": str(root)})
        log(f"{root}: {len(joined['inputs'])} mouth samples (weight {weight})")
    missing = set(val_videos) - {video_of(c.id) for root, _ in data for c in load_clips(root, "train")}
    if missing:
        raise InputError(f"val_videos {', '.join(sorted(missing))}: no train clip of the data comes from them")
    if val:
        log(f"validation: {sum(len(v['inputs']) for v in val)} mouth samples of {', '.join(val_videos)}")
    return sets, (_join(val) if val else None)


def _join(parts: list[dict]) -> dict:
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


@torch.no_grad()
def validation_loss(model: MouthRefiner, val: dict, batch: int = 64) -> float:
    """mouth_loss over every validation sample (no flips), mean per sample."""
    total, n = 0.0, len(val["inputs"])
    for i in range(0, n, batch):
        part = [val[k][i:i + batch].float() for k in ("inputs", "alpha", "target")]
        total += mouth_loss(model, *part).item() * len(part[0])
    return total / n


def _dataset_size(root) -> int:
    from vlogger_cli.train.video_data import read_index

    return int(read_index(root)["size"])


def draw_batch(sets: list[dict], gen: torch.Generator, size: int) -> tuple[torch.Tensor, ...]:
    """(inputs, alpha, target) float32 of `size` samples: each from a dataset drawn by weight, flipped
    left-right half of the time."""
    w = torch.tensor([s["weight"] for s in sets], dtype=torch.float64)
    which = torch.multinomial(w / w.sum(), size, replacement=True, generator=gen)
    out = [[], [], []]
    for d in range(len(sets)):
        n = int((which == d).sum())
        if not n:
            continue
        idx = torch.randint(len(sets[d]["inputs"]), (n,), generator=gen)
        for j, key in enumerate(("inputs", "alpha", "target")):
            out[j].append(sets[d][key][idx].float())
    inputs, alpha, target = (torch.cat(o) for o in out)
    flip = torch.rand(len(inputs), generator=gen) < 0.5
    for t in (inputs, alpha, target):
        t[flip] = t[flip].flip(-1)
    return inputs, alpha, target


def mouth_loss(model: MouthRefiner, inputs: torch.Tensor, alpha: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error of the pasted crop against the real one (mean over the crop's pixels)."""
    return ((inputs[:, :3] + model(inputs, alpha) - target) ** 2).mean()


def train_mouth(data: list[tuple[str, float]], out: str | Path, cfg: TrainMouthConfig, *, weights,
                cache: str | Path | None = None, resume: bool = False, log: Callable[[str], None] = print,
                stop_at: int | None = None) -> Path | None:
    """Train (or resume) the mouth refiner; returns RUN/final. cache: where the cascade's renders of the
    clips are kept (default RUN/cascade; one folder per cascade: see `cascade_cache`). stop_at: stop after
    that step's checkpoint, as a killed run would (tests); returns None then."""
    import dataclasses

    from vlogger_cli.train.checkpoint import load_checkpoint, open_run, save_checkpoint
    from vlogger_cli.train.ema import EMA

    out = Path(out)
    cfg, pointer = open_run(out, cfg, resume=resume, log=log)
    config = MouthConfig(**cfg.model)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    sets, val = build_samples(data, weights, cascade_cache(Path(cache) if cache else out / "cascade", weights),
                              config, log, val_videos=tuple(cfg.val_videos))
    torch.manual_seed(cfg.seed)
    model = MouthRefiner(config, channels=tuple(cfg.channels))
    ema = EMA(model, cfg.ema_decay, warmup=cfg.ema_warmup)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, running = 0, None
    if pointer is not None:
        state = load_checkpoint(pointer, modules={"model": model, "ema": ema.model}, optimizer=opt,
                                generators={"batches": gen})
        step, ema.num_updates, running = state["step"], state["ema_updates"], state["loss"]
        log(f"resumed at step {step}")
    else:
        atomic_write_json(out / "config.json", dataclasses.asdict(cfg))
        atomic_write_json(out / "data.json", {"data": [[str(d), w] for d, w in data], "weights": str(weights)})
    while step < cfg.steps:
        lr = cfg.lr * min(1.0, (step + 1) / max(cfg.warmup, 1)) * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        loss = mouth_loss(model, *draw_batch(sets, gen, cfg.batch_size))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(model)
        step += 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 50 == 0:
            log(f"step {step}/{cfg.steps} loss {running:.5f} lr {lr:.2e}")
        if val is not None and (step % cfg.val_every == 0 or step == cfg.steps):
            record = {"step": step, "loss": running, "val_loss": validation_loss(ema.model, val)}
            log(f"step {step} validation loss {record['val_loss']:.5f}")
            with open(out / "log.jsonl", "a") as f:  # appended: a resumed run continues the curve
                f.write(json.dumps(record) + "\n")
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            save_checkpoint(out, step, modules={"model": model, "ema": ema.model}, optimizer=opt,
                            generators={"batches": gen}, state={"loss": running, "ema_updates": ema.num_updates},
                            keep=2)
            if stop_at is not None and step >= stop_at and step < cfg.steps:
                return None
    final = out / "final"
    ema.model.save_pretrained(final)
    (final / "train.json").write_text(json.dumps({"steps": step, "loss": running}, indent=2) + "\n")
    log(f"wrote {final}")
    return final
