"""Ground floor: which OpenGL platform pyrender renders with — chosen by the code, not by the user.

PYOPENGL_PLATFORM if the user set it (osmesa, egl); else EGL when a CUDA GPU is visible (a GPU box renders
on its GPU through EGL) and OSMesa otherwise (software rendering, Debian's libosmesa6). It must be decided
before pyrender / PyOpenGL are first imported, so every renderer calls `ensure_gl_platform()` first.
"""

from __future__ import annotations

import os

import numpy as np


def gl_platform() -> tuple[str, str]:
    """(platform, why) that `ensure_gl_platform` chooses, without choosing it (`vlogger doctor`)."""
    if os.environ.get("PYOPENGL_PLATFORM"):
        return os.environ["PYOPENGL_PLATFORM"], "PYOPENGL_PLATFORM is set"
    try:
        import torch

        if torch.cuda.is_available():
            return "egl", "a CUDA GPU is visible"
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return "osmesa", "no CUDA GPU: software rendering"


def ensure_gl_platform() -> str:
    """Choose the OpenGL platform before pyrender / PyOpenGL are imported; returns it."""
    platform = gl_platform()[0]
    os.environ["PYOPENGL_PLATFORM"] = platform
    # numpy 2 removed np.infty, which pyrender's bounds code still uses.
    if not hasattr(np, "infty"):
        np.infty = np.inf
    return platform
