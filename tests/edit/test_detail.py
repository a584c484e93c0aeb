"""edit/detail.py: the edited square at the footage's size keeps the footage's fine detail where the edit kept
its content, follows the flow, and pastes none where the edit painted something new."""

import numpy as np
import pytest

from vlogger_cli.edit.detail import full_resolution_square, high_frequency_energy, upsample

R, SIDE = 64, 256


@pytest.fixture(scope="module")
def source():
    """A 256² square of real photographic detail (the astronaut's face and suit, scikit-image)."""
    from PIL import Image
    from skimage.data import astronaut

    return np.asarray(Image.fromarray(astronaut()[20:276, 120:376]))


def _down(image, size=R):
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.LANCZOS))


def test_kept_content_gets_the_footage_detail_back(source):
    edited = _down(source)  # an edit that kept everything: stage 2 at R² of the same picture
    plain = upsample(edited, SIDE).round().clip(0, 255).astype(np.uint8)
    restored = full_resolution_square(edited, source, np.zeros((R, R, 2), np.float32))
    truth = high_frequency_energy(source)
    assert high_frequency_energy(plain) < 0.6 * truth  # upsampled alone: visibly softer
    assert high_frequency_energy(restored) > 0.9 * truth
    err = lambda a: np.abs(a.astype(np.float32) - source).mean()
    assert err(restored) < 0.5 * err(plain)


def test_detail_follows_the_flow(source):
    """The edit moved the picture 8 px (2 R-pixels) left: the detail comes from where the flow points."""
    shifted = np.roll(source, -8, axis=1)
    flow = np.zeros((R, R, 2), np.float32)
    flow[..., 0] = 2.0  # backward: output pixel shows the source at x + 2 (R pixels) = x + 8 at 256
    restored = full_resolution_square(_down(shifted), source, flow)
    inner = np.s_[:, 16:-16]
    err = lambda a: np.abs(a[inner].astype(np.float32) - shifted[inner]).mean()
    plain = upsample(_down(shifted), SIDE).round().clip(0, 255).astype(np.uint8)
    assert err(restored) < 0.6 * err(plain)
    wrong = full_resolution_square(_down(shifted), source, None)  # no flow: misplaced detail, worse
    assert err(restored) < err(wrong)


def test_painted_content_gets_no_foreign_detail(source):
    """A flat patch painted over the eyes (as lids over open eyes): the source's eye detail stays out of it."""
    edited = _down(source).copy()
    edited[20:36, 16:48] = (40, 110, 210)  # a colour the source has nowhere there
    restored = full_resolution_square(edited, source, np.zeros((R, R, 2), np.float32))
    inside = np.s_[100:124, 84:172]  # the painted patch at 256², 3 R-pixels from its edges (Lanczos ringing)
    assert np.abs(restored[inside].astype(np.float32) - (40, 110, 210)).max() < 6
    assert high_frequency_energy(restored[inside]) < 0.5


def test_a_square_no_larger_than_r_is_only_resized(source):
    small = _down(source)
    assert full_resolution_square(small, small, None) is small
    assert full_resolution_square(_down(source, 96), small, None).shape == (R, R, 3)
