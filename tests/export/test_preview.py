"""write_preview / contact_sheet: layout, content, labels, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vlogger_cli.export import contact_sheet, render_contact_sheet, write_preview
from vlogger_cli.export.preview import BACKGROUND, PAD, preview_indices

H, W = 48, 64


def solid(value: int, height: int = H, width: int = W) -> np.ndarray:
    return np.full((height, width, 3), value, np.uint8)


def cell_centres(sheet: np.ndarray, count: int, height: int = H, width: int = W) -> list[int]:
    """Grey level at the centre of each image of a one-row sheet (images sit at the bottom of a cell)."""
    y = sheet.shape[0] - PAD - height // 2
    return [int(sheet[y, PAD + i * (width + PAD) + width // 2, 0]) for i in range(count)]


def test_preview_shows_first_middle_last(tmp_path):
    frames = [solid(2 * i) for i in range(51)]
    out = write_preview(frames, tmp_path / "preview.png", fps=25)
    sheet = np.asarray(Image.open(out).convert("RGB"))
    assert cell_centres(sheet, 3) == [0, 50, 100]
    assert sheet.shape[1] >= 3 * W + 4 * PAD


@pytest.mark.parametrize("make", [list, np.stack], ids=["list", "array"])
def test_preview_of_three_frames_shows_those_three(tmp_path, make):
    frames = make([solid(10), solid(120), solid(240)])
    sheet = np.asarray(Image.open(write_preview(frames, tmp_path / "p.png")))
    assert cell_centres(sheet, 3) == [10, 120, 240]


def test_labels_are_drawn_only_when_asked(tmp_path):
    frames = [solid(0) for _ in range(9)]
    labelled = np.asarray(Image.open(write_preview(frames, tmp_path / "a.png", fps=25)))
    plain = np.asarray(Image.open(write_preview(frames, tmp_path / "b.png", labels=False)))
    assert plain.shape[0] == H + 2 * PAD
    assert labelled.shape[0] > plain.shape[0]
    title_band = labelled[: labelled.shape[0] - H - PAD]
    assert title_band.max() > 200  # light text on the dark background
    assert plain.max() == max(BACKGROUND)  # black frames on the background: no text anywhere


def test_preview_indices():
    assert preview_indices(1) == [0]
    assert preview_indices(2) == [0, 1]
    assert preview_indices(100) == [0, 49, 99]
    with pytest.raises(ValueError):
        preview_indices(0)


def test_contact_sheet_grid_and_mixed_inputs(tmp_path):
    images = [solid(50), np.full((H, W), 100, np.uint8), Image.fromarray(solid(150)),
              np.full((H // 2, W // 2, 4), 200, np.uint8), solid(250)[:, :, :1]]
    out = contact_sheet(images, 2, tmp_path / "sheet.png", titles=list("abcde"))
    sheet = Image.open(out)
    assert sheet.mode == "RGB"
    rows, cols = 3, 2
    assert sheet.width == PAD + cols * (W + PAD)
    assert sheet.height > PAD + rows * (H + PAD)  # plus a title band per row


def test_contact_sheet_without_titles_is_exact_grid():
    sheet = render_contact_sheet([solid(i * 40) for i in range(5)], 3)
    assert sheet.size == (PAD + 3 * (W + PAD), PAD + 2 * (H + PAD))
    pixels = np.asarray(sheet)
    assert pixels[PAD + H + PAD + H // 2, PAD + W // 2, 0] == 3 * 40  # row 2, column 1: image 3


@pytest.mark.parametrize(
    "images, titles, message",
    [
        ([], None, "at least one"),
        ([solid(0)], ["a", "b"], "2 titles for 1 images"),
        ([np.zeros((H, W, 3), np.float32)], None, "uint8"),
        ([np.zeros((H, W, 2), np.uint8)], None, "shape"),
    ],
    ids=["empty", "titles", "float", "channels"],
)
def test_contact_sheet_rejects_bad_input_and_keeps_the_old_file(tmp_path, images, titles, message):
    target = contact_sheet([solid(7)], 1, tmp_path / "sheet.png")
    before = target.read_bytes()
    with pytest.raises(ValueError, match=message):
        contact_sheet(images, 2, target, titles=titles)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]
