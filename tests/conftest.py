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
CORPUS = ROOT.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The real media folder (../shared/testdata); tests using it skip where it is absent."""
    if not TESTDATA.is_dir():
        pytest.skip(f"real test media not found at {TESTDATA}")
    return TESTDATA


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The real talking-video corpus (../shared/corpus, videos/); tests using it skip where it is absent."""
    if not (CORPUS / "videos").is_dir():
        pytest.skip(f"real talking-video corpus not found at {CORPUS}")
    return CORPUS / "videos"


# mediapipe face-mesh eye outlines (subject's left, right), for painting the eyes shut
_EYE_RINGS = ((362, 382, 381, 380, 374, 373, 390, 249, 263, 466, 388, 387, 386, 385, 384, 398),
              (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246))


def _close_eyes(image, face):
    """`image` with both eyes painted shut: skin from below each eye over a 1.5x eye outline, a dark lash line.
    face: the image's mediapipe face-mesh points (478, 2|3)."""
    import cv2
    import numpy as np

    out = image.astype(np.float64)
    for ring in _EYE_RINGS:
        pts = face[list(ring), :2]
        centre = pts.mean(0)
        pts = (pts - centre) * 1.5 + centre
        mask = np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(mask, [pts.astype(np.int32)], 255)
        h = np.ptp(pts[:, 1])
        skin = image[int(centre[1] + 1.6 * h):int(centre[1] + 2.2 * h),
                     int(pts[:, 0].min()):int(pts[:, 0].max())].reshape(-1, 3).mean(0)
        alpha = cv2.GaussianBlur(mask, (0, 0), 2)[..., None] / 255.0
        out = out * (1 - alpha) + skin * alpha
    out = out.astype(np.uint8)
    for ring in _EYE_RINGS:
        a, b = face[ring[0], :2], face[ring[8], :2]
        cv2.line(out, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), (60, 40, 30), 2, cv2.LINE_AA)
    return out


@pytest.fixture(scope="session")
def close_eyes():
    """close_eyes(image, face) -> the image with both eyes painted shut (a blink the tests can place)."""
    return _close_eyes


@pytest.fixture(scope="session")
def anny():
    """The process-wide AnnyBody (the ~100 s cache build happens once per machine)."""
    from vlogger_cli.body.anny_model import anny_body

    return anny_body()


def _face_controls(frames: int = 3, size: int = 64, *, mouth_x: float = 32.0, width: int = 16):
    """ControlFrames for the mouth stage's tests (video/mouth.py): a face disc with lips (an ellipse ring) and
    an open mouth inside them, the portrait unseen there; the mouth moves one pixel right a frame."""
    import numpy as np

    from vlogger_cli.body.model import PART_INDEX
    from vlogger_cli.controls.render import ControlFrames

    yy, xx = np.mgrid[:size, :size] + 0.5
    parts = np.zeros((frames, size, size), np.uint8)
    for t in range(frames):
        cx = mouth_x + t
        parts[t][(xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (0.45 * size) ** 2] = PART_INDEX["face_skin"]
        lips = ((xx - cx) / (width / 2)) ** 2 + ((yy - 0.7 * size) / 4) ** 2 < 1
        inner = ((xx - cx) / max(width / 2 - 2, 0.5)) ** 2 + ((yy - 0.7 * size) / 2) ** 2 < 1
        parts[t][lips] = PART_INDEX["lips"]
        parts[t][inner] = PART_INDEX["mouth_interior"]
    inside = parts == PART_INDEX["mouth_interior"]
    return ControlFrames(position=np.zeros((frames, size, size, 3), np.float32), mask=parts > 0, parts=parts,
                         warped=np.zeros((frames, size, size, 3), np.uint8), warped_mask=(parts > 0) & ~inside,
                         flow=np.zeros((frames, size, size, 2), np.float32))


@pytest.fixture(scope="session")
def face_controls():
    """face_controls(frames, size, mouth_x=, width=) -> ControlFrames of a face with an open mouth (the mouth
    stage's tests)."""
    return _face_controls
