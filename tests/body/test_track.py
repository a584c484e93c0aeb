"""Video tracking (body/track.py): a synthetic talking clip made from the astronaut photo, and the real clip.

The synthetic clip: the astronaut's head moves (a smooth shift and rotation of the photo), one frame is
blank (the face is lost there) and one frame has the eyes painted shut. It is tracked once per session;
times and errors are printed (`pytest -s`), not asserted, the cores being shared.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from vlogger_cli.body.landmarks import eye_aspect_ratio
from vlogger_cli.body.track import (
    Track,
    load_track,
    projected_face,
    save_track,
    track_video,
)
from vlogger_cli.errors import JobError
from vlogger_cli.motion.tracked import track_to_motion

os.environ.setdefault("GLOG_minloglevel", "2")

NUM_FRAMES = 14
FPS = 25.0
LOST = 6
CLOSED = 10
MAX_RELATIVE_ERROR = 0.03
"""Per-frame mean face error bound, as a fraction of the face diagonal (the portrait fit's bound)."""


def _moved(image: np.ndarray, k: int, centre) -> np.ndarray:
    """Frame k of a smooth head motion: shift and in-plane rotation about the face centre."""
    from PIL import Image

    phase = 2 * math.pi * k / (2 * NUM_FRAMES)  # half a period over the clip: ~1 s per head swing
    angle = 5.0 * math.sin(phase)
    dx, dy = 14.0 * math.sin(phase), 6.0 * math.sin(2 * phase)
    pil = Image.fromarray(image)
    moved = pil.rotate(angle, resample=Image.BICUBIC, center=tuple(centre), translate=(dx, dy),
                       fillcolor=tuple(int(c) for c in image[5, 5]))
    return np.asarray(moved)


@pytest.fixture(scope="session")
def clip(tmp_path_factory, close_eyes):
    from skimage.data import astronaut

    from vlogger_cli.body.landmarks import detect_landmarks
    from vlogger_cli.export import write_mp4

    image = astronaut()
    face = detect_landmarks(image).face
    centre = face[:, :2].mean(0)
    shut = close_eyes(image, face)
    frames = []
    for k in range(NUM_FRAMES):
        if k == LOST:
            frames.append(np.full_like(image, 128))
        else:
            frames.append(_moved(shut if k == CLOSED else image, k, centre))
    path = tmp_path_factory.mktemp("clip") / "astronaut_talking.mp4"
    write_mp4(frames, FPS, path, crf=12)
    return path


@pytest.fixture(scope="session")
def tracked(clip, anny):
    calls = []
    track = track_video(clip, body_model=anny, progress=lambda done, total: calls.append((done, total)))
    info = track.info
    print(f"\nsynthetic clip: {track.num_frames} frames, first fit {info['first_fit_s']} s, then "
          f"{info['fit_s_per_frame']} s fit + {info['detect_s_per_frame']} s detection per frame; "
          f"errors {np.round(100 * track.relative_errors, 2)} % of the face diagonal "
          f"(before smoothing {np.round(100 * np.array(info['raw_relative_errors'], dtype=float), 2)})")
    return track, calls


def test_one_fit_per_frame_with_one_shape(tracked, anny):
    track, calls = tracked
    n = NUM_FRAMES
    assert track.num_frames == n and track.fps == FPS and track.image_size == (512, 512)
    assert track.shape.shape == (anny.num_shape,)
    assert track.pose.shape == (n, 13, 3) and track.transl.shape == (n, 3) and track.hand_pose.shape == (n, 30, 3)
    assert track.expression.shape == (n, anny.num_expression)
    assert np.isfinite(track.pose).all() and np.isfinite(track.expression).all() and np.isfinite(track.transl).all()
    assert (track.global_orient == track.global_orient[0]).all()  # held from the first frame
    assert track.expression.min() >= 0 and track.expression.max() <= 1
    assert (track.transl[:, 2] < 0).all()
    assert track.landmarks["face"].shape == (n, 478, 3) and track.landmarks["hands"].shape == (n, 2, 21, 3)
    assert [d for d, _ in calls] == list(range(1, n + 1)) and calls[-1][1] == n


def test_per_frame_errors_within_bound(tracked):
    track, _ = tracked
    rel = track.relative_errors
    seen = ~track.lost
    assert np.isfinite(rel[seen]).all() and np.isnan(rel[~seen]).all()
    assert rel[seen].max() <= MAX_RELATIVE_ERROR, rel


def test_lost_face_is_interpolated_and_reported(tracked):
    track, _ = tracked
    assert track.lost_frames == [LOST]
    assert track.landmarks["face_conf"][LOST].max() == 0
    # The lost frame's parameters continue its neighbours' (interpolated, then smoothed with them).
    for values, tol in ((track.transl, 0.005), (track.expression, 0.05), (track.pose, 0.02)):
        assert np.abs(values[LOST] - (values[LOST - 1] + values[LOST + 1]) / 2).max() <= tol


def test_fill_gaps_and_smoothing():
    from vlogger_cli.body import smoothing

    values = np.array([[0.0], [1.0], [5.0], [5.0], [4.0], [9.0]])
    valid = np.array([False, True, False, False, True, False])
    assert np.allclose(smoothing.fill_gaps(values, valid)[:, 0], [1, 1, 2, 3, 4, 4])
    with pytest.raises(ValueError):
        smoothing.fill_gaps(values, np.zeros(6, bool))
    # Savitzky-Golay (order 2) keeps a parabola exactly and removes alternating jitter.
    t = np.arange(20.0)
    assert np.allclose(smoothing.savgol(0.1 * t ** 2, 7), 0.1 * t ** 2)
    jitter = 0.1 * (-1) ** t
    assert np.abs(smoothing.savgol(t + jitter, 7) - t)[3:-3].max() < 0.3 * 0.1
    assert np.allclose(smoothing.savgol(t[:2], 7), t[:2])  # too short to filter
    # Rotations: about a reference far from zero, and back.
    rng = np.random.default_rng(0)
    rot = np.array([0.0, 2.5, 0.0]) + 0.05 * rng.normal(size=(10, 1, 3))
    same = smoothing.fill_and_smooth_rotations(rot, np.ones(10, bool), None)
    assert np.allclose(same, rot, atol=1e-6)


def test_no_more_jitter_than_the_detections(tracked, anny):
    """The fitted face's centre moves no more jerkily (second differences) than the detected one."""
    track, _ = tracked
    fitted = projected_face(track, anny).mean(axis=1)  # (T, 2)
    detected = track.landmarks["face"][..., :2].mean(axis=1)
    ok = np.array([not track.lost[t - 1:t + 2].any() for t in range(1, track.num_frames - 1)])
    jerk = lambda c: np.linalg.norm(c[2:] - 2 * c[1:-1] + c[:-2], axis=-1)[ok]
    print(f"\nsecond difference of the face centre: fitted {jerk(fitted).mean():.2f} px, "
          f"detected {jerk(detected).mean():.2f} px")
    assert jerk(fitted).mean() <= jerk(detected).mean() + 0.5


def test_eyes_closed_frame_drops_the_aspect_ratio(tracked):
    track, _ = tracked
    ear = track.eye_aspect_ratios()
    assert np.isnan(ear[LOST]).all()
    open_ = np.nanmedian(ear, axis=0)
    assert (open_ > 0.2).all()
    assert (ear[CLOSED] < 0.5 * open_).all(), ear[CLOSED]


def test_eye_aspect_ratio_on_the_astronaut():
    from skimage.data import astronaut

    from vlogger_cli.body.landmarks import detect_landmarks

    face = detect_landmarks(astronaut()).face
    left, right = eye_aspect_ratio(face)
    assert 0.2 < left < 0.45 and 0.2 < right < 0.45
    batch = eye_aspect_ratio(np.stack([face] * 3))
    assert batch[0].shape == (3,) and np.allclose(batch[0], left)


def test_motion_round_trip(tracked, tmp_path):
    """to_motion -> the controls stage's posing reproduces the tracked pose and expression."""
    import roma
    import torch

    from vlogger_cli.body.model import ARKIT_NAMES, CANONICAL_JOINTS
    from vlogger_cli.motion.artifacts import load_motion, save_motion
    from vlogger_cli.motion.representation import MOTION_DIM, POSE_JOINTS
    from vlogger_cli.pipeline.controls import frame_params

    track, _ = tracked
    ref = 3
    motion = track_to_motion(track, reference_index=ref)
    assert motion.values.shape == (track.num_frames, MOTION_DIM) and motion.fps == FPS
    assert np.allclose(motion.joint_axis_angle("head")[ref], 0, atol=1e-5)
    assert np.allclose(motion.hands, 0)
    save_motion(tmp_path / "motion.safetensors", motion)
    motion = load_motion(tmp_path / "motion.safetensors")
    assert motion.meta["reference_index"] == ref and motion.meta["lost_frames"] == [LOST]

    # Blinks are measured on the lids: the painted-shut frame is closed, the others open.
    closure = motion.expression[:, [ARKIT_NAMES.index("eyeBlinkLeft"), ARKIT_NAMES.index("eyeBlinkRight")]]
    assert (closure[CLOSED] > 0.8).all() and np.delete(closure, CLOSED, axis=0).max() < 0.3, closure
    assert motion.blink[CLOSED] > 0.8

    motion = track_to_motion(track, reference_index=ref, blink="fit")
    params = frame_params(track.fit(ref), motion, 0, track.num_frames - 1)
    got = params.pose  # frame_params poses with rotation matrices
    want = roma.rotvec_to_rotmat(torch.as_tensor(track.pose))
    for joint in POSE_JOINTS:
        j = CANONICAL_JOINTS.index(joint)
        assert torch.allclose(got[:, j], want[:, j], atol=1e-4), joint
    assert np.allclose(params.expression.numpy(), track.expression, atol=1e-5)
    # Gaze follows the eyeLook* channels: looking out with the left eye and in with the right = yaw > 0.
    e = track.expression
    i = {n: k for k, n in enumerate(ARKIT_NAMES)}
    expect = 0.2 * (e[:, i["eyeLookOutLeft"]] - e[:, i["eyeLookInLeft"]] + e[:, i["eyeLookInRight"]]
                    - e[:, i["eyeLookOutRight"]])
    assert np.allclose(motion.channel("gaze_yaw"), expect, atol=1e-6)


def test_save_and_load(tracked, tmp_path):
    track, _ = tracked
    paths = save_track(tmp_path / "track", track)
    assert paths["tensors"].is_file() and paths["json"].is_file()
    back = load_track(tmp_path / "track")
    assert isinstance(back, Track) and back.num_frames == track.num_frames
    for name in ("shape", "global_orient", "transl", "pose", "hand_pose", "expression", "face_errors", "lost"):
        assert np.array_equal(getattr(back, name), getattr(track, name), equal_nan=True), name
    for key, value in track.landmarks.items():
        assert np.array_equal(back.landmarks[key], value)
    assert back.camera.to_dict() == track.camera.to_dict()
    assert back.fps == track.fps and back.image_size == track.image_size and back.lost_frames == [LOST]
    assert back.landmarks_at(0).face_diagonal() == pytest.approx(track.face_diagonal[0])


def test_video_without_a_face_names_the_file(tmp_path, anny):
    from vlogger_cli.export import write_mp4

    ramp = np.linspace(40, 200, 128, dtype=np.uint8)
    frames = [np.stack([np.tile(ramp, (128, 1))] * 3, -1) for _ in range(3)]
    path = write_mp4(frames, FPS, tmp_path / "empty_room.mp4")
    with pytest.raises(JobError, match="empty_room.mp4"):
        track_video(path, body_model=anny)


def test_resampled_rate_and_bad_input(clip, anny, tmp_path):
    from scipy.io import wavfile

    from vlogger_cli.errors import InputError

    track = track_video(clip, body_model=anny, fps=FPS / 2, max_frames=3)
    assert track.fps == FPS / 2 and track.num_frames == 3
    with pytest.raises(IndexError):
        track_to_motion(track, reference_index=3)
    with pytest.raises(ValueError):
        track_to_motion(track, blink="maybe")
    wav = tmp_path / "speech.wav"
    wavfile.write(wav, 16000, np.zeros(1600, np.int16))
    with pytest.raises(InputError, match="no video stream"):
        track_video(wav, body_model=anny)


def test_real_talking_clip(testdata, anny):
    """The first 60 frames of the real clip: every frame found, errors within the bound."""
    path = testdata / "videos" / "videoretalking_face_4.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    track = track_video(path, body_model=anny, max_frames=60)
    rel = track.relative_errors
    info = track.info
    print(f"\n{path.name}: {track.num_frames} frames at {track.fps} fps, {info['seconds']} s in all; first fit "
          f"{info['first_fit_s']} s, then {info['fit_s_per_frame']} s fit + {info['detect_s_per_frame']} s "
          f"detection per frame; face error mean {100 * np.nanmean(rel):.2f} %, max {100 * np.nanmax(rel):.2f} % "
          f"of the face diagonal; EAR median {np.nanmedian(track.eye_aspect_ratios(), axis=0).round(3)}")
    assert track.num_frames == 60 and not track.lost.any()
    assert np.nanmax(rel) <= MAX_RELATIVE_ERROR


def test_killed_tracking_resumes_from_its_checkpoints(clip, tracked, anny, tmp_path, monkeypatch):
    """Raw fits are saved every CHECKPOINT_FRAMES frames; a tracking stopped at frame 10 goes on from frame 8
    (the last checkpoint), through the lost frame, to the same result as an uninterrupted run."""
    import vlogger_cli.body.track as track_module
    from vlogger_cli.body.landmarks import Landmarks

    full = tracked[0]
    # mediapipe's landmarks of one image vary between calls in one process (on CI the fitted expressions of the
    # re-detected frames moved by > 0.05). Replaying the uninterrupted run's landmarks makes the comparison
    # about resuming alone: from the same detections the resumed run must give the same fits.
    def replay(frame, *, source):
        i = int(source.split()[1])  # "frame {i} of {path}"
        if full.lost[i]:
            raise JobError(f"no person/face found in {source}")
        return Landmarks(image_size=full.image_size, **{k: v[i] for k, v in full.landmarks.items()})

    monkeypatch.setattr(track_module, "detect_landmarks", replay)
    monkeypatch.setattr(track_module, "CHECKPOINT_FRAMES", 4)
    folder = tmp_path / "partial"

    def stop_at_10(done, total):
        if done == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        track_video(clip, body_model=anny, progress=stop_at_10, checkpoint_dir=folder)
    assert sorted(p.name for p in folder.iterdir()) == ["000000.npz", "000004.npz"]
    calls = []
    resumed = track_video(clip, body_model=anny, progress=lambda d, t: calls.append(d), checkpoint_dir=folder)
    assert calls[0] == 9 and calls[-1] == NUM_FRAMES  # frames 0..7 came from the checkpoints
    assert resumed.num_frames == full.num_frames and resumed.lost_frames == full.lost_frames == [LOST]
    print("max pose difference (rad)", float(np.abs(resumed.pose - full.pose).max()),
          "expression", float(np.abs(resumed.expression - full.expression).max()))
    # The fits themselves are deterministic (same landmarks, same warm starts, same thread count): only
    # float reduction order may differ, so the tolerances are far below the ~0.02 rad a real change makes.
    assert np.allclose(resumed.pose, full.pose, atol=1e-3)
    assert np.allclose(resumed.expression, full.expression, atol=1e-3)
    assert np.allclose(resumed.transl, full.transl, atol=1e-4)
    assert np.nanmax(resumed.relative_errors) < MAX_RELATIVE_ERROR
    # another key (here: another rate) does not reuse them
    other = track_video(clip, body_model=anny, fps=12.5, checkpoint_dir=folder, max_frames=3)
    assert other.num_frames == 3
