"""edit/lids.py: `--eyes closed` without a blink to borrow closes the lids in 2-D, from the skin above the eye.

A drawn eye on grainy skin: an opening (white sclera, dark iris) between two lid curves, dark lashes along
the upper one; the outlines given as the face mesh's nine points per lid would be."""

from __future__ import annotations

import numpy as np
import pytest

from vlogger_cli.edit import lids
from vlogger_cli.edit.lids import close_lids, eye_outlines, lid_bands, lid_source_rows

SKIN = np.array([200.0, 150.0, 130.0])
SIZE = 96
X0, X1, CY, HALF_H = 30.0, 66.0, 48.0, 6.0  # the eye: corners at x0, x1; opening 2 x HALF_H tall at its middle


def _curves(x):
    """Upper and lower lid y at x (an opening that closes at the corners)."""
    s = np.clip(1 - ((x - (X0 + X1) / 2) / ((X1 - X0) / 2)) ** 2, 0, 1)
    return CY - HALF_H * s, CY + HALF_H * s


def _outlines() -> np.ndarray:
    """(2, 2, 9, 2): both 'eyes' are the same eye (the second one is not on the image)."""
    xs = np.linspace(X0, X1, 9)
    up, low = _curves(xs)
    eye = np.stack([np.stack([xs, up], -1), np.stack([xs, low], -1)])
    far = eye + [SIZE * 3, 0]
    return np.stack([eye, far]).astype(np.float32)


def _image(rim_at: float | None = None) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = SKIN + rng.normal(0, 6, (SIZE, SIZE, 3))
    yy, xx = np.mgrid[:SIZE, :SIZE] + 0.5
    up, low = _curves(xx)
    opening = (yy > up) & (yy < low)
    img[opening] = [235, 235, 230]
    img[opening & ((xx - 48) ** 2 + (yy - CY) ** 2 < 25)] = [40, 30, 30]
    img[(yy <= up) & (yy > up - 2) & (xx > X0) & (xx < X1)] = [35, 25, 25]  # lashes
    if rim_at is not None:
        img[int(rim_at):int(rim_at) + 2, 10:86] = [60, 40, 30]  # a glasses rim, 2 px
    return np.clip(img, 0, 255).astype(np.uint8)


def test_no_cover_changes_nothing():
    img = _image()
    assert close_lids(img, _outlines(), 0.0) is img


def test_closed_lids_are_skin_with_a_lash_line_and_the_rest_is_untouched():
    img = _image()
    out = close_lids(img, _outlines(), 1.0).astype(float)
    yy, xx = np.mgrid[:SIZE, :SIZE] + 0.5
    up, low = _curves(xx)
    middle = (xx > 40) & (xx < 56)
    lid = middle & (yy > up + 1) & (yy < low - 3)  # the covered opening, above the lash line
    assert np.abs(out[lid].mean(0) - SKIN).max() < 25  # skin, not sclera (235) nor iris (40)
    assert out[lid].std(0).max() < 20                 # no iris left in it
    edge = middle & (yy > low - 1.5) & (yy < low)  # where the lids meet: the lashes, moved down
    assert out[edge].mean() < SKIN.mean() - 40
    below = yy > CY + HALF_H + 1
    assert np.array_equal(out[below], img[below].astype(float))
    far = xx < X0 - 1
    assert np.array_equal(out[far], img[far].astype(float))


def test_half_closed_keeps_the_lower_eye():
    img = _image()
    out = close_lids(img, _outlines(), 0.5).astype(float)
    lower_iris = (slice(int(CY) + 2, int(CY) + 4), slice(46, 50))
    assert np.array_equal(out[lower_iris], img[lower_iris].astype(float))  # the iris under the half lid


def test_a_rim_above_the_eye_stays_where_it_is():
    """A glasses rim 1.5 openings above the lid, inside the band that would unfold: the band ends below it."""
    rim = CY - HALF_H - 1.5 * 2 * HALF_H
    img = _image(rim_at=rim)
    out = close_lids(img, _outlines(), 1.0)
    rows = slice(int(rim), int(rim) + 2)
    assert np.abs(out[rows].astype(float) - img[rows]).max() <= 2
    bands = lid_bands(img, _outlines())[0][1]
    assert bands.max() < lids.LID_BAND * 2 * HALF_H  # shortened by the rim


def test_the_same_lids_at_twice_the_size():
    """Bands measured on the small square give the large one the same lids (the edit's squares and the
    full-resolution footage must agree for edit/detail.py to keep the footage's detail)."""
    import cv2

    small = _image()
    big = cv2.resize(small, (2 * SIZE, 2 * SIZE), interpolation=cv2.INTER_CUBIC)
    bands = lid_bands(small, _outlines())
    closed_small = close_lids(small, _outlines(), 1.0, bands).astype(float)
    closed_big = close_lids(big, _outlines() * 2, 1.0, bands, scale=2.0)
    back = cv2.resize(closed_big, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(float)
    eye = (slice(30, 60), slice(30, 66))
    assert np.abs(back[eye] - closed_small[eye]).mean() < 8


def test_rows_move_monotonically():
    """The unfolding never folds the picture over: source rows increase down every column."""
    rows, moved, alpha = lid_source_rows(_outlines(), 1.0, SIZE, lid_bands(_image(), _outlines()))
    assert moved.any() and alpha.max() == 1.0
    assert (np.diff(rows, axis=0) > 0).all()


def test_eye_outlines_fill_lost_frames_and_smooth():
    face = np.zeros((5, 478, 3), np.float32)
    for t in range(5):
        face[t, :, 0], face[t, :, 1] = 100 + t, 50
    lost = np.array([False, False, True, False, False])
    face[2] = 0
    out = eye_outlines(face, lost)
    assert out.shape == (5, 2, 2, 9, 2)
    assert out[2, ..., 0].mean() == pytest.approx(102, abs=0.5)
    assert np.allclose(out[..., 1], 50)


def test_a_shadowed_lid_takes_the_skin_colour():
    """The skin that unfolds is in the brow's shadow (60 grey levels darker): the closed lid is moved to the
    colour of the skin under the eye, most of the way (SKIN_TINT), keeping its texture."""
    img = _image().astype(float)
    yy, xx = np.mgrid[:SIZE, :SIZE] + 0.5
    up, _ = _curves(xx)
    img[(yy < up - 2) & (yy > up - 2 - 4 * HALF_H)] -= 60
    img = np.clip(img, 0, 255).astype(np.uint8)
    out = close_lids(img, _outlines(), 1.0).astype(float)
    low = _curves(xx)[1]
    lid = (xx > 40) & (xx < 56) & (yy > up + 2) & (yy < low - 4)
    assert np.abs(out[lid].mean(0) - SKIN).max() < 0.5 * 60
    assert out[lid].std(0).max() > 3  # its own grain, not a flat fill
