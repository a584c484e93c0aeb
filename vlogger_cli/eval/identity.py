"""Identity: does every frame still show the person of the portrait (and of the first frame)?

Measure: dlib's face-recognition ResNet (a 128-d descriptor per face, trained so that photos of one
person lie within 0.6 of each other, Euclidean; dlib's stated threshold). Its weights ship inside the
`face-recognition-models` wheel and dlib itself in `dlib-bin`: nothing is downloaded at run time. The
`face_recognition` wrapper is not used (it needs setuptools' removed `pkg_resources`): the model files are
found through the package's folder and loaded with dlib directly.

Alignment: dlib's 5-point shape predictor, started from a box derived from the FaceMesh points the other
metrics use (`dlib_box`) instead of dlib's HOG detector, which misses turned heads and sometimes finds a
second "face" in clothing. Measured on 15 frames of 5 corpus clips: descriptors 0.00-0.09 from those of
dlib's own detector box (real clips score 0.18-0.41 to their first frame).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from vlogger_cli.errors import JobError
from vlogger_cli.eval.group import not_available

SAME_PERSON = 0.6
"""dlib's threshold: descriptors of one person are closer than this."""

# FaceMesh's point box (x0, y0, x1, y1) -> dlib's detector box, in fractions of the point box's width and
# height; fitted on the corpus clips above (the detector's box starts at the brows and ends above the chin).
_DLIB_BOX = (0.0, 0.06, 0.98, 0.9)
_INSTALL = "install it with `pip install dlib-bin face-recognition-models` (make setup does)"


def model_folder() -> Path:
    """The folder of dlib model files inside the installed `face-recognition-models` package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise JobError(f"face-recognition-models is not installed: {_INSTALL}")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class FaceEmbedder:
    """dlib's 128-d face descriptor of the face whose FaceMesh points are given (one model per instance)."""

    def __init__(self):
        try:
            import dlib
        except ImportError:
            raise JobError(f"dlib is not installed: {_INSTALL}") from None
        folder = model_folder()
        self._dlib = dlib
        self._shape = dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat"))
        self._net = dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat"))

    def __call__(self, image: np.ndarray, points: np.ndarray) -> np.ndarray:
        """(128,) float32 descriptor of the face at `points` (478, 2|3) in the (H, W, 3) uint8 RGB `image`."""
        image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
        shape = self._shape(image, self._dlib.rectangle(*dlib_box(points)))
        return np.asarray(self._net.compute_face_descriptor(image, shape), dtype=np.float32)


def dlib_box(points: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the box dlib's frontal face detector would put around the face."""
    xy = np.asarray(points, dtype=np.float64)[:, :2]
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    w, h = x1 - x0, y1 - y0
    fl, ft, fr, fb = _DLIB_BOX
    return int(round(x0 + fl * w)), int(round(y0 + ft * h)), int(round(x0 + fr * w)), int(round(y0 + fb * h))


def identity_metrics(descriptors: np.ndarray, portrait: np.ndarray | None) -> tuple[dict, dict]:
    """Identity group and its per-frame series from (T, 128) descriptors (NaN rows: no face).

    to_portrait_*: distance of each frame to the portrait's descriptor (None without a portrait);
    to_first_*: distance to the first frame with a face (drift over the video);
    same_person: fraction of frames with a face closer than SAME_PERSON to the portrait.
    Returns (metrics, {"identity_to_portrait": (T,), "identity_to_first": (T,)}); frames without a
    descriptor (no face, or not sampled) are NaN and left out.
    """
    found = np.isfinite(descriptors).all(axis=1)
    metrics: dict = {"reasons": {}}
    no_portrait = "no portrait: pass --portrait PHOTO"
    series = {}
    if not found.any():
        keys = [f"{n}_{s}" for n in ("to_first", "to_portrait") for s in ("mean", "worst", "worst_frame")]
        return not_available(metrics, keys + ["same_person"], "no measured frame has a face"), series
    first = descriptors[np.flatnonzero(found)[0]]
    references = {"to_first": first, "to_portrait": portrait}
    for name, reference in references.items():
        if reference is None:
            not_available(metrics, [f"{name}_{stat}" for stat in ("mean", "worst", "worst_frame")], no_portrait)
            continue
        distance = np.linalg.norm(descriptors - reference[None], axis=1)  # NaN where no face
        series[f"identity_{name}"] = distance
        worst = int(np.nanargmax(distance))
        metrics[f"{name}_mean"] = float(np.nanmean(distance))
        metrics[f"{name}_worst"] = float(distance[worst])
        metrics[f"{name}_worst_frame"] = worst
    if portrait is None:
        not_available(metrics, ["same_person"], no_portrait)
    else:
        metrics["same_person"] = float(np.mean(series["identity_to_portrait"][found] < SAME_PERSON))
    return metrics, series
