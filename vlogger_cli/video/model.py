"""The stage-2 video denoiser (paper §3.2 "Temporal Image Diffusion"): frozen base + control branch +
temporal layers + reference tokens, on diffusers parts.

    sample (B, T, C, g, g) ─┬─► [SR: ⊕ low-res frames] ─► ControlNet copy of the encoder ◄── controls
                            │                                     │ zero-conv residuals   (B, T, Cc, R, R)
                            └────────────────────────────► frozen base UNet (+ temporal convs) ─► ε̂
    reference (B, 3, H, W) ─► ReferenceEncoder ─► tokens ─► cross-attention of both

- base `unet`: any `UNet2DConditionModel` (a diffusers checkpoint folder, or fresh from the preset).
  Frozen after its own pre-training (train phase "base", which the demo needs because no pretrained
  pixel-space model can be downloaded).
- `controlnet`: `ControlNetModel.from_unet` — a trainable copy of the base's encoder whose outputs
  enter the base through zero convolutions, so an untrained branch changes nothing.
- `temporal`: TemporalLayers hooked after the first resnet of each base down block (zero-init).
- `reference_encoder`: portrait -> cross-attention tokens (reference.py says why).
- `vae`: latent-space presets only; pixel-space presets pixel-unshuffle frames onto the grid.

Folder layout (`save_pretrained` / `from_pretrained`, offline, `local_files_only=True`):
    DIR/video_model.json  DIR/unet/  DIR/controlnet/  DIR/temporal/  DIR/reference_encoder/  [DIR/vae/]
A folder holding only `video_model.json` + `unet/` is valid: missing trainable parts start at their
zero/identity initialisation. `from_pretrained(DIR, base=OTHER)` takes the frozen base from elsewhere.
A model built on a pretrained base folder (a Stable Diffusion UNet + VAE, video/pretrained.py) is saved
without copying it: DIR/base.json names the folders it loads them from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import ControlNetModel, UNet2DConditionModel
from torch import nn

from vlogger_cli.io import atomic_write_text
from vlogger_cli.video.config import VideoModelConfig
from vlogger_cli.video.reference import ReferenceEncoder
from vlogger_cli.video.temporal import TemporalLayers

CONFIG_NAME = "video_model.json"
PHASES = ("base", "control", "temporal")


REUSABLE_OVERRIDES = ("residual_scale", "sample_strength", "sample_steps", "noise_sharing", "residual_blur",
                      "detail_transfer", "overlap", "notes")
"""Config fields a model loaded from a folder may change: scales and sampling settings, no weight shapes."""


class VideoDiffusionModel(nn.Module):
    def __init__(self, config: VideoModelConfig, unet: UNet2DConditionModel, controlnet: ControlNetModel,
                 temporal: TemporalLayers, reference_encoder: ReferenceEncoder, vae: nn.Module | None = None):
        super().__init__()
        self.config = config
        self.unet, self.controlnet, self.temporal = unet, controlnet, temporal
        self.reference_encoder, self.vae = reference_encoder, vae
        self._check()
        temporal.attach(unet)
        self.base_record: tuple | None = None  # (UNet folder, VAE folder) of a pretrained base, not copied on save
        self.calls = 0              # denoiser forwards
        self.frame_evaluations = 0  # frames through the denoiser (B * T per forward)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: VideoModelConfig, *, base: str | os.PathLike | UNet2DConditionModel | None = None,
                    vae: str | os.PathLike | nn.Module | None = None) -> "VideoDiffusionModel":
        """A new model: the base from a diffusers folder / module (or fresh from `config`), the rest initialised.
        A base (and VAE) given as folders are recorded, not copied, when the model is saved."""
        folder = (str, os.PathLike)
        record = (base, vae if isinstance(vae, folder) else None) if isinstance(base, folder) else None
        if base is None:
            unet = UNet2DConditionModel(**config.unet_kwargs())
            if config.zero_init_out and config.residual and config.prediction_type == "sample":
                # a fresh residual x0-model starts by predicting a zero residual: its samples are the frames
                # it is relative to (the warp preview / the upsampled low-res frames), and training corrects them
                nn.init.zeros_(unet.conv_out.weight)
                nn.init.zeros_(unet.conv_out.bias)
        elif isinstance(base, UNet2DConditionModel):
            unet = base
        else:
            unet = UNet2DConditionModel.from_pretrained(base, local_files_only=True, low_cpu_mem_usage=False)
        controlnet = ControlNetModel.from_unet(
            unet, conditioning_channels=config.control_channels,
            conditioning_embedding_out_channels=config.conditioning_embedding_out_channels)
        temporal = TemporalLayers.for_unet(unet, kernel=config.temporal_kernel)
        reference = ReferenceEncoder(size=config.reference_size, channels=config.reference_channels,
                                     grid=config.reference_grid, dim=unet.config.cross_attention_dim)
        model = cls(config, unet, controlnet, temporal, reference, _make_vae(config, vae))
        model.base_record = record
        return model

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, base: str | os.PathLike | None = None,
                        vae: str | os.PathLike | None = None,
                        torch_dtype: torch.dtype | None = None, overrides: dict | None = None) -> "VideoDiffusionModel":
        """Load a model folder; `base` / `vae`: take the frozen UNet / VAE from these folders instead.
        overrides: VideoModelConfig fields that leave the weights' shapes alone (REUSABLE_OVERRIDES), e.g. a
        fine-tune on other data with another residual_scale."""
        path = Path(path)
        if not (path / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{path} is not a video model folder (no {CONFIG_NAME})")
        values = json.loads((path / CONFIG_NAME).read_text())
        if overrides:
            bad = sorted(set(overrides) - set(REUSABLE_OVERRIDES))
            if bad:
                raise ValueError(f"{', '.join(bad)} would change the shape of {path}'s weights; a model started "
                                 f"from it may override only {', '.join(REUSABLE_OVERRIDES)}")
            values = {**values, **overrides}
        config = VideoModelConfig.from_dict(values)
        # low_cpu_mem_usage=False: diffusers otherwise asks for `accelerate` on every load (our models are small)
        kw = dict(local_files_only=True, low_cpu_mem_usage=False)
        if torch_dtype:
            kw["torch_dtype"] = torch_dtype
        record = None
        if base is None and not (path / "unet").is_dir():  # built on a pretrained base: base.json names it
            from vlogger_cli.video.pretrained import recorded_base

            base, recorded_vae = recorded_base(path)
            vae, record = vae or recorded_vae, (base, vae or recorded_vae)
        unet = UNet2DConditionModel.from_pretrained(base or path / "unet", **kw)
        vae = vae or (path / "vae" if (path / "vae").is_dir() else None)
        model = cls.from_config(config, base=unet, vae=vae)
        model.base_record = record
        for name, klass in (("controlnet", ControlNetModel), ("temporal", TemporalLayers),
                            ("reference_encoder", ReferenceEncoder)):
            if (path / name).is_dir():
                loaded = klass.from_pretrained(path / name, **kw)
                getattr(model, name).load_state_dict(loaded.state_dict())
        return model.to(torch_dtype) if torch_dtype else model

    def save_pretrained(self, path: str | os.PathLike, *, save_base: bool | None = None,
                        dtype: torch.dtype | None = None) -> Path:
        """Write every component in diffusers format (safetensors + config.json) and video_model.json.

        save_base: copy the frozen UNet (and VAE) into the folder; default: unless they came from a pretrained
        base folder, which base.json then names. dtype: store the weights in this dtype (torch.float16 halves
        the folder; loading gives float32 again).
        """
        import copy

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if save_base is None:
            save_base = self.base_record is None
        parts = {"controlnet": self.controlnet, "temporal": self.temporal, "reference_encoder": self.reference_encoder}
        if save_base:
            parts["unet"] = self.unet
        if self.vae is not None and (save_base or self.base_record is None or self.base_record[1] is None):
            parts["vae"] = self.vae
        if not save_base and self.base_record is not None:
            from vlogger_cli.video.pretrained import write_base_record

            write_base_record(path, *self.base_record)
        for name, module in parts.items():
            if dtype is not None and dtype != next(module.parameters()).dtype:
                module = copy.deepcopy(module).to(dtype)
            module.save_pretrained(path / name, safe_serialization=True)
        atomic_write_text(path / CONFIG_NAME, self.config.to_json())  # last: marks the folder complete
        return path

    def _check(self) -> None:
        c, u = self.config, self.unet.config
        want = c.sample_channels + c.lowres_channels
        if u.in_channels != want or u.out_channels != c.sample_channels:
            raise ValueError(f"base UNet has in/out channels {u.in_channels}/{u.out_channels}; this {c.space}-space "
                             f"config needs {want}/{c.sample_channels}")
        if self.controlnet.config.conditioning_channels != c.control_channels:
            raise ValueError("control branch was built for a different set of control channels")

    # ------------------------------------------------------------------ frames <-> grid
    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, R, R) in [-1, 1] -> (N, C, g, g) model-space frames (the clean x0 of diffusion)."""
        if self.vae is None:  # contiguous: pixel_unshuffle returns channels-last strides
            return F.pixel_unshuffle(frames, self.config.patch_size).contiguous()
        if hasattr(self.vae, "quant_conv"):  # AutoencoderKL: the mean, so encoding is deterministic
            return self.vae.encode(frames).latent_dist.mode() * self.vae.config.scaling_factor
        return self.vae.encode(frames).latents * self.vae.config.scaling_factor

    def decode_frames(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, g, g) -> (N, 3, R, R) in [-1, 1] (not clamped)."""
        if self.vae is None:
            return F.pixel_shuffle(x, self.config.patch_size)
        return self.vae.decode(x / self.vae.config.scaling_factor).sample

    def known_on_grid(self, known: torch.Tensor) -> torch.Tensor:
        """Inpainting: a pixel mask (N, 1, R, R) bool (True = known) -> (N, C, g, g) bool in model space.
        Pixel space: exact (each model-space element is one pixel's channel). Latent space: a latent cell is
        known only when every pixel it covers is."""
        known = known.float()
        if self.vae is None:
            return F.pixel_unshuffle(known.expand(-1, 3, -1, -1), self.config.patch_size) > 0.5
        cells = F.adaptive_avg_pool2d(known, self.config.grid) > 0.999
        return cells.expand(-1, self.config.sample_channels, -1, -1)

    def lowres_on_grid(self, lowres: torch.Tensor) -> torch.Tensor:
        """SR: low-res frames (N, 3, r, r) in [-1, 1] -> (N, 3 (r/g)², g, g), every low-res pixel kept."""
        return F.pixel_unshuffle(lowres, self.config.lowres_resolution // self.config.grid).contiguous()

    def lowres_base(self, lowres: torch.Tensor, controls: torch.Tensor | None = None) -> torch.Tensor | None:
        """Residual SR: the point (N, C, g, g) the model's frames are relative to: the low-res frames (N, 3, r, r)
        upsampled (bicubic), plus with `detail_transfer` the gated fine detail of the flow-warped portrait in
        `controls` (N, Cc, R, R); None for other models."""
        if not self.config.residual or self.config.lowres_resolution is None:
            return None
        size = self.config.resolution
        up = F.interpolate(lowres, size=(size, size), mode="bicubic", align_corners=False)
        if self.config.detail_transfer:
            if controls is None:
                raise ValueError("a detail_transfer SR model needs the controls (with the flow-warped portrait)")
            up = up + self.warp_detail(lowres, controls[:, -3:].to(up.dtype))
        return self.encode_frames(up.clamp(-1, 1))

    def warp_detail(self, lowres: torch.Tensor, warp: torch.Tensor) -> torch.Tensor:
        """(N, 3, R, R) the warp's detail that upsampling the low-res frame cannot restore,
        warp - up(down(warp)), kept where the low-res frame agrees with the warp (detail_gate)."""
        r, size = lowres.shape[-1], self.config.resolution
        warp = warp.clamp(-1, 1)
        warp_low = F.interpolate(warp, size=(r, r), mode="area")
        warp_up = F.interpolate(warp_low, size=(size, size), mode="bicubic", align_corners=False)
        return self.detail_gate(lowres, warp_low, size) * (warp - warp_up)

    def detail_gate(self, lowres: torch.Tensor, warp_low: torch.Tensor, size: int) -> torch.Tensor:
        """(N, 1, R, R) in (0, 1]: exp(-(d / tau)^2) of d, the 3x3-averaged colour difference between the
        low-res frame and the warp at low res (averaging ignores the per-pixel noise SR training adds to the
        low-res input). Where the base regenerated (mouth interior, disocclusions) d is large and no stale
        warp detail is pasted over it."""
        d = (lowres - warp_low).abs().mean(1, keepdim=True)
        d = F.avg_pool2d(d, 3, stride=1, padding=1, count_include_pad=False)
        gate = torch.exp(-(d / self.config.detail_transfer) ** 2)
        return F.interpolate(gate, size=(size, size), mode="bilinear", align_corners=False)

    def flow_base(self, controls: torch.Tensor) -> torch.Tensor:
        """Residual base: the flow-warped portrait (the last 3 control channels, (N, Cc, R, R)) in model space."""
        return self.encode_frames(controls[:, -3:].clamp(-1, 1))

    def residual_base(self, controls: torch.Tensor | None = None, lowres: torch.Tensor | None = None
                      ) -> torch.Tensor | None:
        """The frames (N, C, g, g) a residual model's samples are relative to: the upsampled low-res frames
        (SR, `lowres` (N, 3, r, r)) or the flow-warped portrait (base, `controls` (N, Cc, R, R)); None when
        the model is not residual."""
        if not self.config.residual:
            return None
        if self.config.lowres_resolution is not None:
            return self.lowres_base(lowres, controls)
        return self.flow_base(controls)

    def to_residual(self, x0: torch.Tensor, base: torch.Tensor | None) -> torch.Tensor:
        """Model-space frames -> what a residual model diffuses: (x0 - base) x residual_scale (x0 itself when
        the model is not residual, base None)."""
        return x0 if base is None else (x0 - base) * self.config.residual_scale

    def smooth_residual(self, z: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """(..., C, g, g) sampled residuals blurred in pixel space by config.residual_blur (unchanged at 0);
        `known` (broadcastable 0/1 mask on the grid): elements given by the caller (inpainting) stay as they are."""
        sigma = self.config.residual_blur
        if not sigma:
            return z
        shape = z.shape
        pixels = self.decode_frames(z.reshape(-1, *shape[-3:]).float())
        smooth = self.encode_frames(gaussian_blur(pixels, sigma)).reshape(shape).to(z.dtype)
        return smooth if known is None else torch.where(known.bool(), z, smooth)

    def from_residual(self, z: torch.Tensor, base: torch.Tensor | None) -> torch.Tensor:
        """The inverse of to_residual: sampled residuals -> model-space frames."""
        return z if base is None else base + z / self.config.residual_scale

    def encode_reference(self, reference: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, K, D) cross-attention tokens."""
        return self.reference_encoder(reference)

    # ------------------------------------------------------------------ the denoiser
    def forward(
        self,
        sample: torch.Tensor,                   # (B, T, C, g, g) noisy model-space frames
        timestep: torch.Tensor | int,           # scalar or (B,)
        reference_tokens: torch.Tensor,         # (B, K, D)
        controls: torch.Tensor | None = None,   # (B, T, Cc, R, R); None: the base alone
        lowres: torch.Tensor | None = None,     # SR: (B, T, Cl, g, g) low-res frames on the grid
        *,
        conditioning_scale: float = 1.0,
        temporal: bool = True,                  # False: frames are independent (training phase 1)
    ) -> torch.Tensor:
        """The base's prediction (ε, v or x0 per config.prediction_type) for every frame: (B, T, C, g, g)."""
        b, t = sample.shape[:2]
        self.calls += 1
        self.frame_evaluations += b * t
        timestep = torch.as_tensor(timestep, device=sample.device)
        self.temporal.set_frames(t if temporal else None)
        try:
            return self.denoise(sample, timestep, reference_tokens, controls, lowres, conditioning_scale)
        finally:
            self.temporal.set_frames(None)

    def denoise(self, sample: torch.Tensor, timestep: torch.Tensor, reference_tokens: torch.Tensor,
                controls: torch.Tensor | None, lowres: torch.Tensor | None, conditioning_scale: float) -> torch.Tensor:
        """`forward`'s tensor work, and nothing else: the part `torch.compile` compiles (video/compile.py). The
        call counters and the temporal layers' frame count stay outside it, in Python, so a compiled graph is
        not guarded on them (a counter that changes every call would recompile every call)."""
        b, t = sample.shape[:2]
        x = sample.flatten(0, 1)  # (B*T, C, g, g)
        if lowres is not None:
            x = torch.cat([x, lowres.flatten(0, 1).to(x.dtype)], dim=1)
        ts = timestep.expand(b) if timestep.ndim == 0 else timestep
        ts = ts.repeat_interleave(t)  # (B*T,)
        tokens = reference_tokens.repeat_interleave(t, dim=0)  # (B*T, K, D)
        down, mid = None, None
        if controls is not None:
            down, mid = self.controlnet(x, ts, encoder_hidden_states=tokens,
                                        controlnet_cond=controls.flatten(0, 1).to(x.dtype),
                                        conditioning_scale=conditioning_scale, return_dict=False)
        out = self.unet(x, ts, encoder_hidden_states=tokens, down_block_additional_residuals=down,
                        mid_block_additional_residual=mid, return_dict=False)[0]
        return out.unflatten(0, (b, t))

    # ------------------------------------------------------------------ training phases
    def set_phase(self, phase: str, *, train_reference_encoder: bool | None = None) -> list[nn.Parameter]:
        """Freeze everything but what `phase` trains (paper: controls frame by frame with the base frozen,
        then the temporal layers on clips with the controls frozen); return the trainable parameters.

        base: unet + reference encoder · control: controlnet (+ reference encoder by default) · temporal: temporal.
        """
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; choose one of {', '.join(PHASES)}")
        self.requires_grad_(False)
        trained = {"base": [self.unet], "control": [self.controlnet], "temporal": [self.temporal]}[phase]
        if train_reference_encoder if train_reference_encoder is not None else phase != "temporal":
            trained.append(self.reference_encoder)
        for module in trained:
            module.requires_grad_(True)
        return [p for m in trained for p in m.parameters()]

    def reset_control_branch(self) -> None:
        """Copy the (newly trained) base encoder into the control branch again, zero convolutions at zero:
        ControlNet's initialisation, redone after training phase "base"."""
        fresh = ControlNetModel.from_unet(
            self.unet, conditioning_channels=self.config.control_channels,
            conditioning_embedding_out_channels=self.config.conditioning_embedding_out_channels)
        self.controlnet.load_state_dict(fresh.state_dict())

    def num_parameters(self) -> dict[str, int]:
        parts = {"unet": self.unet, "controlnet": self.controlnet, "temporal": self.temporal,
                 "reference_encoder": self.reference_encoder}
        if self.vae is not None:
            parts["vae"] = self.vae
        return {k: sum(p.numel() for p in m.parameters()) for k, m in parts.items()}


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, C, H, W) separable Gaussian blur, edges replicated."""
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-x ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    rows, cols = kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    out = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="replicate"), rows, groups=c)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), cols, groups=c)


def _make_vae(config: VideoModelConfig, vae) -> nn.Module | None:
    if config.space == "pixel":
        return None
    if isinstance(vae, nn.Module):
        return vae
    from diffusers import AutoencoderKL, AutoencoderTiny

    if vae is None:  # fresh (to be trained): a TAESD-shaped autoencoder of the configured factor
        blocks = max(1, int(round(torch.log2(torch.tensor(float(config.vae_factor))).item())) + 1)
        vae = AutoencoderTiny(latent_channels=config.vae_channels, encoder_block_out_channels=(32,) * blocks,
                              decoder_block_out_channels=(32,) * blocks, num_encoder_blocks=(1,) + (2,) * (blocks - 1),
                              num_decoder_blocks=(2,) * (blocks - 1) + (1,))
    else:
        cls_name = json.loads((Path(vae) / "config.json").read_text()).get("_class_name", "AutoencoderTiny")
        klass = {"AutoencoderKL": AutoencoderKL, "AutoencoderTiny": AutoencoderTiny}.get(cls_name)
        if klass is None:
            raise ValueError(f"{vae}: unsupported VAE class {cls_name}; use AutoencoderKL or AutoencoderTiny")
        vae = klass.from_pretrained(vae, local_files_only=True, low_cpu_mem_usage=False).requires_grad_(False)
    if config.vae_slicing and hasattr(vae, "enable_slicing"):
        vae.enable_slicing()  # one frame at a time through the VAE: a window's frames at once need ~10 GB at 512²
    if config.vae_tiling and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
    return vae
