"""Sampling one window of frames (paper §3.2: DDPM; plus fast solvers), with known frames held fixed.

Schedulers are diffusers objects built from the model's own training schedule (one config for
training and every sampler):

| sampler | scheduler | default steps | note |
| --- | --- | --- | --- |
| `ddpm` | DDPMScheduler | 50 | the paper's sampler; stochastic at every step |
| `ddim` | DDIMScheduler (η = 0) | 20 | deterministic given the initial noise |
| `dpm` | DPMSolverMultistepScheduler (DPM-Solver++ 2M) | 10 | default: fastest at equal quality |

Known frames (temporal outpainting, outpaint.py) use the *replacement* method (Song et al. 2021,
"Score-based generative modeling", §"imputation"; Ho et al. 2022 "Video diffusion models", §3.1):
at every step the known frames' x_t is set to q(x_t | x0_known) = √ᾱ_t x0 + √(1−ᾱ_t) ε_k, with ε_k
drawn once per window (so the known trajectory is the one a deterministic solver would follow), and
the model's prediction on them is replaced by the exact target (ε_k, x0 or v) so a multistep solver's
history stays consistent. The new frames see the known ones through the temporal layers at every
step; at the end the known frames are returned exactly. One denoiser call per step (two halves of one
batch with classifier-free guidance): no extra evaluations.

Known PIXELS (video editing, `vlogger edit`: inpainting) use the same replacement, elementwise: `inpaint`
gives clean model-space frames and a 0/1 mask of the same shape (1 = known); known elements follow
their noised ground truth, the rest is denoised while seeing them (RePaint without resampling, Lugmayr et
al. 2022). In pixel space (pixel-unshuffled grid) every model-space element is one pixel channel, so the
mask is exact; latent presets mark a latent cell known only when all its pixels are.

Residual models with `sample_strength` s < 1 (config.py) run only the last s of the solver's steps
(Chung et al. 2022, "Come-closer-diffuse-faster"; Meng et al. 2022, SDEdit): they start from their base
frames (a zero residual) noised to the first kept step's level, so `steps` x s denoiser calls per window.

`noise_sharing` a (config.py) mixes the initial noise (and the known frames' and pixels' fixed noise) as
√a ε_video + √(1−a) ε_frame: ε_video is one field per video, drawn from a generator seeded with the video's
seed, so every window of the video (and a resumed run) gets the same one; each frame's noise keeps unit variance.
With a deterministic solver the grain a model paints then stays put from frame to frame instead of changing
with every frame's own noise (the "mixed noise" prior of Ge et al. 2023, PYoCo, used here at sampling only).
Stochastic solvers' per-step noise (DDPM) stays per frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

from vlogger_cli.video.config import VideoModelConfig

SAMPLERS = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler}
DEFAULT_STEPS = {"ddpm": 50, "ddim": 20, "dpm": 10}
DEFAULT_SAMPLER = "dpm"


def training_scheduler(config: VideoModelConfig) -> DDPMScheduler:
    """The noise schedule the model is trained on (also used by add_noise in training)."""
    return DDPMScheduler(**config.scheduler_config())


def make_scheduler(config: VideoModelConfig, sampler: str = DEFAULT_SAMPLER):
    """A fresh scheduler of kind `sampler` on the model's training schedule."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    # DDPM / DDIM: "trailing" timesteps start at t = T - 1 whatever the step count, as DPM-Solver's do; the
    # default "leading" spacing starts k steps at T(1 - 1/k) (one step: t = 0) while the noise is pure
    # (Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed", §3.3)
    extra = ({"algorithm_type": "dpmsolver++", "solver_order": 2} if sampler == "dpm"
             else {"timestep_spacing": "trailing"})
    return SAMPLERS[sampler].from_config(training_scheduler(config).config, **extra)


@dataclass
class Conditioning:
    """Everything the denoiser is conditioned on in one window (fixed over the steps)."""

    reference_tokens: torch.Tensor           # (B, K, D)
    controls: torch.Tensor | None = None     # (B, T, Cc, R, R)
    lowres: torch.Tensor | None = None       # SR: (B, T, Cl, g, g)
    null_tokens: torch.Tensor | None = None  # (B, K, D) classifier-free guidance: tokens of "no reference"


def noised(x0: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor, t) -> torch.Tensor:
    """q(x_t | x0) = √ᾱ_t x0 + √(1−ᾱ_t) ε (variance-preserving, as every sampler here)."""
    a = alphas_cumprod[int(t)].to(x0.device, torch.float32)
    return (a.sqrt() * x0.float() + (1 - a).sqrt() * noise.float()).to(x0.dtype)


def prediction_target(kind: str, x0: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor, t) -> torch.Tensor:
    """What a perfect model predicts for x_t = noised(x0, noise, t)."""
    if kind == "epsilon":
        return noise
    if kind == "sample":
        return x0
    if kind == "v_prediction":
        a = alphas_cumprod[int(t)].to(x0.device, torch.float32)
        return (a.sqrt() * noise.float() - (1 - a).sqrt() * x0.float()).to(x0.dtype)
    raise ValueError(f"unsupported prediction type {kind!r}")


def randn(shape, generator: torch.Generator | None, device, dtype=torch.float32) -> torch.Tensor:
    """Gaussian noise drawn on the generator's device (CPU generators give the same noise on any device)."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, device=gen_device, dtype=torch.float32).to(device, dtype)


FIELD_SEED_OFFSET = 0x5EED_F1E1D
"""The video's shared noise field is drawn from seed + this (module docstring: `noise_sharing`)."""


def initial_noise(shape, generator: torch.Generator | None, sharing: float, device,
                  dtype=torch.float32) -> torch.Tensor:
    """(B, T, ...) unit-variance noise for one window: per-frame draws from `generator` (in the order they
    are drawn without sharing), mixed with the video's own field (module docstring) when `sharing` > 0."""
    noise = randn(shape, generator, device, dtype)
    if sharing <= 0:
        return noise
    seed = generator.initial_seed() if generator is not None else 0
    # a stream of its own: seeded with the video's seed itself it would repeat the first window's first draws
    field_gen = torch.Generator("cpu").manual_seed((seed + FIELD_SEED_OFFSET) % 2 ** 63)
    field = randn((shape[0], 1, *shape[2:]), field_gen, device, dtype)
    return (sharing ** 0.5 * field + (1 - sharing) ** 0.5 * noise).to(dtype)


def solver_steps(config: VideoModelConfig, steps: int | None, sampler: str = DEFAULT_SAMPLER) -> int:
    """The solver steps a model is sampled with: its own `sample_steps` when it has them (a model made for a
    fixed number of steps takes them whatever the job asks), else the job's `steps`, else the sampler's default."""
    return config.sample_steps or steps or DEFAULT_STEPS[sampler]


def steps_run(steps: int, strength: float) -> int:
    """How many of `steps` a sampler runs with sample_strength `strength`: the last round(steps x strength),
    at least one."""
    return steps if strength >= 1 else max(1, round(steps * strength))


def truncated_timesteps(scheduler, strength: float) -> tuple[torch.Tensor, int]:
    """The scheduler's last `steps_run` timesteps and the index of the first of them, which the scheduler
    is told (multistep solvers count their steps from it)."""
    timesteps = scheduler.timesteps
    begin = len(timesteps) - steps_run(len(timesteps), strength)
    if not begin:
        return timesteps, 0
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return timesteps[begin:], begin


@dataclass
class WindowRequest:
    """One window to sample: what `sample_window` takes, as one item of a batch (`sample_windows`)."""

    cond: Conditioning
    num_frames: int
    known: torch.Tensor | None = None                           # (B, Tk, C, g, g) clean frames at its start
    inpaint: tuple[torch.Tensor, torch.Tensor] | None = None   # (x0, mask) (B|1, T, C, g, g): known pixels
    generator: torch.Generator | None = None                   # this window's own RNG (its video's)

    @property
    def rows(self) -> int:
        return self.cond.reference_tokens.shape[0]


STOCHASTIC = {"ddpm"}
"""Samplers whose every step draws noise from the generator (DDIM runs with η = 0, DPM-Solver++ 2M is the
deterministic variant): a batch of windows gives each window's rows its own generator's draws, which equals
the window alone only for windows of one row each (video/batching.py keeps the others apart)."""


def batch_key(request: WindowRequest, sampler: str) -> tuple:
    """Requests with equal keys can be sampled in one `sample_windows` call, each getting what it would get alone."""
    k = 0 if request.known is None else request.known.shape[1]
    return (request.num_frames, k, request.inpaint is not None, request.cond.controls is not None,
            request.cond.lowres is not None, request.cond.null_tokens is not None,
            request.rows if sampler in STOCHASTIC and request.rows > 1 else 0)


@torch.no_grad()
def sample_window(
    model,
    cond: Conditioning,
    num_frames: int,
    *,
    known: torch.Tensor | None = None,   # (B, Tk, C, g, g) clean model-space frames at the window's start
    inpaint: tuple[torch.Tensor, torch.Tensor] | None = None,  # (x0, mask) (B|1, T, C, g, g): known pixels
    sampler: str = DEFAULT_SAMPLER,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    guidance_scale: float = 1.0,
    autocast: bool | None = None,        # bf16 denoiser (None: on when the tensors are on CUDA)
    callback: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Clean model-space frames (B, num_frames, C, g, g); frames [0, Tk) equal `known` exactly.

    Solver state, noise and the returned frames stay float32 whatever the denoiser runs in."""
    request = WindowRequest(cond, num_frames, known, inpaint, generator)
    return sample_windows(model, [request], sampler=sampler, steps=steps, guidance_scale=guidance_scale,
                          autocast=autocast, callback=callback)[0]


def _cat(parts: list):
    """torch.cat of the parts; one part is returned as it is (a single window runs on exactly its own tensors)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts)


@torch.no_grad()
def sample_windows(
    model,
    requests: list[WindowRequest],
    *,
    sampler: str = DEFAULT_SAMPLER,
    steps: int | None = None,
    guidance_scale: float = 1.0,
    autocast: bool | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> list[torch.Tensor]:
    """`sample_window` for several windows at once (of several videos: video/batching.py): one denoiser call per
    step for all of them, concatenated along the batch. Each window draws its noise from its own generator, in
    the order it would alone, and the solver works elementwise, so each gets what it would get alone up to the
    floating-point differences of a larger batch. The requests must share `batch_key`."""
    cfg = model.config
    first = requests[0]
    if any(batch_key(r, sampler) != batch_key(first, sampler) for r in requests):
        raise ValueError("windows sampled together need the same length, known frames and conditioning kinds")
    rows = [r.rows for r in requests]
    b = sum(rows)
    device, dtype = first.cond.reference_tokens.device, first.cond.reference_tokens.dtype
    shape = (b, first.num_frames, cfg.sample_channels, cfg.grid, cfg.grid)
    k = 0 if first.known is None else first.known.shape[1]
    known = None if not k else _cat([r.known for r in requests])
    guided = guidance_scale != 1.0
    amp = device.type == "cuda" if autocast is None else autocast
    one = len(requests) == 1

    # 1. timesteps (residual models with sample_strength < 1: only the last ones)
    scheduler = make_scheduler(cfg, sampler)
    scheduler.set_timesteps(steps or DEFAULT_STEPS[sampler], device=device)
    alphas = scheduler.alphas_cumprod
    timesteps, begin = truncated_timesteps(scheduler, cfg.sample_strength)
    # 2. initial noise, each window's from its own generator; its first Tk frames are also the fixed noise of
    # the known frames
    noise = _cat([initial_noise((n, *shape[1:]), r.generator, cfg.noise_sharing, device, dtype)
                  for n, r in zip(rows, requests)])
    if begin:  # the base frames (residual 0) noised to the first kept level
        x = noised(torch.zeros_like(noise), noise, alphas, timesteps[0])
    else:
        x = noise * scheduler.init_noise_sigma
    # 3. (guidance) conditional and unconditional halves of one batch
    reference_tokens = _cat([r.cond.reference_tokens for r in requests])
    controls = None if first.cond.controls is None else _cat([r.cond.controls for r in requests])
    lowres = None if first.cond.lowres is None else _cat([r.cond.lowres for r in requests])
    if guided:
        tokens = torch.cat([_cat([r.cond.null_tokens for r in requests]), reference_tokens])
        controls = None if controls is None else torch.cat([torch.zeros_like(controls), controls])
        lowres = None if lowres is None else torch.cat([lowres, lowres])
    else:
        tokens = reference_tokens
    if first.inpaint is not None:
        if one:
            px0, pmask = first.inpaint
        else:  # (1, ...) known pixels broadcast over a window's rows: spelled out before concatenating
            px0 = torch.cat([r.inpaint[0].expand(n, *r.inpaint[0].shape[1:]) for n, r in zip(rows, requests)])
            pmask = torch.cat([r.inpaint[1].expand(n, *r.inpaint[1].shape[1:]) for n, r in zip(rows, requests)])
        px0, pmask = px0.to(device, dtype), pmask.to(device).bool()
        # the known pixels' fixed noise (as for known frames), each window's after its initial noise
        pnoise = _cat([initial_noise((n, *shape[1:]), r.generator, cfg.noise_sharing, device, dtype)
                       for n, r in zip(rows, requests)])
    # stochastic solvers draw noise at every step: one generator per row (each window's rows from its own)
    generator = first.generator if one else [r.generator for n, r in zip(rows, requests) for _ in range(n)]
    # 4. denoising loop
    total = len(timesteps)
    for i, t in enumerate(timesteps):
        # 4a. known frames (and pixels): noised ground truth at this step's level
        if first.inpaint is not None:
            x = torch.where(pmask, noised(px0, pnoise, alphas, t), x)
        if k:
            x[:, :k] = noised(known, noise[:, :k], alphas, t)
        x_in = scheduler.scale_model_input(x, t)
        # 4b. one denoiser call for every frame of the window(s)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            pred = model(torch.cat([x_in, x_in]) if guided else x_in, t, tokens, controls, lowres)
        pred = pred.to(x.dtype)
        if guided:
            uncond, condit = pred.chunk(2)
            pred = uncond + guidance_scale * (condit - uncond)
        # 4c. known frames (and pixels): the exact prediction, so (multistep) solvers stay consistent
        if first.inpaint is not None:
            pred = torch.where(pmask, prediction_target(cfg.prediction_type, px0, pnoise, alphas, t).to(pred.dtype), pred)
        if k:
            pred[:, :k] = prediction_target(cfg.prediction_type, known, noise[:, :k], alphas, t)
        # 4d. scheduler update on the whole batch
        x = scheduler.step(pred, t, x, generator=generator).prev_sample
        if callback is not None:
            callback(i + 1, total)
    # 5. the known frames (and pixels) come back exactly as given
    if first.inpaint is not None:
        x = torch.where(pmask, px0.to(x.dtype), x)
    if k:
        x[:, :k] = known
    return list(x.split(rows)) if not one else [x]
