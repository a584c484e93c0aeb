"""Identity, sharpness, reference and file-fact metrics on constructed inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from vlogger_cli.eval import identity, reference, sharpness
from vlogger_cli.eval.file_facts import file_facts


# --- identity ---------------------------------------------------------------------------------------

def test_identity_distances_mean_and_worst():
    portrait = np.zeros(128, np.float32)
    descriptors = np.zeros((5, 128), np.float32)
    descriptors[:, 0] = [0.1, 0.2, 0.7, np.nan, 0.4]  # frame 3 has no face
    group, series = identity.identity_metrics(descriptors, portrait)
    assert group["to_portrait_mean"] == pytest.approx(0.35)
    assert group["to_portrait_worst"] == pytest.approx(0.7) and group["to_portrait_worst_frame"] == 2
    assert group["to_first_worst"] == pytest.approx(0.6) and group["to_first_worst_frame"] == 2
    assert group["same_person"] == pytest.approx(0.75)
    assert np.isnan(series["identity_to_portrait"][3])


def test_identity_without_portrait_is_not_available():
    group, series = identity.identity_metrics(np.zeros((3, 128), np.float32), None)
    assert group["to_portrait_mean"] is None and "--portrait" in group["reasons"]["to_portrait_mean"]
    assert group["same_person"] is None and group["to_first_mean"] == 0
    assert "identity_to_portrait" not in series


def test_face_descriptor_tells_people_apart(face_image, testdata):
    import skimage.data

    from vlogger_cli.body.landmarks import detect_face
    from vlogger_cli.body.portrait import load_portrait

    embed = identity.FaceEmbedder()
    crop, crop_face = face_image
    full = skimage.data.astronaut()
    same = np.linalg.norm(embed(crop, crop_face) - embed(full, detect_face(full)))
    other_image = load_portrait(testdata / "portraits" / "echomimic_d.jpg")
    other = np.linalg.norm(embed(crop, crop_face) - embed(other_image, detect_face(other_image)))
    assert same < 0.1 and other > identity.SAME_PERSON


# --- sharpness --------------------------------------------------------------------------------------

def _blurred(image, sigma):
    import cv2

    return cv2.GaussianBlur(image, (0, 0), sigma)


def test_blur_lowers_both_sharpness_measures(face_image):
    image, points = face_image
    sharp = sharpness.SharpnessMeter(2)
    blurred = sharpness.SharpnessMeter(2)
    for index in range(2):
        sharp.add(index, image, points)
        blurred.add(index, _blurred(image, 2.0), points)
    a, b = sharp.metrics(), blurred.metrics()
    assert a["frames_measured"] == 2
    assert b["laplacian_var"] < 0.3 * a["laplacian_var"]
    if sharpness.load_cpbd() is not None:
        assert 0 <= b["cpbd"] < a["cpbd"] <= 1


def test_without_cpbd_the_fallback_is_reported(face_image, monkeypatch):
    monkeypatch.setattr(sharpness, "load_cpbd", lambda: None)
    meter = sharpness.SharpnessMeter(1)
    meter.add(0, *face_image)
    group = meter.metrics()
    assert group["cpbd"] is None and "pip install --no-deps cpbd" in group["reasons"]["cpbd"]
    assert group["laplacian_var"] > 0


def test_sampled_frames_are_spread_over_the_video():
    assert sharpness.sample_frames(10) == set(range(10))
    frames = sorted(sharpness.sample_frames(1000))
    assert len(frames) == sharpness.MAX_FRAMES and frames[0] == 0 and frames[-1] == 999


# --- against a reference ----------------------------------------------------------------------------

def test_psnr_of_a_known_error():
    a = np.full((8, 8, 3), 100, np.uint8)
    assert reference.psnr(a, a + 10) == pytest.approx(10 * np.log10(255**2 / 100))
    assert reference.psnr(a, a) == reference.MAX_PSNR


def test_reference_meter_on_identical_resized_and_faceless_frames(face_image):
    import cv2

    image, points = face_image
    meter = reference.ReferenceMeter()
    meter.add(image, points, image, points)  # identical
    half = cv2.resize(image, (160, 160), interpolation=cv2.INTER_AREA)
    meter.add(half, points / 2, image, points)  # half size: compared at the reference's size
    meter.add(image, np.full_like(points, np.nan), image, points)  # no face: not counted
    group, series = meter.metrics()
    assert series["face_psnr"][0] == reference.MAX_PSNR and series["face_ssim"][0] == pytest.approx(1.0)
    assert series["lme"][0] == 0 and series["lme"][1] == pytest.approx(0, abs=1e-6)
    assert 25 < series["face_psnr"][1] < 60 and np.isnan(series["face_psnr"][2])
    assert group["frames_compared"] == 2 and group["face_psnr"] == pytest.approx(np.mean(series["face_psnr"][:2]))


# --- file facts -------------------------------------------------------------------------------------

def test_file_facts_of_a_video_with_and_without_sound(talking_video, make_video, face_image):
    from vlogger_cli.media import probe_video

    facts = file_facts(probe_video(talking_video))
    assert facts["fps"] == 25 and facts["width"] == 320 and facts["video_codec"] == "h264"
    assert abs(facts["audio_minus_video_s"]) < 0.03 and facts["audio_codec"] == "aac"
    silent = file_facts(probe_video(make_video("silent", [face_image[0]] * 5, None)))
    assert silent["frames"] == 5 and silent["video_duration_s"] == pytest.approx(0.2)
    assert silent["audio_duration_s"] is None and "no audio" in silent["reasons"]["audio_codec"]
