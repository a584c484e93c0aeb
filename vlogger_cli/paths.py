"""Where persistent caches live.

Default: `$VLOGGER_CACHE_DIR`, else `$XDG_CACHE_HOME/vlogger`, else `~/.cache/vlogger` — never /tmp,
because the anny body-model cache costs 80-110 s and 1.2 GB to rebuild. The Makefile points
VLOGGER_CACHE_DIR at `.cache/` inside the checkout (git-ignored) so CI and the demo keep it there.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    env = os.environ.get("VLOGGER_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "vlogger"


def anny_cache_dir() -> Path:
    """The anny cache folder: `$ANNY_CACHE_DIR` if set, else `<cache_dir>/anny`."""
    env = os.environ.get("ANNY_CACHE_DIR")
    return Path(env).expanduser() if env else cache_dir() / "anny"


def weights_dir() -> Path:
    """The repo's `weights/` folder (demo weights), or `$VLOGGER_WEIGHTS_DIR`."""
    env = os.environ.get("VLOGGER_WEIGHTS_DIR")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent / "weights"
