import numpy as np
import pytest
from PIL import Image

from vlogger_cli.body.portrait import load_portrait
from vlogger_cli.errors import InputError


def gradient(w, h):
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None, None]
    return np.concatenate([np.broadcast_to(x, (h, w, 1)), np.broadcast_to(y, (h, w, 1)), np.full((h, w, 1), 80.0)], -1).astype(np.uint8)


def test_exif_rotation_is_applied(tmp_path):
    img = Image.fromarray(gradient(120, 80))  # stored landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": phones' portrait photos
    img.save(tmp_path / "p.jpg", exif=exif.tobytes())
    out = load_portrait(tmp_path / "p.jpg")
    assert out.shape == (120, 80, 3)


def test_rgba_greyscale_and_16bit(tmp_path):
    rgba = np.zeros((70, 90, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :45, 3] = 255  # left half opaque red, right half transparent
    Image.fromarray(rgba).save(tmp_path / "a.png")
    out = load_portrait(tmp_path / "a.png")
    assert out.shape == (70, 90, 3) and out.dtype == np.uint8
    assert tuple(out[10, 10]) == (200, 0, 0) and tuple(out[10, 80]) == (255, 255, 255)

    Image.fromarray(gradient(90, 70)[..., 0]).save(tmp_path / "g.png")
    grey = load_portrait(tmp_path / "g.png")
    assert grey.shape == (70, 90, 3) and np.array_equal(grey[..., 0], grey[..., 2])

    deep = (np.linspace(0, 65535, 90 * 70).reshape(70, 90)).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    d = load_portrait(tmp_path / "d.png")
    assert d[..., 0].min() == 0 and d[..., 0].max() == 255


def test_large_photo_is_downscaled(tmp_path):
    Image.fromarray(gradient(3200, 2400)).save(tmp_path / "big.jpg")
    out = load_portrait(tmp_path / "big.jpg")
    assert max(out.shape[:2]) == 2048 and out.shape[:2] == (1536, 2048)


@pytest.mark.parametrize("content, message", [(b"hello", "not a readable image"), (None, "only 30x30 px")])
def test_bad_portraits_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "p.jpg"
    if content is None:
        Image.fromarray(gradient(30, 30)).save(path)
    else:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        load_portrait(path)
    assert str(path) in str(info.value)
