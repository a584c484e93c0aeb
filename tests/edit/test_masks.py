import numpy as np

from vlogger_cli.body.model import PART_INDEX
from vlogger_cli.edit.framing import crop_square, paste_back
from vlogger_cli.edit.masks import dilate, feather, frame_masks, mask_overlay, redraw_parts
from vlogger_cli.edit.options import EditOptions
from vlogger_cli.body.framing import Framing

R = 64


def _face():
    """A face-skin disc with an eye band (parts 'eyes') and a mouth (parts 'lips')."""
    parts = np.zeros((R, R), np.uint8)
    y, x = np.mgrid[:R, :R]
    parts[(x - 32) ** 2 + (y - 32) ** 2 < 26 ** 2] = PART_INDEX["face_skin"]
    parts[18:22, 18:46] = PART_INDEX["eyes"]
    parts[44:50, 24:40] = PART_INDEX["lips"]
    return parts


def test_moved_pixels_are_edited_and_lips_kept_exactly():
    parts = _face()
    flow = np.zeros((R, R, 2), np.float32)
    flow[14:24, 18:46, 1] = -3.0  # the lids moved
    m = frame_masks(parts, parts, flow, parts > 0, redraw_parts=("eyes",), keep_lips=True)
    assert m["edit"][19, 30] == 1 and m["blend"][19, 30] == 1          # the eye band is regenerated
    assert m["edit"][60, 5] == 0 and m["known"][60, 5]                 # far away: untouched, known
    lips = parts == PART_INDEX["lips"]
    assert np.all(m["blend"][lips] == 0) and np.all(m["keep"][lips]) and np.all(m["known"][lips])
    assert 0 < m["edit"][26, 30] < 1                                    # a soft border below the edit
    assert not m["known"][19, 30]


def test_flow_outside_the_body_counts_only_when_the_head_moves():
    parts = _face()
    flow = np.full((R, R, 2), 2.0, np.float32)
    body = parts > 0
    still = frame_masks(parts, parts, flow * ~body[..., None], body)
    assert not still["edit"].any()
    moving = frame_masks(parts, parts, flow, body, head_moves=True, keep_lips=True)
    assert moving["edit"][2, 2] == 1
    # the head moves: the kept lips are blended (from the flow-warped source, held as known pixels)
    lips = parts == PART_INDEX["lips"]
    assert np.all(moving["blend"][lips] == 1) and np.all(moving["known"][lips])


def test_untouched_frame_has_no_edit():
    parts = _face()
    flow = np.ones((R, R, 2), np.float32) * 5
    m = frame_masks(parts, parts, flow, parts > 0, redraw_parts=("eyes",), weight=0.0)
    assert not m["edit"].any() and not m["blend"].any() and m["known"].all()


def test_dilate_and_feather():
    mask = np.zeros((R, R), bool)
    mask[30, 30] = True
    assert dilate(mask, 3).sum() > 20
    soft = feather(mask, 2.0)
    assert soft[30, 30] == 1 and 0 < soft[30, 36] < 1 and soft[0, 0] < 1e-3
    assert not feather(np.zeros((4, 4), bool), 1.0).any()
    assert redraw_parts(EditOptions(eyes="closed", new_speech=True)) == ("eyes", "lips", "mouth_interior")
    assert redraw_parts(EditOptions(new_speech=True, keep_lips=True)) == ()
    over = mask_overlay(np.zeros((R, R, 3), np.uint8), soft, mask)
    assert over.dtype == np.uint8 and over[30, 30].any() and not over[0, 0].any()


def test_paste_back_is_exact_outside_the_blend():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (101, 77, 3), dtype=np.uint8)  # odd sizes
    framing = Framing(10.0, 20.0, 50.0)
    square = crop_square(frame, framing, 32)
    assert square.shape == (32, 32, 3)
    assert np.array_equal(crop_square(frame, framing, 50), frame[20:70, 10:60])
    blend = np.zeros((32, 32), np.float32)
    assert paste_back(frame, square, blend, framing) is frame
    blend[8:16, 8:16] = 1.0
    edited = np.full((32, 32, 3), 255, np.uint8)
    out = paste_back(frame, edited, blend, framing)
    changed = np.any(out != frame, axis=-1)
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 0 and 20 <= ys.min() and ys.max() < 70 and 10 <= xs.min() and xs.max() < 60
    assert out[20 + 18, 10 + 18].tolist() == [255, 255, 255]  # the middle of the blended square
    assert np.array_equal(out[:20], frame[:20]) and np.array_equal(out[:, :10], frame[:, :10])


def test_squares_follow_the_face():
    from types import SimpleNamespace

    from vlogger_cli.edit.framing import FACE_HEIGHTS, edit_framings

    n, size = 30, (400, 640)
    face = np.zeros((n, 478, 3), np.float32)
    ring = np.stack([np.cos(np.linspace(0, 6.28, 478)), np.sin(np.linspace(0, 6.28, 478))], 1) * 50  # 100 px face
    for t in range(n):
        face[t, :, :2] = ring + (150 + 10 * t, 200)  # moves right 10 px per frame
    lost = np.zeros(n, bool)
    lost[12] = True
    face[12] = 0
    track = SimpleNamespace(image_size=size, landmarks={"face": face}, lost=lost, fps=25.0)
    squares = edit_framings(track, whole_head=False)
    assert len(squares) == n and len({s.side for s in squares}) == 1
    side = squares[0].side
    assert abs(side - FACE_HEIGHTS * 100) <= 2
    lefts = np.array([s.left for s in squares])
    assert np.all(np.diff(lefts[5:-5]) > 0)  # follows the face (smoothed), through the lost frame
    for t, s in enumerate(squares):
        cx = 150 + 10 * t
        assert s.left <= cx - 50 and cx + 50 <= s.left + side or s.left in (0, size[1] - side)
        assert 0 <= s.left <= size[1] - side and 0 <= s.top <= size[0] - side
        assert s.left == int(s.left) and s.top == int(s.top)


def test_texture_donors_borrow_real_eyes_and_lids():
    from types import SimpleNamespace

    from vlogger_cli.pipeline.edit import texture_donors

    closure = np.zeros((10, 2), np.float32)
    closure[[3, 4], :] = 1.0      # a blink at frames 3-4
    closure[7, 0] = 0.5           # one eye half shut
    lost = np.zeros(10, bool)
    track = SimpleNamespace(num_frames=10, lost=lost, eye_closure=lambda: closure)
    same = np.arange(10)
    assert np.array_equal(texture_donors(track, EditOptions(expression=EditOptions().expression)), same)
    opened = texture_donors(track, EditOptions(eyes="open"))
    assert opened[3] in (2, 5) and opened[4] == 5 and opened[7] in (6, 8) and opened[0] == 0
    closed = texture_donors(track, EditOptions(eyes="closed"))
    assert list(closed) == [3, 3, 3, 3, 4, 4, 4, 4, 4, 4]
    no_blink = SimpleNamespace(num_frames=10, lost=lost, eye_closure=lambda: np.zeros((10, 2), np.float32))
    assert np.array_equal(texture_donors(no_blink, EditOptions(eyes="closed")), same)
