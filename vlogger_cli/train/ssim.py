"""A differentiable SSIM map for training losses (Wang et al. 2004, "Image quality assessment: from error
visibility to structural similarity"), in torch.

The same map the held-out checks measure (video/quality.py `masked_ssim`: scikit-image's
structural_similarity with gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True): an
11x11 Gaussian window of sigma 1.5 (scipy's truncate 3.5: radius 5), the borders padded by half-sample
symmetric reflection as scipy's mode "reflect" does, one map per colour channel, averaged over the channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SIGMA = 1.5
RADIUS = 5  # int(3.5 x 1.5 + 0.5): scipy.ndimage.gaussian_filter's radius at truncate=3.5 (an 11x11 window)


def ssim_map(a: torch.Tensor, b: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """(N, 1, H, W) local SSIM of images a and b (N, C, H, W) (values in [-1, 1]: data_range 2), computed per
    channel and averaged over the channels; 1 where they agree. Differentiable in both; computed in float32
    whatever the inputs' dtype or an enclosing autocast (E[x²] - E[x]² in bf16 is mostly rounding error)."""
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"ssim_map needs two (N, C, H, W) images of one shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    with torch.autocast(a.device.type, enabled=False):
        a, b = a.float(), b.float()
        n, c = a.shape[:2]
        stats = _blur(torch.cat([a, b, a * a, b * b, a * b], dim=1))  # (N, 5C, H, W) local means
        mu_a, mu_b, aa, bb, ab = stats.split(c, dim=1)
        var_a, var_b, cov = aa - mu_a * mu_a, bb - mu_b * mu_b, ab - mu_a * mu_b
        num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
        den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
        return (num / den).mean(dim=1, keepdim=True)


def _blur(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) separable Gaussian (SIGMA, RADIUS), borders reflected about the edge (d c b a | a b c d)."""
    h, w = x.shape[-2:]
    taps = torch.arange(-RADIUS, RADIUS + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-taps ** 2 / (2 * SIGMA ** 2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    x = x.index_select(-2, _reflect(h, x.device)).index_select(-1, _reflect(w, x.device))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


def _reflect(size: int, device) -> torch.Tensor:
    """Indices of a length-`size` axis padded by RADIUS on each side, half-sample symmetric (scipy "reflect")."""
    index = torch.arange(-RADIUS, size + RADIUS, device=device)
    index = torch.where(index < 0, -index - 1, index)
    index = torch.where(index >= size, 2 * size - 1 - index, index)
    return index.clamp(0, size - 1)  # images narrower than the radius: repeat the edge beyond one reflection


__all__ = ["ssim_map"]
