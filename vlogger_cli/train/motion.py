"""Training the stage-1 motion denoiser (`vlogger train motion`).

    OUT/config.json      the resolved TrainMotionConfig of this run
    OUT/log.jsonl        one line per log interval: step, losses, lr, val loss, seconds
    OUT/checkpoints/…    checkpoint.py layout (model, EMA, optimizer, RNG); OUT/latest.json
    OUT/final/           the exported EMA weights = a motion weights folder (see `export_weights`)

Resuming (`resume=True`) restores model, EMA, optimizer, LR schedule, the torch RNG, the diffusion
noise generator and the numpy batch sampler, so a resumed run takes exactly the steps an
uninterrupted one would have taken — with any number of processes (torchrun / accelerate launch,
train/distributed.py: `batch_size` is the global batch, shared by the processes and `grad_accum`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vlogger_cli.train.configs import config_from_dict
from vlogger_cli.errors import InputError
from vlogger_cli.io import atomic_write_json
from vlogger_cli.motion.dataset import Clip
from vlogger_cli.motion.denoiser import build_denoiser, prepare_audio
from vlogger_cli.motion.diffusion import NUM_TRAIN_TIMESTEPS, LossWeights, diffusion_loss
from vlogger_cli.motion.representation import Normalization
from vlogger_cli.motion.weights import export_weights
from vlogger_cli.train.checkpoint import load_checkpoint, open_run, save_checkpoint
from vlogger_cli.train.distributed import check_precision, session
from vlogger_cli.train.ema import EMA


@dataclass
class TrainMotionConfig:
    """Every knob of a motion training run (a YAML/JSON config file and `--set key=value` override these)."""

    preset: str = "small"  # denoiser size preset (motion.denoiser.PRESETS)
    init: str | None = None  # start from this motion weights folder: its weights AND its normalisation (a
    # fine-tune, e.g. the shipped weights on real footage: the data is put in the units the model was made in)
    model_overrides: dict = field(default_factory=dict)  # constructor arguments on top of the preset
    steps: int = 1800  # optimiser steps (the demo recipe: ~7 min on 2 free CPU cores with threads=1)
    batch_size: int = 24  # windows per optimiser step (all processes and grad_accum micro-batches together)
    grad_accum: int = 1  # micro-batches per step and process (memory; the result does not depend on it)
    window: int = 100  # frames per training window (4 s at 25 fps)
    lr: float = 1e-3  # peak AdamW learning rate
    weight_decay: float = 0.01
    warmup: int = 150  # linear warm-up steps, then cosine decay to lr * min_lr_ratio
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    known_prob: float = 0.5  # share of windows trained with a known prefix (temporal outpainting)
    known_max: float = 0.6  # longest known prefix, as a share of the window
    face_diff: float = 1.0  # LossWeights, see motion.diffusion
    body_diff: float = 1.0
    face_temp: float = 1.0
    body_temp: float = 4.0
    seed: int = 0
    log_every: int = 25
    val_every: int = 200
    val_windows: int = 64  # fixed validation windows (same noise and timesteps every time)
    ckpt_every: int = 200
    keep_checkpoints: int = 3
    threads: int = 0  # torch threads (0: torch's default). On a shared 2-core box 1 is ~5x faster than 2
    device: str = "auto"  # auto | cpu | cuda (several processes: GPU LOCAL_RANK each)
    mixed_precision: str = "auto"  # auto (bf16 on CUDA, fp32 on the CPU) | bf16 | fp32
    tracked_mouth_weight: float = 1.0  # loss weight of jaw/mouth channels on tracked-video datasets (motion_mix)
    synthetic_head_weight: float = 1.0  # loss weight of neck/head channels on the other datasets, in a mix with
    # tracked video (motion_mix)
    head_weight: float = 1.0  # loss weight of the neck/head channels on every dataset (motion_mix): within a clip
    # they move ~0.5 normalised units and, at 1, generated heads move about half as much as the targets
    tracked_mouth_teacher: float = 0.0  # > 0: on tracked-video windows the jaw/mouth targets are the init model's
    # own predictions (a frozen copy, same noisy input), with this weight, instead of the tracked lips (motion_mix)
    face_snr_max: float = 1.0  # noise-level weighting of both losses, face / body channels (LossWeights):
    body_snr_max: float = 1.0  # clamp(SNR(t), 1, max) ("truncated SNR", Salimans & Ho 2022, capped as in min-SNR):
    # > 1 weighs the low-noise steps, where sampling ends and the head shrinks, up to max; 1: uniform

    def __post_init__(self) -> None:
        check_precision(self.mixed_precision)
        if self.init and self.model_overrides:
            raise InputError("model_overrides shape a fresh denoiser; a run started from init keeps init's")
        if self.tracked_mouth_teacher and not self.init:
            raise InputError("tracked_mouth_teacher: the teacher is the init model; give init (e.g. weights/motion)")

    @classmethod
    def from_dict(cls, values: dict) -> "TrainMotionConfig":
        return config_from_dict(cls, values, "motion")

    def loss_weights(self) -> LossWeights:
        return LossWeights(self.face_diff, self.body_diff, self.face_temp, self.body_temp,
                           self.face_snr_max, self.body_snr_max)


class WindowSampler:
    """Random training windows: clip chosen by length, start uniform; short clips are padded and masked."""

    def __init__(self, clips: list[Clip], norm: Normalization, window: int, channel_weights=None, by_teacher=None):
        if not clips:
            raise InputError("the motion dataset has no clips for this split")
        self.window = window
        # (D,) loss weight of each motion channel on this dataset's windows (motion_mix.channel_weights)
        self.channels = torch.ones(len(norm.mean)) if channel_weights is None else torch.as_tensor(channel_weights).float()
        # (D,) 1 on the channels whose target is a teacher's prediction (motion_mix.teacher_channels)
        self.by_teacher = torch.zeros(len(norm.mean)) if by_teacher is None else torch.as_tensor(by_teacher).float()
        self.motion = [torch.as_tensor(norm.normalize(c.motion)) for c in clips]
        self.audio = [prepare_audio(torch.as_tensor(c.features.mel)[None], torch.as_tensor(c.features.energy)[None])[0] for c in clips]
        self.reference = [torch.as_tensor(c.reference) for c in clips]
        lengths = np.array([len(m) for m in self.motion], np.float64)
        self.p = lengths / lengths.sum()

    def batch(self, rng: np.random.Generator, size: int):
        """(motion (B,W,D), audio (B,W,A), reference (B,R), valid (B,W), channel weights (B,D), by teacher (B,D))."""
        w = self.window
        ms, aus, refs, valids = [], [], [], []
        for i in rng.choice(len(self.motion), size=size, p=self.p):
            n = len(self.motion[i])
            start = int(rng.integers(0, max(1, n - w + 1)))
            m, a = self.motion[i][start:start + w], self.audio[i][start:start + w]
            valid = torch.ones(w)
            if len(m) < w:  # pad at the end: the causal model never lets padding reach earlier frames
                valid[len(m):] = 0
                m = torch.cat([m, m[-1:].expand(w - len(m), -1)])
                a = torch.cat([a, a[-1:].expand(w - len(a), -1)])
            ms.append(m), aus.append(a), refs.append(self.reference[i]), valids.append(valid)
        return (torch.stack(ms), torch.stack(aus), torch.stack(refs), torch.stack(valids), self.channels.expand(size, -1),
                self.by_teacher.expand(size, -1))


def known_masks(rng: np.random.Generator, size: int, window: int, prob: float, max_share: float) -> torch.Tensor:
    """(B, W): a known prefix of 1..max_share·W frames for a `prob` share of the windows, else zeros."""
    mask = torch.zeros(size, window)
    for b in range(size):
        if rng.random() < prob:
            mask[b, : int(rng.integers(1, max(2, int(max_share * window) + 1)))] = 1
    return mask


def lr_lambda(cfg: TrainMotionConfig) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def draw_noise(gen: torch.Generator, shape: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """(timesteps (B,), noise (B, T, D)) of one batch, drawn on the CPU: the same numbers on any device and
    for any split of the batch among processes."""
    t = torch.randint(0, NUM_TRAIN_TIMESTEPS, (shape[0],), generator=gen)
    return t, torch.randn(shape, generator=gen)


def masked_loss(model, batch, known, weights, noise, rows: slice = slice(None), teacher=None) -> dict[str, torch.Tensor]:
    """Loss terms of the batch's `rows`, as their share of the whole batch's loss (all rows: the loss).
    teacher: the frozen model whose predictions are the targets of the batch's `by_teacher` channels (none: they
    count 0)."""
    motion, audio, reference, valid, channels, by_teacher = batch
    # invalid (padded) frames count as known: they are excluded from L_diff; their values are the last frame
    mask = torch.maximum(known, 1 - valid)
    count = (1 - mask).sum() * motion.shape[-1]  # L_diff averages over the whole batch's unknown elements
    share = len(range(motion.shape[0])[rows]) / motion.shape[0]  # L_temp is a mean over windows
    device = next(model.parameters()).device
    take = [x[rows].to(device) for x in (motion, audio, reference, mask, channels, by_teacher, *noise)]
    terms = diffusion_loss(model, *take[:3], weights=weights, known_mask=take[3], channel_weights=take[4],
                           timesteps=take[6], noise=take[7], diff_count=count, teacher=teacher,
                           teacher_channels=take[5] if bool(by_teacher.any()) else None)
    return {"loss": terms["diff"] + terms["temp"] * share, "diff": terms["diff"], "temp": terms["temp"] * share}


@torch.no_grad()
def validation_loss(model, batches, weights) -> float:
    """Mean loss over fixed windows, fixed timesteps and noise (comparable across steps and runs)."""
    model.eval()
    gen = torch.Generator().manual_seed(1234)
    total = 0.0
    for batch, known in batches:
        total += float(masked_loss(model, batch, known, weights, draw_noise(gen, batch[0].shape))["loss"])
    return total / max(1, len(batches))


def train_motion(
    data: str | Path, out: str | Path, cfg: TrainMotionConfig, *, resume: bool = False,
    log: Callable[[str], None] = print, stop_at: int | None = None,
) -> dict:
    """Train (or resume) a run in `out` on the dataset in `data` (a folder, "PATH:WEIGHT", or a list of them:
    a weighted mix, train/motion_mix.py); export EMA weights to out/final.

    stop_at: leave after that step's checkpoint as if interrupted (no export); resume later.
    Under torchrun / accelerate launch every process runs this; rank 0 writes (train/distributed.py).
    """
    out = Path(out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cfg, pointer = open_run(out, cfg, resume=resume, log=log)
    with session(cfg.device) as ctx:
        return _train(data, out, cfg, pointer, ctx, log if ctx.main else (lambda message: None), stop_at)


def load_init(path) -> tuple:
    """(a trainable copy of the denoiser, its Normalization) of the motion weights folder `path`."""
    from vlogger_cli.motion.weights import NORMALIZATION, is_weights_folder, read_weights

    if not is_weights_folder(Path(path)):
        raise InputError(f"init: {path} is not a motion weights folder (config.json + {NORMALIZATION}); "
                         f"give an earlier run's final/ or weights/motion")
    model, norm = read_weights(path)  # not load_weights: its cached model is shared with generation
    return model.train(), norm


def _train(data, out: Path, cfg: TrainMotionConfig, pointer, ctx, log, stop_at) -> dict:
    from vlogger_cli.train.motion_mix import motion_samplers

    start = load_init(cfg.init) if cfg.init else None
    norm, sampler, val_sampler, data_info = motion_samplers(data, cfg.window,  # one dataset or a weighted mix
                                                            tracked_mouth_weight=cfg.tracked_mouth_weight,
                                                            synthetic_head_weight=cfg.synthetic_head_weight,
                                                            head_weight=cfg.head_weight,
                                                            tracked_mouth_teacher=cfg.tracked_mouth_teacher,
                                                            norm=start[1] if start else None)

    torch.manual_seed(cfg.seed)
    model = (start[0] if start else build_denoiser(cfg.preset, **cfg.model_overrides)).to(ctx.device)
    teacher = None
    if cfg.tracked_mouth_teacher:  # the init model as it was, frozen (its mouth on tracked windows' inputs)
        teacher = load_init(cfg.init)[0].eval().requires_grad_(False).to(ctx.device)
    ema = EMA(model, cfg.ema_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    gen = torch.Generator().manual_seed(cfg.seed + 1)  # diffusion timesteps and noise
    rng = np.random.default_rng(cfg.seed)  # batches and known masks
    weights = cfg.loss_weights()

    val_rng = np.random.default_rng(10_000 + cfg.seed)
    val_batches = []
    for _ in range(max(1, cfg.val_windows // 16)):
        val_batches.append((val_sampler.batch(val_rng, 16), known_masks(val_rng, 16, cfg.window, cfg.known_prob, cfg.known_max)))

    step, best_val, history = 0, float("inf"), []
    if pointer is not None:
        state = load_checkpoint(pointer, modules={"model": model, "ema": ema.model}, optimizer=opt,
                                lr_scheduler=sched, generators={"diffusion": gen})
        step, best_val = state["step"], state.get("best_val", float("inf"))
        ema.num_updates = state["ema_updates"]
        rng.bit_generator.state = state["numpy_rng"]
        log(f"resumed {out} at step {step}")
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", dataclasses.asdict(cfg))
        norm.save(out / "normalization.safetensors")

    model.train()
    wrapped = ctx.wrap(model, lambda m, batch, known, noise, rows: masked_loss(m, batch, known, weights, noise, rows,
                                                                              teacher))
    micro = ctx.micro_batches(cfg.batch_size, cfg.grad_accum)
    t0, running = time.time(), []
    while step < cfg.steps:
        # the whole batch's plan and noise on every rank (the same numbers for any number of processes);
        # each rank computes its rows only
        batch = sampler.batch(rng, cfg.batch_size)
        known = known_masks(rng, cfg.batch_size, cfg.window, cfg.known_prob, cfg.known_max)
        noise = draw_noise(gen, batch[0].shape)
        losses = ctx.step(wrapped, [(batch, known, noise, rows) for rows in micro], opt, list(model.parameters()),
                          cfg.grad_clip, cfg.mixed_precision)
        sched.step()
        ema.update(model)
        step += 1
        running.append([losses[k] for k in ("loss", "diff", "temp")])
        record = None
        if step % cfg.log_every == 0 or step == cfg.steps:
            mean = np.mean(running, 0)
            running = []
            record = {"step": step, "loss": round(float(mean[0]), 5), "diff": round(float(mean[1]), 5),
                      "temp": round(float(mean[2]), 5), "lr": sched.get_last_lr()[0], "seconds": round(time.time() - t0, 1)}
        if ctx.main and (step % cfg.val_every == 0 or step == cfg.steps):
            record = record or {"step": step}
            record["val_loss"] = round(validation_loss(ema.model, val_batches, weights), 5)
            best_val = min(best_val, record["val_loss"])
            model.train()
        if record and ctx.main:
            history.append(record)
            with open(out / "log.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")
            log(" ".join(f"{k}={v}" for k, v in record.items()))
        if ctx.main and (step % cfg.ckpt_every == 0 or step == cfg.steps):
            save_checkpoint(out, step, modules={"model": model, "ema": ema.model}, optimizer=opt, lr_scheduler=sched,
                            generators={"diffusion": gen}, keep=cfg.keep_checkpoints,
                            state={"best_val": best_val, "ema_updates": ema.num_updates, "numpy_rng": rng.bit_generator.state})
        if stop_at is not None and step >= stop_at and step % cfg.ckpt_every == 0:
            return {"steps": step, "stopped": True}
    info = {"steps": step, **data_info, "config": dataclasses.asdict(cfg), "processes": ctx.world, "val_loss": None}
    if ctx.main:
        info["val_loss"] = round(validation_loss(ema.model, val_batches, weights), 5)
        export_weights(out / "final", ema.model, norm, info)
        log(f"exported EMA weights to {out / 'final'} (val loss {info['val_loss']:.4f})")
    return {**info, "main": ctx.main}
