import numpy as np
import pytest

from vlogger_cli.body import landmarks as lmk
from vlogger_cli.body.landmarks import NUM_FACE, Landmarks, detect_landmarks
from vlogger_cli.body.model import KEYPOINT_NAMES
from vlogger_cli.errors import JobError

cv2 = pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def astronaut():
    from skimage.data import astronaut

    return astronaut()


@pytest.fixture(scope="module")
def astronaut_landmarks(astronaut):
    return detect_landmarks(astronaut)


def face_error(found: Landmarks, expected_xy: np.ndarray, diag: float) -> float:
    """Mean distance between two sets of face points as a fraction of the face diagonal."""
    return float(np.linalg.norm(found.face[:, :2] - expected_xy, axis=1).mean() / diag)


def test_astronaut_face_pose_and_irises(astronaut_landmarks):
    lm = astronaut_landmarks
    assert lm.image_size == (512, 512)
    assert lm.face.shape == (NUM_FACE, 3) and lm.has_face and lm.face_conf.min() > 0
    # The astronaut's face lies in x 170..310, y 50..230 of the 512² photo.
    x0, y0, x1, y1 = lm.face_bbox()
    assert 150 < x0 < x1 < 320 and 40 < y0 < y1 < 240
    assert 120 < lm.face_diagonal() < 220
    # Irises inside the eye region: between the eye corners (33/133 and 362/263) horizontally.
    right_iris, left_iris = lm.face[468, 0], lm.face[473, 0]
    assert min(lm.face[33, 0], lm.face[133, 0]) < right_iris < max(lm.face[33, 0], lm.face[133, 0])
    assert min(lm.face[362, 0], lm.face[263, 0]) < left_iris < max(lm.face[362, 0], lm.face[263, 0])
    # The subject's left eye is on the image's right.
    assert left_iris > right_iris
    # Pose: shoulders visible, below the face, the subject's left shoulder on the image's right.
    assert lm.has_pose and lm.pose_conf[[11, 12]].min() > 0.9
    assert lm.pose[11, 0] > lm.pose[12, 0] and lm.pose[11, 1] > y1
    xy, conf = lm.keypoints()
    assert xy.shape == (len(KEYPOINT_NAMES), 2) and conf.shape == (len(KEYPOINT_NAMES),)


def test_landmarks_round_trip_through_arrays(astronaut_landmarks):
    again = Landmarks.from_arrays(astronaut_landmarks.to_arrays())
    assert again.image_size == astronaut_landmarks.image_size
    np.testing.assert_array_equal(again.face, astronaut_landmarks.face)
    np.testing.assert_array_equal(again.hands_conf, astronaut_landmarks.hands_conf)


def test_graphs_are_built_once():
    assert lmk._graph("holistic") is lmk._graph("holistic")


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_no_person_is_a_job_error_naming_the_portrait(name):
    import skimage.data

    with pytest.raises(JobError, match=f"no person/face found in PORTRAIT people/{name}.jpg; use a photo"):
        detect_landmarks(getattr(skimage.data, name)(), source=f"people/{name}.jpg")


def test_plain_gradient_has_no_person():
    ramp = np.linspace(0, 255, 640, dtype=np.float32)
    img = np.stack(np.broadcast_arrays(ramp[None, :], ramp[::-1, None][:480], np.full((480, 640), 90.0)), -1)
    with pytest.raises(JobError, match="no person/face found"):
        detect_landmarks(img.astype(np.uint8))


@pytest.mark.parametrize("angle", [-25, 20])
def test_rotated_portrait(astronaut, astronaut_landmarks, angle):
    turn = cv2.getRotationMatrix2D((256, 256), angle, 1.0)
    rotated = cv2.warpAffine(astronaut, turn, (512, 512), borderMode=cv2.BORDER_REFLECT)
    expected = astronaut_landmarks.face[:, :2] @ turn[:, :2].T + turn[:, 2]
    assert face_error(detect_landmarks(rotated), expected, astronaut_landmarks.face_diagonal()) < 0.02


def test_very_large_portrait_is_detected_downscaled_and_mapped_back(astronaut, astronaut_landmarks):
    big = cv2.resize(astronaut, (3000, 3000), interpolation=cv2.INTER_CUBIC)
    found = detect_landmarks(big)
    assert found.image_size == (3000, 3000)
    scale = 3000 / 512
    expected = astronaut_landmarks.face[:, :2] * scale
    assert face_error(found, expected, astronaut_landmarks.face_diagonal() * scale) < 0.02


@pytest.mark.parametrize("canvas, at", [((1400, 512), (0, 300)), ((512, 1400), (800, 0))])
def test_tall_and_wide_images(astronaut, astronaut_landmarks, canvas, at):
    img = np.full((*canvas, 3), 120, np.uint8)
    x, y = at
    img[y:y + 512, x:x + 512] = astronaut
    found = detect_landmarks(img)
    assert face_error(found, astronaut_landmarks.face[:, :2] + [x, y], astronaut_landmarks.face_diagonal()) < 0.02


def test_small_person_in_a_wide_shot(astronaut, astronaut_landmarks):
    """A 200-px head-and-shoulders in an 1800x1200 picture: too small for the whole-image detectors."""
    img = np.full((1200, 1800, 3), 200, np.uint8)
    img[700:900, 1300:1500] = cv2.resize(astronaut, (200, 200), interpolation=cv2.INTER_AREA)
    found = detect_landmarks(img)
    expected = astronaut_landmarks.face[:, :2] * (200 / 512) + [1300, 700]
    assert face_error(found, expected, astronaut_landmarks.face_diagonal() * 200 / 512) < 0.03


def test_full_body_photo_finds_small_face_and_both_hands(testdata):
    from vlogger_cli.body.portrait import load_portrait

    path = testdata / "portraits" / "unianimate_fullbody_woman.jpg"
    found = detect_landmarks(load_portrait(path), source=path)
    assert found.has_face and found.face_diagonal() < 0.2 * max(found.image_size)
    assert found.has_hand(0) and found.has_hand(1)
    # Hands are on the subject's sides: the left hand near the pose's left wrist.
    for side, wrist in ((0, 15), (1, 16)):
        assert np.linalg.norm(found.hands[side, 0, :2] - found.pose[wrist, :2]) < found.face_diagonal()


def test_hand_on_cheek_is_found(testdata):
    from vlogger_cli.body.portrait import load_portrait

    found = detect_landmarks(load_portrait(testdata / "portraits" / "liveportrait_d30.jpg"))
    assert found.has_face and found.has_hand(1)  # the subject's right hand, on the image's left
    x0, y0, x1, y1 = found.face_bbox()
    tips = found.hands[1, [8, 12, 16], :2]
    assert ((tips[:, 0] > x0 - 50) & (tips[:, 0] < x1) & (tips[:, 1] > y0) & (tips[:, 1] < y1 + 50)).all()
