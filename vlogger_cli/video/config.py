"""Stage-2 model configurations and the size presets (paper §3.2 "Temporal Image Diffusion", §3.3).

A `VideoModelConfig` describes ONE diffusion model of the cascade: the base model at 128² or a
super-resolution model (`lowres_resolution` set). `CASCADES` names a base + its SR models; a job's
`resolution` (256 / 512) says how far down the cascade it goes.

Where the model works ("space"):
- "pixel": frames are pixel-unshuffled by `patch_size` (128² RGB, p = 4 -> 48 x 32²). Lossless,
  nothing to train, free to encode/decode, and the UNet runs on a 32² grid: on the CPU this is as
  cheap as a latent model without a VAE's reconstruction error (which would cap face PSNR).
- "latent": a diffusers VAE (AutoencoderTiny or AutoencoderKL) in the model folder's `vae/`; needed
  for off-the-shelf latent bases such as a Stable-Diffusion UNet (the recipe trains no VAE: bring one).

Prediction target: x0 ("sample"). A pixel-unshuffled grid cell holds 3p² values (48 at p = 4) and a
CPU-sized UNet's first level is barely wider, after GroupNorm + SiLU: it cannot pass white noise
through, so ε- and v-prediction (whose low-noise target IS the noise) leave noisy samples (measured:
~5-10 dB PSNR on the toy data set) while x0-prediction only has to produce the image, which is smooth
and compressible (same model and steps: clean, blurry-at-first frames). ε-prediction also divides by
√ᾱ, which the cosine schedule takes to ~0 at the last timestep. `block_out_channels[0]` must be at
least the grid cell's channels (checked).

The control maps always come at the frame resolution; the ControlNet conditioning embedding
downsamples them to the grid (one stride-2 conv per entry of `conditioning_embedding_out_channels`
after the first).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

from vlogger_cli.body.model import PARTS

FORMAT = "vlogger-video-model"
VERSION = 1


@dataclass
class VideoModelConfig:
    # ---- frames and the space the denoiser works in
    resolution: int = 128                  # frame size (square), pixels
    space: str = "pixel"                   # "pixel" (pixel-unshuffled frames) or "latent" (VAE in vae/)
    patch_size: int = 4                    # pixel space: frames (3, R, R) -> (3 p², R/p, R/p)
    vae_factor: int = 8                    # latent space: spatial downsampling of the VAE
    vae_channels: int = 4                  # latent space: latent channels
    vae_slicing: bool = False              # latent space: encode/decode one frame at a time (a window of 16
                                           # 512² frames through the SD VAE at once needs ~10 GB)
    vae_tiling: bool = False               # latent space: encode/decode in overlapping tiles above the VAE's
                                           # sample size (frames larger than 512² on the SD VAE)
    lowres_resolution: int | None = None   # SR models: size of the low-res frames they are conditioned on
    residual: bool = False                 # SR: denoise the difference to the bicubically upsampled low-res
                                           # frame (the output keeps the low-res structure even if undertrained);
                                           # base with flow_reference: the difference to the flow-warped portrait
                                           # (the `renderer: warp` frame), so an undertrained base is the warp
    zero_init_out: bool = False            # residual x0-models built fresh: zero the UNet's output conv, so the
                                           # untrained model samples exactly its base frames (warp / bicubic)
    residual_scale: float = 1.0            # residual models diffuse (x0 - base) x this: residuals are small (std
                                           # ~0.03-0.05 in [-1, 1] units) next to the schedule's noise, so unscaled
                                           # they sit at a far lower SNR than the schedule was made for and the
                                           # last steps' leftover noise shows as flicker (the same reason Stable
                                           # Diffusion scales its latents to unit variance)
    detail_transfer: float = 0.0           # residual SR with flow_reference: > 0 adds the flow-warped portrait's
                                           # fine detail (warp_hi - up(down(warp_hi))) to the upsampled low-res
                                           # frame where the low-res frame agrees with the warp; the value is
                                           # the gate's tolerance tau in [-1, 1] units (model.detail_gate)
    # ---- the frozen base UNet, when built fresh (a loaded base brings its own config)
    block_out_channels: tuple[int, ...] = (32, 64, 128)
    down_block_types: tuple[str, ...] = ("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D")
    up_block_types: tuple[str, ...] = ("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D")
    layers_per_block: int = 2
    attention_heads: int = 4               # diffusers' `attention_head_dim` (which sets the head count)
    cross_attention_dim: int = 64          # width of the reference tokens
    norm_num_groups: int = 8
    # ---- control branch (ControlNet copy of the encoder)
    conditioning_embedding_out_channels: tuple[int, ...] = (16, 32, 64)  # len-1 stride-2 convs = R / grid
    num_parts: int = len(PARTS)            # C^m classes (one-hot channels)
    flow_reference: bool = False           # also feed the portrait warped by the dense flow (3 channels)
    # ---- reference image (identity) -> cross-attention tokens
    reference_size: int = 64               # the portrait is resized to this before the token encoder
    reference_channels: tuple[int, ...] = (16, 32, 64)  # conv widths; each stage halves the size
    reference_grid: int = 4                # tokens = grid² (+1 global token)
    # ---- temporal layers (1D conv over time after the first resnet of each down block)
    temporal_kernel: int = 3
    # ---- windows (temporal outpainting)
    window: int = 8                        # N frames per window
    overlap: float = 0.5                   # (N - N') / N, the paper's default 50 %
    sample_strength: float = 1.0           # residual models: sample only the last fraction of the noise schedule,
                                           # starting from their base frames noised to that level (CCDF, Chung et
                                           # al. 2022; SDEdit): fewer steps (steps x strength), less invented
                                           # detail. 1.0 = the whole schedule from pure noise (the paper)
    sample_steps: int | None = None        # solver steps this model is sampled with whatever a job asks (None:
                                           # the job's --steps). 1 = its x0 prediction from noise at t = T in one
                                           # call: for a base fine-tuned on real footage this conditional mean
                                           # beat its own 10-step samples (docs/REAL-VIDEO.md)
    residual_blur: float = 0.0             # pixel-space residual models: Gaussian sigma (pixels at `resolution`)
                                           # the sampled residual is smoothed with before it is added to its base:
                                           # its 4x4-patch grid and grain go, the corrections it paints (a mouth)
                                           # stay; the base's own detail is untouched. 0 = off
    noise_sharing: float = 0.0             # share of the initial noise's variance common to every frame of a
                                           # video (one field per video, from its seed; the rest is drawn per
                                           # frame): a near-deterministic solver then paints the same grain on
                                           # every frame instead of new grain per frame (flicker). 0 = i.i.d.
                                           # per frame, as training draws it; 1 = one field for all frames
    # ---- noise schedule (shared by training and every sampler)
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    beta_start: float = 0.0001             # linear / scaled_linear schedules (Stable Diffusion: 0.00085 .. 0.012)
    beta_end: float = 0.02
    prediction_type: str = "sample"        # x0 (see the module docstring); a pretrained base keeps its own
                                           # (e.g. "epsilon" for Stable Diffusion)
    # ---- free text for humans
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name in ("block_out_channels", "down_block_types", "up_block_types",
                     "conditioning_embedding_out_channels", "reference_channels"):
            setattr(self, name, tuple(getattr(self, name)))
        if self.space not in ("pixel", "latent"):
            raise ValueError(f"space must be 'pixel' or 'latent', not {self.space!r}")
        if self.resolution % self.factor:
            raise ValueError(f"resolution {self.resolution} is not a multiple of the grid factor {self.factor}")
        down = 2 ** (len(self.conditioning_embedding_out_channels) - 1)
        if down != self.factor:
            raise ValueError(
                f"conditioning_embedding_out_channels has {len(self.conditioning_embedding_out_channels)} "
                f"entries (downsampling {down}x) but frames -> grid is {self.factor}x: give "
                f"{int(math.log2(self.factor)) + 1} entries")
        if self.lowres_resolution is not None and self.resolution % self.lowres_resolution:
            raise ValueError("resolution must be a multiple of lowres_resolution")
        if self.space == "pixel" and self.block_out_channels[0] < self.sample_channels:
            raise ValueError(
                f"block_out_channels[0] = {self.block_out_channels[0]} is narrower than the {self.sample_channels} "
                f"channels of a frame on the grid: the UNet could not carry per-pixel detail (noise) through; "
                f"widen the first level or use a smaller patch_size")
        if self.residual and self.lowres_resolution is None and not self.flow_reference:
            raise ValueError("residual needs a frame to be relative to: the low-res frames of an SR model "
                             "(set lowres_resolution) or the flow-warped portrait of a base (set flow_reference)")
        if self.detail_transfer and not (self.residual and self.lowres_resolution and self.flow_reference):
            raise ValueError("detail_transfer is for residual SR models that read the flow-warped portrait "
                             "(set residual, lowres_resolution and flow_reference)")
        if self.residual_scale <= 0 or (self.residual_scale != 1 and not self.residual):
            raise ValueError("residual_scale must be > 0 and is for residual models (set residual)")
        if not 0 < self.sample_strength <= 1:
            raise ValueError(f"sample_strength must be in (0, 1], not {self.sample_strength}")
        if self.sample_strength < 1 and not self.residual:
            raise ValueError("sample_strength < 1 starts sampling from the model's base frames: only residual models "
                             "have them (set residual)")
        if self.sample_steps is not None and self.sample_steps < 1:
            raise ValueError(f"sample_steps must be at least 1 (or null: the job's steps), not {self.sample_steps}")
        if self.residual_blur < 0 or (self.residual_blur and not (self.residual and self.space == "pixel")):
            raise ValueError("residual_blur is a sigma >= 0 for pixel-space residual models "
                             "(set residual, space pixel)")
        if not 0 <= self.noise_sharing <= 1:
            raise ValueError(f"noise_sharing must be in [0, 1], not {self.noise_sharing}")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"overlap must be in [0, 1), not {self.overlap}")

    # ---- derived sizes
    @property
    def factor(self) -> int:
        """Frame pixels per grid cell."""
        return self.patch_size if self.space == "pixel" else self.vae_factor

    @property
    def grid(self) -> int:
        """Side of the grid the UNet works on."""
        return self.resolution // self.factor

    @property
    def sample_channels(self) -> int:
        """Channels of a (noisy) frame on the grid."""
        return 3 * self.patch_size ** 2 if self.space == "pixel" else self.vae_channels

    @property
    def lowres_channels(self) -> int:
        """SR: channels of the low-res frames pixel-unshuffled onto the grid (0 for a base model)."""
        if self.lowres_resolution is None:
            return 0
        per_cell = self.lowres_resolution // self.grid
        if per_cell < 1 or self.lowres_resolution % self.grid:
            raise ValueError(f"lowres_resolution {self.lowres_resolution} must be a multiple of the grid {self.grid}")
        return 3 * per_cell ** 2

    @property
    def control_channels(self) -> int:
        """C^d (3) + body mask (1) + C^m one-hot (num_parts) + C^w (3) + its mask (1) [+ flow-warped portrait (3)]."""
        return 3 + 1 + self.num_parts + 3 + 1 + (3 if self.flow_reference else 0)

    @property
    def overlap_frames(self) -> int:
        """N - N': frames each next window takes from the previous one."""
        return int(round(self.overlap * self.window))

    def unet_kwargs(self) -> dict:
        """UNet2DConditionModel constructor arguments for a fresh base of this config."""
        return dict(
            sample_size=self.grid,
            in_channels=self.sample_channels + self.lowres_channels,
            out_channels=self.sample_channels,
            down_block_types=self.down_block_types,
            up_block_types=self.up_block_types,
            mid_block_type="UNetMidBlock2DCrossAttn",
            block_out_channels=self.block_out_channels,
            layers_per_block=self.layers_per_block,
            attention_head_dim=self.attention_heads,
            cross_attention_dim=self.cross_attention_dim,
            norm_num_groups=self.norm_num_groups,
        )

    def scheduler_config(self) -> dict:
        return dict(num_train_timesteps=self.num_train_timesteps, beta_schedule=self.beta_schedule,
                    beta_start=self.beta_start, beta_end=self.beta_end, prediction_type=self.prediction_type,
                    clip_sample=False)

    # ---- (de)serialisation
    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "VideoModelConfig":
        data = {k: v for k, v in data.items() if k not in ("format", "version")}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown video model config fields: {', '.join(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def replace(self, **changes) -> "VideoModelConfig":
        return dataclasses.replace(self, **changes)


def _sr(base: VideoModelConfig, resolution: int, lowres: int, **kw) -> VideoModelConfig:
    return base.replace(resolution=resolution, lowres_resolution=lowres, **kw)


# Presets. CPU: attention only at the coarsest level (ENVIRONMENT.md: self-attention at the top
# resolution is 57 % of a forward), pixel space on a 32² grid. GPU: the paper's 128² base, wider nets.
_CPU_BASE = VideoModelConfig(block_out_channels=(64, 96, 128),
                             notes="2-core CPU demo: 128² base, pixel space p=4 (32² grid)")
# The demo base: the same network predicting a residual over the flow-warped portrait (the warp preview,
# fed to the control branch too), so it starts as the warp and learns corrections: trains in minutes.
# Its residual (std ~0.05) is diffused x5, and sampling runs the last half of the steps from the warp: on the
# demo's validation clips this took the base from below the warp at 128² to above it (weights/video/README.md).
_CPU_BASE_WARP = _CPU_BASE.replace(flow_reference=True, residual=True, zero_init_out=True, residual_scale=5.0,
                                   sample_strength=0.5,
                                   notes="2-core CPU demo: 128² base, pixel space p=4, residual over the warp")
_GPU_BASE = VideoModelConfig(
    patch_size=2, block_out_channels=(128, 256, 384, 512),
    down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    attention_heads=8, cross_attention_dim=256, norm_num_groups=32,
    conditioning_embedding_out_channels=(32, 64), reference_size=128, reference_channels=(32, 64, 128, 256),
    reference_grid=8, window=16, flow_reference=True, notes="GPU: 128² base, pixel space p=2 (64² grid)")

# Latent stage 2 on a pretrained Stable-Diffusion-family base (SD 1.5 / 2.1 layout: DIR/unet + DIR/vae;
# `vlogger train video --preset latent-512 --base DIR`): the frozen base and its VAE bring their own sizes
# (video/pretrained.py reads the VAE factor and channels, and the schedule of DIR/scheduler, over these);
# trained: the ControlNet copy (SD ControlNet's conditioning embedding), the temporal layers, the reference
# tokens. 512² frames = 64² latents; the VAE works one frame at a time (vae_slicing).
_LATENT_512 = VideoModelConfig(
    resolution=512, space="latent", vae_factor=8, vae_channels=4, vae_slicing=True,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    attention_heads=8, cross_attention_dim=768, norm_num_groups=32,
    conditioning_embedding_out_channels=(16, 32, 96, 256), reference_size=224, reference_channels=(32, 64, 128, 256),
    reference_grid=8, window=16, flow_reference=True, beta_schedule="scaled_linear", beta_start=0.00085,
    beta_end=0.012, prediction_type="epsilon",
    notes="GPU: 512² latent (64² latents) on a frozen Stable-Diffusion-family base (--base DIR)")

_SR_DETAIL = dict(detail_transfer=0.08, residual_scale=10.0, sample_strength=0.2)

PRESETS: dict[str, VideoModelConfig] = {
    "tiny": VideoModelConfig(  # tests: ~0.2 M parameters, 32² frames
        resolution=32, patch_size=2, block_out_channels=(16, 32), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), layers_per_block=1, attention_heads=2,
        cross_attention_dim=16, norm_num_groups=4, conditioning_embedding_out_channels=(8, 8),
        reference_size=16, reference_channels=(8, 16), reference_grid=2, window=4, num_train_timesteps=100,
        notes="tests only"),
    "cpu-demo": _CPU_BASE,
    "cpu-demo-warp": _CPU_BASE_WARP,
    "cpu-demo-sr256": _sr(_CPU_BASE, 256, 128, layers_per_block=1, conditioning_embedding_out_channels=(16, 32, 64),
                          residual=True, zero_init_out=True,
                          notes="2-core CPU demo SR 128->256, pixel space p=4 (64² grid), residual"),
    # The same SR whose control branch also reads the portrait warped along the dense flow AT 256² (the
    # sharpest information there is at the output size: the 128² frames and bicubic upsampling cannot hold
    # it). The residual stays over the bicubically upsampled 128² frames; the warp is only a control input.
    "cpu-demo-sr256-warp": _sr(_CPU_BASE, 256, 128, layers_per_block=1,
                               conditioning_embedding_out_channels=(16, 32, 64), residual=True, zero_init_out=True,
                               flow_reference=True,
                               notes="2-core CPU demo SR 128->256, pixel space p=4 (64² grid), residual over "
                                     "bicubic, flow-warped portrait at 256² as a control"),
    # The SR the demo ships: as above, and the residual is over the upsampled 128² frame PLUS the warp's fine
    # detail where the two agree (detail_transfer). Bicubic upsampling cannot restore the portrait's detail
    # (skin, hair, collar) that the 128² frame lost; the warp at 256² has it wherever the body did not
    # disocclude or change shape. So an untrained model already samples the sharp warp where the base kept
    # the warp and the base's own corrections (mouth interior, shading) upsampled elsewhere; training learns
    # what remains. Measured on the demo data (weights/sr/256/README.md): tau = 0.08 (~10 grey levels of the
    # 3x3-blurred difference); the residual (std ~0.02) diffused x10; sampling only the last 20 % of the
    # steps (2 of 10): from pure noise the same model invents detail that flickers (astronaut face PSNR
    # 31.6 dB and 7 grey levels frame to frame on a still target; 41.1 dB and 1.5 at 30 %, 41.3 and 1.4 at 20 %).
    "cpu-demo-sr256-detail": _sr(_CPU_BASE, 256, 128, layers_per_block=1,
                                 conditioning_embedding_out_channels=(16, 32, 64), residual=True, zero_init_out=True,
                                 flow_reference=True, **_SR_DETAIL,
                                 notes="2-core CPU demo SR 128->256, pixel space p=4 (64² grid), residual over "
                                       "bicubic + the flow-warped portrait's detail where they agree"),
    "gpu-base": _GPU_BASE,
    "latent-512": _LATENT_512,
    "latent-256": _LATENT_512.replace(resolution=256, notes="GPU: 256² latent (32² latents) on a frozen "
                                                            "Stable-Diffusion-family base (--base DIR)"),
    # GPU SR: the demo SR's residual (detail transfer, scaled, truncated sampling); chosen on the CPU demo,
    # not yet measured on a GPU-trained model (sample_strength is a sampling setting: change it freely).
    "gpu-sr256": _sr(_GPU_BASE, 256, 128, patch_size=4, conditioning_embedding_out_channels=(16, 32, 64),
                     residual=True, **_SR_DETAIL, notes="GPU SR 128->256 (64² grid), residual with detail transfer"),
    "gpu-sr512": _sr(_GPU_BASE, 512, 256, patch_size=4, conditioning_embedding_out_channels=(16, 32, 64),
                     residual=True, **_SR_DETAIL, notes="GPU SR 256->512 (128² grid), residual with detail transfer"),
}

CASCADES: dict[str, tuple[str, tuple[str, ...]]] = {
    # name: (base preset, SR presets in order); a job at resolution R uses the SR models up to R.
    "cpu-demo": ("cpu-demo", ("cpu-demo-sr256",)),
    "cpu-demo-warp": ("cpu-demo-warp", ("cpu-demo-sr256-detail",)),
    "gpu-256": ("gpu-base", ("gpu-sr256",)),
    "gpu-512": ("gpu-base", ("gpu-sr256", "gpu-sr512")),
    "latent-512": ("latent-512", ()),  # 512² directly, no SR stage
}


def preset(name: str, **overrides) -> VideoModelConfig:
    """A copy of preset `name` with `overrides` applied."""
    if name not in PRESETS:
        raise ValueError(f"unknown video preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name].replace()
