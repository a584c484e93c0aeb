"""Motion metrics on constructed landmark tracks with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vlogger_cli.eval import motion

FPS = 25.0


@pytest.fixture(scope="module")
def face(face_image) -> np.ndarray:
    """The astronaut's real FaceMesh points (478, 3)."""
    return face_image[1].astype(np.float64)


def test_frozen_face_has_zero_jitter_and_no_blinks(face):
    points = np.repeat(face[None], 100, axis=0)
    group, series = motion.motion_metrics(points, FPS)
    assert group["jitter"] == 0 and group["jitter_p95"] == 0
    assert group["blinks"] == 0 and group["blinks_per_min"] == 0
    assert group["head_yaw_std"] == pytest.approx(0, abs=1e-6) and group["face_found"] == 1.0


def test_jitter_is_the_acceleration_in_percent_of_the_face_size(face):
    # Every other frame moves right by 1 % of the face's size: acceleration 2 % per frame².
    size = float(np.hypot(*np.ptp(face[:, :2], axis=0)))
    points = np.repeat(face[None], 20, axis=0)
    points[1::2, :, 0] += 0.01 * size
    jitter = motion.jitter_series(points)
    assert np.isnan(jitter[0]) and np.isnan(jitter[-1])
    assert np.allclose(jitter[1:-1], 2.0)
    # a steady glide has no acceleration
    glide = face[None] + np.arange(20)[:, None, None] * np.array([3.0, 1.0, 0.0])
    assert np.allclose(motion.jitter_series(glide)[1:-1], 0)


def test_head_rotation_recovers_known_angles(face):
    centre = face.mean(axis=0)
    angles = np.array([[0, 0, 0], [12.0, 0, 0], [0, -8.0, 0], [0, 0, 5.0], [10.0, 5.0, -3.0]])  # yaw, pitch, roll
    points = np.stack([(face - centre) @ Rotation.from_euler("YXZ", a, degrees=True).as_matrix().T + centre
                       for a in angles])
    points[3] *= 1.3  # the face nearer the camera: scale must not matter
    assert np.allclose(motion.head_rotation(points), angles, atol=1e-6)


def test_blinks_are_short_closures(face):
    ear = np.full(250, 0.3)  # 10 s at 25 fps
    for start in (20, 90, 160):
        ear[start:start + 4] = [0.15, 0.06, 0.08, 0.18]  # 3 blinks of 160 ms, most closed at their 2nd frame
    ear[200:250] = 0.05  # eyes shut for 2 s: not a blink
    assert motion.blink_frames(ear, FPS) == [21, 91, 161]
    ear[100] = np.nan  # a frame without a face changes nothing
    assert motion.blink_frames(ear, FPS) == [21, 91, 161]


def test_frames_without_a_face(face):
    points = np.repeat(face[None], 10, axis=0)
    points[4] = np.nan
    group, series = motion.motion_metrics(points, FPS)
    assert group["face_found"] == pytest.approx(0.9)
    assert np.isnan(series["jitter"][3:6]).all() and group["jitter"] == 0
