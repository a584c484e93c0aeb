"""Shared test set-up.

Caches that are expensive to rebuild (anny body model, numba) go to `.cache/` in the checkout,
as the Makefile does, unless the caller already chose a place.
"""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("VLOGGER_CACHE_DIR", str(ROOT / ".cache"))
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
os.environ.setdefault("MPLCONFIGDIR", str(ROOT / ".cache" / "matplotlib"))
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import pytest  # noqa: E402

TESTDATA = ROOT.parent / "shared" / "testdata"


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The real media folder (../shared/testdata); tests using it skip where it is absent."""
    if not TESTDATA.is_dir():
        pytest.skip(f"real test media not found at {TESTDATA}")
    return TESTDATA
