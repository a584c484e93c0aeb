"""Training the stage-2 video model (`vlogger train video`; SR models: train/sr.py, same loop).

Phases, run in order within one run (paper §3.2 "Temporal Image Diffusion"):
  base      the base UNet + reference encoder, frame by frame (only for a base we make ourselves: no
            pretrained pixel-space base can be downloaded; skip it with a pretrained `base`)
  control   the ControlNet copy (+ reference encoder), frame by frame, large batch, base frozen;
            at its start the copy is re-made from the (trained) base, zero convolutions at zero
  temporal  the temporal layers on clips of `clip_frames` frames, everything else frozen
At each phase boundary the EMA weights become the model (a phase's result is its EMA) and are
exported to OUT/phase_<name>/; the last phase's EMA goes to OUT/final/ (a video model folder).

    OUT/config.json   resolved TrainVideoConfig     OUT/log.jsonl   losses, lr, val loss, seconds
    OUT/checkpoints/  train/checkpoint.py layout     OUT/val/step_XXXXXXXX.png  GT | C^w | sampled
Resuming restores weights, EMA, optimizer, LR schedule, every RNG and the batch sizes (an `auto` one
is not measured again): a resumed run takes exactly the steps an uninterrupted one would have.
`batch_size` / `clip_batch_size` "auto" (train/batch_size.py): on CUDA the largest batch whose measured
step fits the free card memory, on the CPU the default batch of the field.
Several processes (torchrun / accelerate launch, train/distributed.py): the batch sizes are global (shared by
the processes and their `grad_accum` micro-batches; "auto": the measured per-GPU batch x processes x
grad_accum); rank 0 writes; a run resumes on any number of processes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import torch

from vlogger_cli.train.configs import config_from_dict
from vlogger_cli.errors import InputError
from vlogger_cli.io import atomic_write_json
from vlogger_cli.train.batch_size import fit_on_card, parse_batch_size
from vlogger_cli.train.checkpoint import load_checkpoint, open_run, save_checkpoint
from vlogger_cli.train.distributed import autocast, check_precision, session, take_rows
from vlogger_cli.train.ema import EMA
from vlogger_cli.train.motion import lr_lambda
from vlogger_cli.train.ssim import ssim_map
from vlogger_cli.train.video_data import Batch, ClipSampler
from vlogger_cli.train.video_mix import mixed_samplers
from vlogger_cli.video.config import preset
from vlogger_cli.video.model import PHASES, VideoDiffusionModel
from vlogger_cli.video.pretrained import base_folders, fit_config
from vlogger_cli.video.sampling import DEFAULT_SAMPLER, make_scheduler, randn, training_scheduler, truncated_timesteps

COMPONENTS = ("unet", "controlnet", "temporal", "reference_encoder")


@dataclass
class TrainVideoConfig:
    """Every knob of a stage-2 training run (config file + `--set key=value` override these)."""

    preset: str = "cpu-demo"              # video.config.PRESETS (ignored when `init` is given)
    model_overrides: dict = field(default_factory=dict)  # VideoModelConfig fields on top of the preset
    init: str | None = None               # start from this video model folder (e.g. an earlier run's final/)
    base: str | None = None               # frozen pretrained base: a diffusers UNet folder or a Stable Diffusion
                                          # folder (unet/ [+ vae/ + scheduler/]) instead of init's / a fresh one
    vae: str | None = None                # its VAE (AutoencoderKL folder or SD folder): a latent-space model
    phases: list = field(default_factory=lambda: ["base", "control", "temporal"])
    phase_steps: list = field(default_factory=lambda: [3000, 3000, 1500])  # optimiser steps per phase
    batch_size: int | str = 16            # frames per step in the frame phases (base, control); "auto": sized to the card
    clip_batch_size: int | str = 2        # clips per step in the temporal phase; "auto": sized to the card
    auto_memory_fraction: float = 0.85    # "auto" batches: share of the free CUDA memory a step may take
    auto_max_batch: int = 256             # "auto" batches: the largest batch (frames or clips) to choose
    clip_frames: int = 0                  # frames per training clip (0: the model's window N)
    lr: float = 2e-4                      # peak AdamW learning rate (per phase: warm-up, then cosine)
    weight_decay: float = 0.0
    warmup: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    cond_dropout: float = 0.1             # share of items without controls and reference (guidance)
    lowres_noise: float = 0.1             # SR: max std of Gaussian noise on the low-res input (augmentation)
    train_reference_encoder: bool | None = None  # default: in phases base and control
    seed: int = 0
    device: str = "auto"                  # auto | cpu | cuda
    mixed_precision: str = "auto"         # auto (= bf16 on CUDA, fp32 on CPU) | bf16 | fp32
    grad_accum: int = 1                   # micro-batches per step and process (memory; the result does not change)
    log_every: int = 50
    val_every: int = 500
    val_items: int = 8                    # fixed validation items (same noise and timesteps every time)
    val_steps: int = 10                   # DPM-Solver steps of the validation images
    ckpt_every: int = 500
    keep_checkpoints: int = 3
    export_dtype: str = "float32"         # weights of phase_*/ and final/: float32 | float16 (half the size)
    threads: int = 0                      # torch threads (0: torch's default)
    pool: int = 0                         # >0: train from a resident pool of this many converted clips
    pool_refresh: float = 0.25            # clips of the pool replaced per step (pool > 0)
    region_weights: dict = field(default_factory=dict)  # extra loss weight on C^m parts (region_weight_map)
    timesteps: str = "all"                # "all" | "sampled": a residual model's sample_strength s < 1 only ever
                                          # samples the last s of the schedule, so draw training timesteps there
    ssim_weight: float = 0.0              # > 0: add W x (1 - SSIM) of the predicted frames' pixels (x0 models:
                                          # prediction_type "sample"; region_weights weight it too) to the MSE.
                                          # Why: on real footage the held-out face SSIM punishes a correction
                                          # that softens or shifts texture the flow-warp got right, and an
                                          # MSE-trained conditional mean does exactly that; an SSIM term keeps
                                          # local structure (Zhao et al. 2017, "Loss Functions for Image
                                          # Restoration with Neural Networks": L1/MSE + SSIM mixed)

    def __post_init__(self) -> None:
        self.phases, self.phase_steps = list(self.phases), [int(s) for s in self.phase_steps]
        bad = [p for p in self.phases if p not in PHASES]
        if bad or len(self.phases) != len(self.phase_steps) or not self.phases:
            raise InputError(f"phases must be a non-empty list of {', '.join(PHASES)} with one phase_steps entry each; "
                             f"got phases={self.phases} phase_steps={self.phase_steps}")
        self.batch_size = parse_batch_size(self.batch_size, "batch_size")
        if self.base and "base" in self.phases:
            raise InputError("a pretrained --base stays frozen (paper §3.2): train only its control branch, temporal "
                             "layers and reference tokens, e.g. --phases control,temporal --steps 3000,1500")
        check_precision(self.mixed_precision)
        self.clip_batch_size = parse_batch_size(self.clip_batch_size, "clip_batch_size")
        from vlogger_cli.body.model import PARTS

        if self.timesteps not in ("all", "sampled"):
            raise InputError(f"timesteps must be 'all' or 'sampled', not {self.timesteps!r}")
        given = self.ssim_weight
        try:
            self.ssim_weight = float(given)
        except (TypeError, ValueError):
            self.ssim_weight = math.nan
        if isinstance(given, bool) or not 0 <= self.ssim_weight < math.inf:
            raise InputError(f"ssim_weight must be a number >= 0 (0: no SSIM term), not {given!r}")
        unknown = sorted(set(self.region_weights) - set(PARTS[1:]))
        if unknown or any(not float(w) >= 0 for w in self.region_weights.values()):
            raise InputError(f"region_weights: give C^m part names ({', '.join(PARTS[1:])}) with weights >= 0; "
                             f"got {self.region_weights}")

    @classmethod
    def from_dict(cls, values: dict) -> "TrainVideoConfig":
        return config_from_dict(cls, values, "video")

    @property
    def steps(self) -> int:
        return sum(self.phase_steps)

    def phase_at(self, step: int) -> tuple[int, str, int]:
        """(phase index, phase, first step of the phase) that step `step` (0-based) belongs to."""
        first = 0
        for i, (phase, n) in enumerate(zip(self.phases, self.phase_steps)):
            if step < first + n:
                return i, phase, first
            first += n
        return len(self.phases) - 1, self.phases[-1], first - self.phase_steps[-1]


def build_model(cfg: TrainVideoConfig) -> VideoDiffusionModel:
    """The model a run starts from: `init`'s folder, or the preset on a pretrained base (`base`: a diffusers UNet or
    Stable Diffusion folder, frozen; `vae`: its VAE, making the model latent-space; video/pretrained.py) or fresh."""
    unet_dir, vae_dir = base_folders(cfg.base, cfg.vae)
    if cfg.init:
        overrides = cfg.model_overrides or None
        try:
            return VideoDiffusionModel.from_pretrained(cfg.init, base=unet_dir, vae=vae_dir, overrides=overrides)
        except ValueError as err:
            if overrides is None:  # not the user's overrides: let it surface as it is
                raise
            raise InputError(f"model_overrides: {err}") from None
    config = fit_config(preset(cfg.preset, **cfg.model_overrides), unet_dir, vae_dir)  # latent needs a VAE
    return VideoDiffusionModel.from_config(config, base=unet_dir, vae=vae_dir)


@dataclass
class Draws:
    """The random numbers of one batch's loss, drawn on the CPU for the whole batch: the same numbers on any
    device and for any split of the batch among processes and micro-batches (train/distributed.py)."""

    noise: torch.Tensor                     # (B, T, C, g, g) diffusion noise
    steps: torch.Tensor                     # (B,) timesteps, one per clip
    keep: torch.Tensor                      # (B,) uniform draws of the condition dropout
    level: torch.Tensor | None = None       # SR: (B,) uniform draws of the low-res noise level
    low_noise: torch.Tensor | None = None   # SR: (B, T, 3, r, r) low-res augmentation noise

    @classmethod
    def draw(cls, gen: torch.Generator, config, size: int, frames: int, sampled_only: bool = False) -> "Draws":
        """sampled_only: timesteps only from the part of the schedule sampling visits (training_timesteps)."""
        level = low_noise = None
        if config.lowres_resolution:
            r = config.lowres_resolution
            level, low_noise = torch.rand(size, generator=gen), randn((size, frames, 3, r, r), gen, "cpu")
        noise = randn((size, frames, config.sample_channels, config.grid, config.grid), gen, "cpu")
        allowed = training_timestep_set(config, sampled_only)
        steps = allowed[torch.randint(0, len(allowed), (size,), generator=gen)]
        return cls(noise, steps, torch.rand(size, generator=gen), level, low_noise)


def training_timestep_set(config, sampled_only: bool) -> torch.Tensor:
    """The timesteps training draws from, uniformly: the first `training_timesteps` of the schedule, or for a
    model sampled with fixed `sample_steps` (and sampled_only) exactly the timesteps its solver visits (the
    default sampler's; one step: t = T - 1 alone, i.e. the conditional mean from pure noise)."""
    if sampled_only and config.sample_steps:
        scheduler = make_scheduler(config, DEFAULT_SAMPLER)
        scheduler.set_timesteps(config.sample_steps)
        return truncated_timesteps(scheduler, config.sample_strength)[0].long().cpu()
    return torch.arange(training_timesteps(config, sampled_only))


def training_timesteps(config, sampled_only: bool) -> int:
    """How many of the schedule's first timesteps training draws from: all of them, or (sampled_only) the
    ones a sampler with the model's sample_strength s visits, t <= s x T. Why: a residual model sampled
    from its base frames noised half-way never sees t > T/2, so steps spent there teach it nothing it uses
    (and on real footage, whose residual is large, they teach it to invent the frame from noise)."""
    if not sampled_only:
        return config.num_train_timesteps
    return min(config.num_train_timesteps, math.floor(config.sample_strength * config.num_train_timesteps) + 1)


def diffusion_loss(model: VideoDiffusionModel, batch: Batch, phase: str, cfg: TrainVideoConfig,
                   gen: torch.Generator | None, device: torch.device, draws: Draws | None = None) -> torch.Tensor:
    """Noise-prediction loss L^I_diff of one batch (one timestep per clip: all its frames share a level);
    its random numbers are `draws` (the batch's rows of a step's draws), else drawn from `gen`.
    With cfg.ssim_weight > 0 (x0 models) plus ssim_weight x (1 - SSIM) of the predicted frames (ssim_loss)."""
    scheduler = training_scheduler(model.config)
    kind = model.config.prediction_type
    if cfg.ssim_weight > 0 and kind != "sample":
        raise InputError(f"ssim_weight needs a model that predicts the frames (prediction_type 'sample'); this one "
                         f"predicts {kind!r}: use --set ssim_weight=0")
    frames = batch.frames.to(device)
    b, t = frames.shape[:2]
    draws = draws or Draws.draw(gen, model.config, b, t, cfg.timesteps == "sampled")
    lowres = base = None  # base: (B, T, C, g, g) what a residual model's frames are relative to
    with torch.no_grad():
        x0 = model.encode_frames(frames.flatten(0, 1)).unflatten(0, (b, t))  # (B, T, C, g, g)
        if batch.lowres is not None:  # SR: noise-augmented low-res input; residual models learn x - up(low)
            low = batch.lowres.to(device)
            level = draws.level.to(device) * cfg.lowres_noise  # (B,) per-clip noise std
            low = low + draws.low_noise.to(device) * level[:, None, None, None, None]
            lowres = model.lowres_on_grid(low.flatten(0, 1)).unflatten(0, (b, t))
            if model.config.residual:
                ctrl = batch.controls.to(device).flatten(0, 1) if model.config.detail_transfer else None
                base = model.lowres_base(low.flatten(0, 1), ctrl).unflatten(0, (b, t))
        elif model.config.residual:  # base relative to the flow-warped portrait (the controls' last channels)
            base = model.flow_base(batch.controls.to(device).flatten(0, 1)).unflatten(0, (b, t))
        x0 = model.to_residual(x0, base)
    noise, steps = draws.noise.to(device), draws.steps.to(device)
    x_t = scheduler.add_noise(x0, noise, steps)
    target = {"epsilon": noise, "sample": x0}.get(kind)
    if target is None:
        target = scheduler.get_velocity(x0, noise, steps)
    keep = (draws.keep >= cfg.cond_dropout).float().to(device)  # (B,) condition dropout
    reference = batch.reference.to(device) * keep[:, None, None, None]
    controls = None if phase == "base" else batch.controls.to(device) * keep[:, None, None, None, None]
    pred = model(x_t, steps, model.encode_reference(reference), controls, lowres, temporal=phase == "temporal")
    if not cfg.region_weights:
        loss = torch.nn.functional.mse_loss(pred.float(), target.float())
    else:
        weight = region_weight_map(batch.controls.to(device), cfg.region_weights, pred.shape[-1])
        error = (pred.float() - target.float()).pow(2).mean(dim=2, keepdim=True)  # (B, T, 1, g, g)
        loss = (error * weight).sum() / weight.expand_as(error).sum()
    if cfg.ssim_weight > 0:
        loss = loss + cfg.ssim_weight * ssim_loss(model, pred, base, frames, batch.controls, cfg.region_weights)
    return loss


def ssim_loss(model: VideoDiffusionModel, pred: torch.Tensor, base: torch.Tensor | None, frames: torch.Tensor,
              controls: torch.Tensor, weights: dict) -> torch.Tensor:
    """Mean of 1 - SSIM (train/ssim.py) between an x0 model's predicted frames and the target `frames`
    (B, T, 3, R, R), in pixels in [-1, 1]: `pred` (B, T, C, g, g) in model space goes back on top of its `base`
    (residual models; None otherwise) and is decoded, keeping its gradient. With region `weights` the mean is
    weighted per pixel by region_weight_map of `controls` at the frames' resolution, as the MSE is on the grid."""
    pixels = model.decode_frames(model.from_residual(pred, base).flatten(0, 1))  # (B*T, 3, R, R)
    frames = frames.flatten(0, 1).to(pixels.device)
    dissimilarity = 1 - ssim_map(pixels, frames)  # (B*T, 1, R, R), float32
    if not weights:
        return dissimilarity.mean()
    weight = region_weight_map(controls.to(pixels.device), weights, frames.shape[-1]).flatten(0, 1)
    return (dissimilarity * weight).sum() / weight.sum()


def region_weight_map(controls: torch.Tensor, weights: dict, size: int) -> torch.Tensor:
    """(B, T, 1, size, size) per-pixel loss weights 1 + sum of weights[part] x that part's share of the pixel,
    from the C^m one-hot channels of (B, T, C, H, W) controls (video/controls.py order: C^d 3, mask 1, C^m).

    Why: the face is a tenth of a frame and the mouth a hundredth, yet they are what a talking video is judged
    by, and what the flow-warp gets wrong (teeth and mouth interior, lids). An unweighted loss spends the
    capacity of a small model on background and clothes; weighting the parts C^m already marks puts it where
    the warp fails (MuseTalk and Wav2Lip weight the mouth region for the same reason)."""
    from vlogger_cli.body.model import PART_INDEX

    parts = controls[:, :, 4:4 + len(PART_INDEX)]
    extra = sum((float(w) * parts[:, :, PART_INDEX[name]] for name, w in weights.items()), torch.zeros_like(parts[:, :, 0]))
    weight = 1.0 + extra.flatten(0, 1)[:, None]  # (B*T, 1, H, W)
    if weight.shape[-1] != size:
        weight = torch.nn.functional.interpolate(weight, size=(size, size), mode="area")
    return weight.unflatten(0, controls.shape[:2])


@torch.no_grad()
def validation_loss(model, batches: list[Batch], phase: str, cfg: TrainVideoConfig, device) -> float:
    model.eval()
    gen = torch.Generator().manual_seed(1234)
    total = sum(float(diffusion_loss(model, b, phase, cfg, gen, device)) for b in batches)
    return total / max(1, len(batches))


@torch.no_grad()
def validation_images(model, sampler: ClipSampler, path: Path, steps: int, device) -> None:
    """A PNG grid: target frames | C^w | frames sampled by outpainting (first window of a val clip)."""
    from vlogger_cli.export.preview import contact_sheet
    from vlogger_cli.video.controls import from_unit
    from vlogger_cli.video.outpaint import outpaint

    model.eval()
    clip = sampler.clips[0]
    n = min(model.config.window, clip.num_frames)
    target, controls, reference, lowres = sampler.item(clip, 0, n)
    window = next(outpaint(model, controls, reference, n, lowres=lowres, steps=steps, seed=0, device=device,
                           window=n, overlap=0.0))
    c = model.config
    warped = controls[:, 4 + c.num_parts:7 + c.num_parts]
    rows = [from_unit(target), from_unit(warped), window.frames[0].numpy()]
    contact_sheet([img for row in rows for img in row], n, path)


BATCH_FIELDS = {"batch_size": ("base", "control"), "clip_batch_size": ("temporal",)}  # field: phases it feeds


def choose_batch_sizes(cfg: TrainVideoConfig, model: VideoDiffusionModel, sampler: ClipSampler, clip_frames: int,
                       device: torch.device, log: Callable[[str], None] = print) -> dict:
    """{"batch_size": frames per step, "clip_batch_size": clips per step, "measured": per-phase figures}.

    A number is kept. "auto" on the CPU keeps the field's default; on CUDA each phase the field feeds is
    measured (one real forward + backward at batch 1 and 2, on `sampler`'s items, with throwaway RNGs)
    and the field gets the smallest of the phases' largest batches that fit.
    """
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    chosen, measured = {}, {}
    for name, phases in BATCH_FIELDS.items():
        value = getattr(cfg, name)
        phases = [p for p in dict.fromkeys(cfg.phases) if p in phases]
        if value != "auto" or not phases:
            chosen[name] = defaults[name] if value == "auto" else value
            continue
        if device.type != "cuda":
            chosen[name] = defaults[name]
            log(f"{name} auto: not on CUDA ({device.type}), keeping the preset {chosen[name]}")
            continue
        fits = []
        for phase in phases:
            figures = _measure_phase(cfg, model, sampler, phase, clip_frames if phase == "temporal" else 1, device)
            measured[phase] = figures
            fits.append(figures["batch"])
            log(f"{name} auto, phase {phase}: {figures['free_mb']} MB free, {figures['per_sample_mb']} MB per "
                f"{'clip' if phase == 'temporal' else 'frame'}, {figures['fixed_mb']} MB fixed -> {figures['batch']}")
        chosen[name] = min(fits)
        log(f"{name} auto: {chosen[name]} (cap {cfg.auto_max_batch}, {cfg.auto_memory_fraction:.0%} of free memory)")
    return {**chosen, "measured": measured}


def _measure_phase(cfg: TrainVideoConfig, model: VideoDiffusionModel, sampler: ClipSampler, phase: str, frames: int,
                   device: torch.device) -> dict:
    """The largest batch of `phase` that fits the card, with its figures (train/batch_size.fit_on_card)."""
    params = model.set_phase(phase, train_reference_encoder=cfg.train_reference_encoder)
    model.train()
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)

    def step(size: int) -> None:
        batch = sampler.batch(rng, size, frames)
        with autocast(device, cfg.mixed_precision):
            loss = diffusion_loss(model, batch, phase, cfg, gen, device)
        loss.backward()
        model.zero_grad(set_to_none=True)

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # the run's RNGs stay untouched
        return fit_on_card(step, params, device, fraction=cfg.auto_memory_fraction, cap=cfg.auto_max_batch,
                           what=f"auto batch size, phase {phase}")


def export(model: VideoDiffusionModel, path: Path, cfg: TrainVideoConfig) -> None:
    dtype = {"float32": torch.float32, "float16": torch.float16}.get(cfg.export_dtype)
    if dtype is None:
        raise InputError(f"export_dtype must be float32 or float16, not {cfg.export_dtype!r}")
    model.save_pretrained(path, dtype=dtype)


def train_video(data, out: str | Path, cfg: TrainVideoConfig, *, resume: bool = False,
                log: Callable[[str], None] = print, stop_at: int | None = None) -> dict:
    """Train (or resume) a run in `out`; export the EMA model to out/final. `data`: a video dataset folder, or
    a list of folders / "PATH:WEIGHT" sampled in those proportions (train/video_mix.py). `stop_at`: leave after
    that step (tests)."""
    out = Path(out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cfg, pointer = open_run(out, cfg, resume=resume, log=log)
    with session(cfg.device) as ctx:  # one process, or this rank of torchrun's (train/distributed.py)
        return _train(data, out, cfg, pointer, ctx, log if ctx.main else (lambda message: None), stop_at)


def _train(data, out: Path, cfg: TrainVideoConfig, pointer, ctx, log, stop_at) -> dict:
    device = ctx.device
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(device)
    # one dataset, or several mixed in proportion (`--data A --data B:WEIGHT`, train/video_mix.py)
    sampler, val_sampler, data_info = mixed_samplers(data, model.config, pool=cfg.pool, refresh=cfg.pool_refresh)
    clip_frames = cfg.clip_frames or model.config.window
    val_rng = np.random.default_rng(10_000 + cfg.seed)
    val_batches = {p: [val_sampler.batch(val_rng, min(cfg.val_items, 8) if p != "temporal" else 1,
                                         1 if p != "temporal" else clip_frames)
                       for _ in range(max(1, cfg.val_items // 8))] for p in dict.fromkeys(cfg.phases)}

    ema = EMA(model, cfg.ema_decay)
    gen = torch.Generator().manual_seed(cfg.seed + 1)  # timesteps, noise, condition dropout
    rng = np.random.default_rng(cfg.seed)               # batches
    saved_modules = [n for n in COMPONENTS if n != "unet" or "base" in cfg.phases]
    modules = {**{n: getattr(model, n) for n in saved_modules}, **{f"ema_{n}": getattr(ema.model, n) for n in saved_modules}}
    resumed = json.loads((pointer / "state.json").read_text()) if pointer is not None else {}
    if all(name in resumed for name in BATCH_FIELDS):  # the batch sizes the run started with, measured or not
        batches = {name: resumed[name] for name in BATCH_FIELDS}
    else:
        batches = choose_batch_sizes(cfg, model, val_sampler, clip_frames, device, log)
        for name, phases in BATCH_FIELDS.items():  # measured per GPU: a step's global batch fills every GPU
            if getattr(cfg, name) == "auto" and any(p in batches["measured"] for p in phases):
                batches[name] = ctx.minimum(batches[name]) * ctx.world * cfg.grad_accum
    batch_size, clip_batch_size = batches["batch_size"], batches["clip_batch_size"]

    def setup(phase_index: int):
        phase = cfg.phases[phase_index]
        params = model.set_phase(phase, train_reference_encoder=cfg.train_reference_encoder)
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(SimpleNamespace(
            warmup=cfg.warmup, steps=cfg.phase_steps[phase_index], min_lr_ratio=cfg.min_lr_ratio)))
        wrapped = ctx.wrap(model, lambda m, batch, draws, share: {
            "loss": diffusion_loss(m, batch, phase, cfg, None, device, draws) * share})  # share of the step's loss
        return phase, params, opt, sched, wrapped

    step, current = 0, 0
    if pointer is not None:
        current = resumed["phase_index"]
        phase, params, opt, sched, wrapped = setup(current)
        state = load_checkpoint(pointer, modules=modules, optimizer=opt, lr_scheduler=sched, generators={"diffusion": gen})
        step, ema.num_updates = state["step"], state["ema_updates"]
        rng.bit_generator.state = state["numpy_rng"]
        log(f"resumed {out} at step {step} (phase {phase})")
    else:
        phase, params, opt, sched, wrapped = setup(0)
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", dataclasses.asdict(cfg))

    t0, running, history = time.time(), [], []
    while step < cfg.steps and (stop_at is None or step < stop_at):
        index, _, _ = cfg.phase_at(step)
        if index != current:  # phase boundary: the finished phase's EMA becomes the model
            model.load_state_dict(ema.model.state_dict())
            if ctx.main:
                export(ema.model, out / f"phase_{cfg.phases[current]}", cfg)
            current = index
            del wrapped  # its DDP hooks go with it
            phase, params, opt, sched, wrapped = setup(current)
            if phase == "control" and "base" in cfg.phases[:current]:
                model.reset_control_branch()  # ControlNet's init: a copy of the base as trained now
            ema.model.load_state_dict(model.state_dict())
            log(f"step {step}: phase {phase}")
        model.train()
        frames = clip_frames if phase == "temporal" else 1
        size = clip_batch_size if phase == "temporal" else batch_size
        # the whole batch's plan and random numbers on every rank; each rank loads and computes its rows only
        parts = ctx.micro_batches(size, cfg.grad_accum)
        mine = slice(parts[0].start, parts[-1].stop)
        batch = sampler.batch(rng, size, frames, rows=mine)
        draws = Draws.draw(gen, model.config, size, frames, cfg.timesteps == "sampled")
        micro = [(take_rows(batch, slice(r.start - mine.start, r.stop - mine.start)), take_rows(draws, r),
                  (r.stop - r.start) / size) for r in parts]
        loss = ctx.step(wrapped, micro, opt, params, cfg.grad_clip, cfg.mixed_precision)["loss"]
        sched.step()
        ema.update(model)
        step += 1
        running.append(loss)
        end_of_phase = step == sum(cfg.phase_steps[:current + 1])
        record = None
        if step % cfg.log_every == 0 or end_of_phase:
            record = {"step": step, "phase": phase, "loss": round(float(np.mean(running)), 5),
                      "lr": sched.get_last_lr()[0], "seconds": round(time.time() - t0, 1)}
            if device.type == "cuda":  # this process's peak so far (rank 0's GPU)
                record["gpu_peak_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            running = []
        if ctx.main and (step % cfg.val_every == 0 or end_of_phase):
            record = record or {"step": step, "phase": phase}
            record["val_loss"] = round(validation_loss(ema.model, val_batches[phase], phase, cfg, device), 5)
            validation_images(ema.model, val_sampler, out / "val" / f"step_{step:08d}.png", cfg.val_steps, device)
        if record and ctx.main:
            history.append(record)
            with open(out / "log.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")
            log(" ".join(f"{k}={v}" for k, v in record.items()))
        if ctx.main and (step % cfg.ckpt_every == 0 or end_of_phase):
            save_checkpoint(out, step, modules=modules, optimizer=opt, lr_scheduler=sched, generators={"diffusion": gen},
                            keep=cfg.keep_checkpoints, state={"phase": phase, "phase_index": current,
                                                              "ema_updates": ema.num_updates,
                                                              "batch_size": batch_size,
                                                              "clip_batch_size": clip_batch_size,
                                                              "numpy_rng": rng.bit_generator.state})
    info = {"steps": step, "history": history, "train_clips": data_info["train_clips"],
            "val_clips": data_info["val_clips"],
            "config": dataclasses.asdict(cfg), "batch_size": batch_size, "clip_batch_size": clip_batch_size,
            "data": data_info["data"] if len(data_info["data"]) > 1 else str(data_info["data"][0]["path"])}
    if batches.get("measured"):
        info["batch_measured"] = batches["measured"]
    if step >= cfg.steps and ctx.main:
        export(ema.model, out / f"phase_{cfg.phases[current]}", cfg)
        export(ema.model, out / "final", cfg)
        atomic_write_json(out / "final" / "training.json", {k: v for k, v in info.items() if k != "history"})
        log(f"exported EMA weights to {out / 'final'}")
    return {**info, "main": ctx.main}
