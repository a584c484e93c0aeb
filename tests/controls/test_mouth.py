"""The mouth's inside in the warp (controls/mouth.py): teeth plates that ride with the lips, a dark cavity."""

from __future__ import annotations

import numpy as np
from vlogger_cli.body.model import PART_INDEX
from vlogger_cli.controls.mouth import CAVITY_SHADE, cavity_colour, mouth_inside
from vlogger_cli.controls.warp import warp_portrait

LIPS, MOUTH, SKIN = PART_INDEX["lips"], PART_INDEX["mouth_interior"], PART_INDEX["face_skin"]


def opened(top: int, bottom: int, upper_dy: float, lower_dy: float, size: int = 32):
    """A frame whose opening spans rows [top, bottom] of columns 8..23, lips one row above and below it;
    the upper lip's flow moves it upper_dy rows in the portrait, the lower lip lower_dy (and both 1.5
    columns right). Returns (parts, flow)."""
    parts = np.full((size, size), SKIN, np.uint8)
    parts[top - 1, 8:24] = LIPS
    parts[bottom + 1, 8:24] = LIPS
    parts[top:bottom + 1, 8:24] = MOUTH
    flow = np.zeros((size, size, 2), np.float32)
    flow[top - 1, 8:24] = (1.5, upper_dy)
    flow[bottom + 1, 8:24] = (1.5, lower_dy)
    flow[top:bottom + 1, 8:24] = (-7.0, 0.0)  # the mesh's own flow inside: replaced
    return parts, flow


def test_a_mouth_opened_wider_than_the_portrait_shows_its_teeth_at_the_lips_and_a_gap():
    # frame opening rows 10..19 (edges at 10 and 20); in the portrait the lips' edges are at rows 12 and 16
    # (an opening of 4 rows, bite line at 14): 2 rows of upper teeth, 2 of lower teeth, a 6-row cavity.
    parts, flow = opened(10, 19, upper_dy=2.0, lower_dy=-4.0)
    out, cavity = mouth_inside(parts, flow)
    column = 12
    assert cavity[:, column].tolist() == [False] * 12 + [True] * 6 + [False] * 14
    np.testing.assert_allclose(out[10:12, column], [(1.5, 2.0)] * 2)   # upper teeth: the upper lip's flow
    np.testing.assert_allclose(out[18:20, column], [(1.5, -4.0)] * 2)  # lower teeth: the jaw's
    # the upper plate's last row lands just above the bite line in the portrait, the lower's first just below
    assert 11.5 + 2.0 < 14 < 18.5 - 4.0
    outside = parts != MOUTH
    np.testing.assert_array_equal(out[outside], flow[outside])
    assert not cavity[outside].any()


def test_a_portrait_with_closed_lips_gives_an_all_dark_opening():
    # both lips' edges land on the same portrait row: no teeth to show
    parts, flow = opened(10, 19, upper_dy=5.0, lower_dy=-5.0)
    _, cavity = mouth_inside(parts, flow)
    np.testing.assert_array_equal(cavity, parts == MOUTH)


def test_a_mouth_opened_less_than_the_portrait_has_no_gap_and_the_upper_teeth_in_front():
    # frame opening rows 10..11; in the portrait the lips' edges are at 8 and 16
    parts, flow = opened(10, 11, upper_dy=-2.0, lower_dy=4.0)
    out, cavity = mouth_inside(parts, flow)
    assert not cavity.any()
    np.testing.assert_allclose(out[10:12, 8:24], np.broadcast_to((1.5, -2.0), (2, 16, 2)))


def test_a_closed_mouth_is_left_alone():
    parts = np.full((16, 16), SKIN, np.uint8)
    flow = np.random.default_rng(0).normal(size=(16, 16, 2)).astype(np.float32)
    out, cavity = mouth_inside(parts, flow)
    np.testing.assert_array_equal(out, flow)
    assert not cavity.any()


def test_the_warp_draws_the_cavity_dark_with_a_soft_edge():
    portrait = np.full((32, 32, 3), 200, np.uint8)
    cavity = np.zeros((2, 32, 32), bool)
    cavity[1, 10:20, 8:24] = True
    frames = warp_portrait(portrait, np.zeros((2, 32, 32, 2), np.float32), cavity)
    shadow = round(CAVITY_SHADE * 200)
    assert (frames[0] == 200).all()
    assert (frames[1, 12:18, 10:22] == shadow).all()
    assert (frames[1, :8] == 200).all() and (frames[1, 22:] == 200).all()
    edge_in, edge_out = frames[1, 10, 15, 0], frames[1, 9, 15, 0]
    assert shadow < edge_in < edge_out < 200  # anti-aliased both sides of the outline


def test_the_cavity_takes_the_colour_of_the_lips_not_of_the_teeth():
    frame = np.zeros((40, 40, 3), np.float32)
    frame[:] = (180, 90, 90)            # lips all round
    frame[14:16, 10:30] = (240, 240, 230)  # a row of teeth above the gap
    cavity = np.zeros((40, 40), bool)
    cavity[16:24, 10:30] = True
    np.testing.assert_allclose(cavity_colour(frame, cavity), CAVITY_SHADE * np.array([180, 90, 90]))
    assert not cavity_colour(frame, np.zeros_like(cavity)).any()  # no cavity, no colour


def test_a_gap_of_one_pixel_is_drawn_fainter_than_a_wide_one():
    portrait = np.full((256, 256, 3), 200, np.uint8)
    cavity = np.zeros((256, 256), bool)
    cavity[100, 40:60] = True          # lips parted by one pixel
    cavity[100:110, 140:160] = True    # an open mouth
    frame = warp_portrait(portrait, np.zeros((256, 256, 2), np.float32), cavity)
    thin, wide = frame[100, 50, 0], frame[104, 150, 0]
    assert wide == round(CAVITY_SHADE * 200) and 150 < thin < 195


def test_an_opening_jaw_on_the_mesh_keeps_the_portraits_teeth_on_the_lips(scene):
    """Real anny mesh: a portrait whose mouth is a little open, then the jaw opens wide. The opening's
    pixels next to the lips show the portrait (seen in C^w, the plates), its middle is the cavity."""
    from vlogger_cli.controls.render import ControlRenderer
    from vlogger_cli.controls.texture import reference_texture

    jaw = scene.model.expression_names.index("jawOpen")
    params = scene.batch(2)
    params.expression[0, jaw] = 0.4
    params.expression[1, jaw] = 1.0
    vertices = scene.frames(params)
    texture = reference_texture(scene.portrait, scene.camera, vertices[0], scene.model.faces)
    with ControlRenderer.for_model(scene.model, scene.camera, texture) as renderer:
        frames = renderer.render(vertices)
    inside = frames.parts == MOUTH
    assert inside[0].sum() > 5 and inside[1].sum() > inside[0].sum() + 10
    assert not frames.cavity[0].any()  # the portrait's own opening: all of it is shown
    plates = inside[1] & ~frames.cavity[1]
    assert frames.cavity[1].sum() > 10 and plates.sum() > 5
    rows = np.nonzero(inside[1])[0]
    middle = (rows.min() + rows.max()) / 2
    assert abs(np.nonzero(frames.cavity[1])[0].mean() - middle) < 1.5  # the gap is between the plates
    assert frames.warped_mask[1][plates].all() and not frames.warped_mask[1][frames.cavity[1]].any()
    plain = warp_portrait(scene.portrait, frames.flow[1])
    warp = warp_portrait(scene.portrait, frames.flow[1], frames.cavity[1])
    from scipy.ndimage import binary_dilation

    away = ~binary_dilation(frames.cavity[1], iterations=2)  # beyond the anti-aliased edge
    np.testing.assert_array_equal(warp[away], plain[away])
    colour = cavity_colour(plain.astype(np.float32), frames.cavity[1])
    assert np.abs(warp[frames.cavity[1]].mean(0) - colour).max() < 40  # dark inside, soft at the edge
