"""The motion denoiser M of VLOGGER §3.1: a causal transformer that predicts clean motion x0.

Per frame t the input token is built from
  - the noisy motion x_t (normalised, D channels),
  - the known motion for temporal outpainting (D channels, zero where unknown) and its mask (1 channel),
  - the audio features of frame t: the log-mel spectrum normalised *per frame* (its shape, 80 bins,
    max subtracted) and the log RMS energy (loudness, absolute: dBFS / 40). Both are per-frame
    operations, so nothing in the conditioning lets frame t see audio after t; they are also blind to
    the dB reference the mel was computed with (ref=max or ref=1 give the same input);
plus, for every frame, the diffusion timestep and the reference parameters (reference expression and
absolute reference pose in 6D) as additive embeddings.

Causality: self-attention is masked so frame t attends to frames t-W+1 … t only (W = `attention_window`,
a sliding causal window), and the only convolution is left-padded. Changing the audio (or the noise)
after frame t therefore leaves the prediction for frames ≤ t unchanged — there is no look-ahead.
Positions enter as ALiBi distance biases (Press et al. 2022), not absolute embeddings, so a model
trained on short crops runs on windows of any length.

The model predicts x0 (paper: "directly predicting ground truth instead of noise").
"""

from __future__ import annotations

import math

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from vlogger_cli.motion.representation import MOTION_DIM, REFERENCE_DIM

AUDIO_DIM = 81  # 80 normalised log-mel bins + log energy

PRESETS: dict[str, dict] = {
    # name: constructor overrides. Params are for D=127; forward times measured on 2 CPU cores, 250 frames.
    "tiny": dict(hidden_size=32, num_layers=2, num_heads=2, ff_mult=2),  # tests only
    "small": dict(hidden_size=128, num_layers=4, num_heads=4, ff_mult=4),  # demo weights (~0.9 M)
    "base": dict(hidden_size=256, num_layers=4, num_heads=8, ff_mult=4),  # ~3.4 M, real data
    "large": dict(hidden_size=512, num_layers=8, num_heads=8, ff_mult=4),  # GPU training
}


def prepare_audio(mel: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
    """(B, T, 80) log-mel dB and (B, T) linear RMS -> (B, T, 81) per-frame-normalised audio input.

    Pure per-frame function (see the module docstring for why): spectral shape in [-1, 0] and
    loudness as dBFS / 40 (≈ -2.5 for silence at -100 dBFS, ≈ -0.3 for loud speech).
    """
    shape = (mel - mel.amax(dim=-1, keepdim=True)) / 80.0  # (B, T, 80)
    loud = 20.0 * torch.log10(energy.clamp(min=1e-5)) / 40.0  # (B, T)
    return torch.cat((shape.clamp(min=-1.0), loud[..., None]), dim=-1)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """(B,) -> (B, dim) sinusoidal embedding (DDPM / DiT)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat((torch.cos(args), torch.sin(args)), dim=-1)


def alibi_causal_bias(num_frames: int, num_heads: int, window: int, device=None) -> torch.Tensor:
    """(H, T, T) additive attention bias: -slope_h * (t - s) for t-W < s ≤ t, -inf elsewhere."""
    pos = torch.arange(num_frames, device=device)
    dist = (pos[:, None] - pos[None, :]).float()  # (T, T), t - s
    slopes = torch.tensor([2.0 ** (-8.0 * (h + 1) / num_heads) for h in range(num_heads)], device=device)
    bias = -slopes[:, None, None] * dist[None]
    allowed = (dist >= 0) & (dist < window)
    return bias.masked_fill(~allowed[None], float("-inf"))


class Block(nn.Module):
    """Pre-norm transformer block: causal multi-head self-attention + MLP."""

    def __init__(self, dim: int, heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Linear(ff_mult * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B, H, T, d/H)
        h = h + self.dropout(self.proj(a.transpose(1, 2).reshape(b, t, d)))
        return h + self.dropout(self.mlp(self.norm2(h)))


class MotionDenoiser(ModelMixin, ConfigMixin):
    """x0-predicting causal transformer over motion frames (config = constructor arguments)."""

    @register_to_config
    def __init__(
        self,
        motion_dim: int = MOTION_DIM,  # D, channels per frame (representation.MOTION_DIM)
        audio_dim: int = AUDIO_DIM,  # per-frame audio input (prepare_audio)
        reference_dim: int = REFERENCE_DIM,  # reference expression + absolute pose (6D)
        hidden_size: int = 128,  # token width
        num_layers: int = 4,  # paper: 4 layers of multi-head attention
        num_heads: int = 4,
        ff_mult: int = 4,  # MLP width = ff_mult * hidden_size
        attention_window: int = 64,  # frames a token attends to (itself and the W-1 before it)
        audio_kernel: int = 5,  # causal (left-padded) conv over audio frames before the transformer
        dropout: float = 0.0,
    ):
        super().__init__()
        d = hidden_size
        self.audio_conv = nn.Conv1d(audio_dim, d, audio_kernel)  # applied on left-padded input: causal
        self.motion_in = nn.Linear(2 * motion_dim + 1, d)  # [x_t, known * mask, mask]
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.reference_mlp = nn.Sequential(nn.Linear(reference_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(Block(d, num_heads, ff_mult, dropout) for _ in range(num_layers))
        self.norm_out = nn.LayerNorm(d)
        self.out = nn.Linear(d, motion_dim)
        self._bias_cache: dict = {}

    def attention_bias(self, num_frames: int, device) -> torch.Tensor:
        key = (num_frames, str(device))
        if key not in self._bias_cache:
            cfg = self.config
            self._bias_cache = {key: alibi_causal_bias(num_frames, cfg.num_heads, cfg.attention_window, device)}
        return self._bias_cache[key]

    def forward(
        self,
        sample: torch.Tensor,  # (B, T, D) noisy normalised motion x_t
        timestep: torch.Tensor,  # (B,) or scalar diffusion step
        audio: torch.Tensor,  # (B, T, A) prepare_audio output
        reference: torch.Tensor,  # (B, R) reference parameters
        known: torch.Tensor | None = None,  # (B, T, D) known normalised motion (outpainting)
        known_mask: torch.Tensor | None = None,  # (B, T) 1 where `known` holds
    ) -> torch.Tensor:
        """Predict the clean normalised motion x0, (B, T, D)."""
        b, t, _ = sample.shape
        if known is None or known_mask is None:
            known = torch.zeros_like(sample)
            known_mask = sample.new_zeros(b, t)
        m = known_mask[..., None].to(sample.dtype)  # (B, T, 1)
        h = self.motion_in(torch.cat((sample, known * m, m), dim=-1))  # (B, T, d)
        a = nn.functional.pad(audio.transpose(1, 2), (self.config.audio_kernel - 1, 0))  # (B, A, T+k-1)
        h = h + self.audio_conv(a).transpose(1, 2)  # (B, T, d)
        timestep = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(b)
        cond = self.time_mlp(timestep_embedding(timestep, self.config.hidden_size))  # (B, d)
        cond = cond + self.reference_mlp(reference)
        h = h + cond[:, None, :]
        bias = self.attention_bias(t, sample.device).to(h.dtype)
        for block in self.blocks:
            h = block(h, bias)
        return self.out(self.norm_out(h))  # (B, T, D)


def build_denoiser(preset: str = "small", **overrides) -> MotionDenoiser:
    """A fresh denoiser from a size preset (`PRESETS`) plus constructor overrides."""
    if preset not in PRESETS:
        raise ValueError(f"unknown motion preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return MotionDenoiser(**{**PRESETS[preset], **overrides})
