"""Track a talking video: per-frame landmarks and body fit with one shape, as a `Track` and a stage-1 `Motion`.

Used by `vlogger edit` (issue 7: the source's motion, edited and re-rendered) and by the data preparation for
training on real videos.

Method (`track_video`):

1. Frames are read at a constant rate (`read_frames`; a variable-frame-rate file is resampled to `fps`,
   by default the rate the container declares).
2. Landmarks per frame (`detect_landmarks`: face mesh 478, pose 33, hands 2 x 21). A frame without a
   face is *lost*: it keeps zero landmarks (confidence 0), NaN errors, and parameters interpolated from
   its neighbours (`Track.lost`). A video without any face: JobError naming the file.
3. The first frame with a face gets the full portrait fit (`fit_portrait`: rigid, body, face stages).
   It fixes, for the whole video, the body SHAPE, the global orientation and the camera (a pinhole of
   `fov_deg`, as for portraits). Global orientation held: a seated talker's head and upper-body motion
   is then carried by the spine, neck and head rotations only, which is exactly what the motion vector
   stores (residual joint rotations, no root rotation), so `motion.tracked.track_to_motion` loses no rotation.
4. Every next frame: `fit_frame`, a WARM START from the previous frame's fit and a few Adam steps
   (`FRAME_STEPS`) of the full model on pose (all 13 joints), expression, hands (when detected) and
   translation, with the portrait fit's data term and priors plus a light tie to the previous frame.
   After a lost stretch or when a frame's error is large, the frame is refitted with `RECOVERY_STEPS`.
5. Smoothing (`smoothing.py`): lost frames interpolated, then a Savitzky–Golay filter (order 2) on
   pose (in the tangent space of the reference rotation), translation (window ~0.2 s) and expression
   (window ~0.15 s: jaw openings keep their timing and most of their height). The per-frame
   reprojection errors are those of the smoothed parameters against that frame's detected landmarks.
   Measured on videoretalking_face_4 (199 frames, 30 fps): the raw warm-started fits jitter a little more
   than the detections (mean second difference of the face centre 2.65 px vs 2.41 px); smoothed: 0.97 px,
   at a mean face error of 0.94 % of the face diagonal (raw 0.90 %), max 1.96 % (raw 1.31 %).
6. Blinks: the fit under-reads closed eyes (the face table's lid points do not follow anny's eyeBlink
   shapes), so `track_to_motion` takes eyeBlink* from the lids measured on the face mesh (`Track.eye_closure`).

`motion/tracked.py` turns a Track into stage 1's format (`Motion`) relative to one of its frames.

Threads: fitting is many small torch ops; it runs under `small_op_threads()` (1 torch thread).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vlogger_cli.body import smoothing
from vlogger_cli.body.correspondence import load_face_table
from vlogger_cli.body.fit import (
    DEFAULT_FOV_DEG,
    BodyFit,
    _adam,
    _data_loss,
    _prior,
    _project,
    _result,
    _targets,
    _Variables,
    fit_portrait,
)
from vlogger_cli.body.landmarks import (
    NUM_FACE,
    NUM_HAND,
    NUM_POSE,
    Landmarks,
    detect_landmarks,
    eye_aspect_ratio,
)
from vlogger_cli.body.model import (
    ARKIT_NAMES,
    CANONICAL_JOINTS,
    KEYPOINT_NAMES,
    BodyModel,
    BodyParams,
)
from vlogger_cli.camera import Camera
from vlogger_cli.errors import JobError

FRAME_STEPS = 20
"""Adam steps per warm-started frame (each one model pass forward and backward, ~15 ms with 1 thread)."""
RECOVERY_STEPS = 60
"""Steps for a frame after a lost stretch, or whose warm-started fit is off by more than RECOVERY_ERROR."""
RECOVERY_ERROR = 0.03
"""Relative face error (of the face diagonal) above which a frame is refitted with RECOVERY_STEPS."""
TIE_POSE_RAD = 0.05
TIE_EXPRESSION = 0.25
TIE_WEIGHT = 0.05
"""Tie to the previous frame: TIE_WEIGHT * (|Δpose| / TIE_POSE_RAD)² (+ expression likewise), summed.
Weak against the face term (one face point off by 1 % of the diagonal costs 1): it only holds what the
landmarks do not see (an arm out of the picture) where it was."""
FRAME_LR = {"ab": 0.001, "log_depth": 0.002, "pose": 0.005, "expression": 0.02, "hand_pose": 0.02,
            "shape": 0.01, "global_orient": 0.005}
"""Adam learning rates of the warm-started fit (per parameter; cosine decay to 10 % as in fit.py). Each frame
starts a fresh Adam, whose first steps move every parameter by ~lr whatever its gradient: rates about half
the portrait fit's face stage keep that from becoming frame-to-frame drift. Measured on the first 20
frames of videoretalking_face_4 (20 steps): mean face error 0.7-0.8 % of the face diagonal, against
1.05-1.15 % with the face stage's rates and 0.7-0.9 % for a full portrait fit of each frame."""
SMOOTH_POSE_S = 0.2
SMOOTH_EXPRESSION_S = 0.15
SMOOTH_ORDER = 2
EYE_CLOSURE_DEAD_ZONE = 0.15
CHECKPOINT_FRAMES = 50
"""With a checkpoint folder, the raw per-frame fits and landmarks are saved every this many frames: a killed
tracking of a long video resumes at the last checkpoint (bit-identical: the warm start is the saved fit)."""
TRACK_TENSORS = "track.safetensors"
TRACK_JSON = "track.json"
FORMAT_VERSION = 1
_PARAMS = ("global_orient", "transl", "pose", "hand_pose", "expression")
_LANDMARKS = ("face", "face_conf", "pose", "pose_conf", "hands", "hands_conf")


# --- eye aspect ratio ----------------------------------------------------------------------------------

# --- the track ------------------------------------------------------------------------------------------

@dataclass
class Track:
    """A tracked video: one body shape, per-frame fits and landmarks (T frames at `fps`).

    shape (S,); global_orient (T, 3); transl (T, 3); pose (T, 13, 3) axis-angle of CANONICAL_JOINTS;
    hand_pose (T, 30, 3); expression (T, E) (ARKit activations for anny); camera: one for all frames.
    landmarks: the detected `Landmarks` fields stacked over frames (face (T, 478, 3), face_conf (T, 478),
    pose (T, 33, 3), pose_conf (T, 33), hands (T, 2, 21, 3), hands_conf (T, 2, 21)); zeros with confidence
    0 on lost frames. face_errors (T, 478): pixel distance between detected and projected face points of
    the final (smoothed) parameters, NaN on lost frames; face_diagonal (T,) pixels (NaN on lost frames);
    lost (T,) bool: no face detected, parameters interpolated.
    """

    source: str
    fps: float
    image_size: tuple[int, int]
    model_name: str
    camera: Camera
    shape: np.ndarray
    global_orient: np.ndarray
    transl: np.ndarray
    pose: np.ndarray
    hand_pose: np.ndarray
    expression: np.ndarray
    landmarks: dict[str, np.ndarray]
    face_errors: np.ndarray
    face_diagonal: np.ndarray
    lost: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.pose.shape[0])

    @property
    def mean_face_errors(self) -> np.ndarray:
        """(T,) mean face landmark error in pixels (NaN on lost frames)."""
        return np.mean(self.face_errors, axis=1)

    @property
    def relative_errors(self) -> np.ndarray:
        """(T,) mean face landmark error as a fraction of that frame's face diagonal (NaN on lost frames)."""
        return self.mean_face_errors / self.face_diagonal

    @property
    def lost_frames(self) -> list[int]:
        return [int(i) for i in np.nonzero(self.lost)[0]]

    def head(self, n: int) -> "Track":
        """The first n frames as a Track of their own (every per-frame array cut; shape and camera shared)."""
        n = min(int(n), self.num_frames)
        cut = lambda a: np.ascontiguousarray(a[:n])
        seconds = self.info.get("seconds")
        info = {**self.info, "first_frames": n}
        if seconds is not None:  # the tracking time of the frames kept, so s/frame reports stay true
            info["seconds"] = float(seconds) * n / max(1, self.num_frames)
        return Track(source=self.source, fps=self.fps, image_size=self.image_size, model_name=self.model_name,
                     camera=self.camera, shape=self.shape, global_orient=cut(self.global_orient),
                     transl=cut(self.transl), pose=cut(self.pose), hand_pose=cut(self.hand_pose),
                     expression=cut(self.expression), landmarks={k: cut(v) for k, v in self.landmarks.items()},
                     face_errors=cut(self.face_errors), face_diagonal=cut(self.face_diagonal), lost=cut(self.lost),
                     info=info)

    def landmarks_at(self, t: int) -> Landmarks:
        return Landmarks.from_arrays({**{k: v[t] for k, v in self.landmarks.items()},
                                      "image_size": np.asarray(self.image_size)})

    def fit(self, t: int) -> BodyFit:
        """Frame t as a portrait fit (e.g. the reference fit for the controls stage)."""
        diag = float(self.face_diagonal[t])
        return BodyFit(model_name=self.model_name, image_size=self.image_size, camera=self.camera,
                       shape=self.shape.copy(), global_orient=self.global_orient[t].copy(),
                       transl=self.transl[t].copy(), pose=self.pose[t].copy(), hand_pose=self.hand_pose[t].copy(),
                       expression=self.expression[t].copy(), face_errors=self.face_errors[t].copy(),
                       keypoint_errors=np.full(len(KEYPOINT_NAMES), np.nan, np.float32), face_diagonal=diag,
                       info={"track_frame": int(t), "lost": bool(self.lost[t])})

    def params(self, first: int = 0, last: int | None = None) -> BodyParams:
        """BodyParams with batch = frames first..last (inclusive; default all)."""
        last = self.num_frames - 1 if last is None else last
        sl = slice(first, last + 1)
        n = last + 1 - first
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32))
        return BodyParams(shape=t(self.shape)[None].expand(n, -1), global_orient=t(self.global_orient[sl]),
                          transl=t(self.transl[sl]), pose=t(self.pose[sl]), hand_pose=t(self.hand_pose[sl]),
                          expression=t(self.expression[sl]))

    def eye_aspect_ratios(self) -> np.ndarray:
        """(T, 2) EAR of the subject's (left, right) eye from the detected face mesh; NaN on lost frames."""
        left, right = eye_aspect_ratio(self.landmarks["face"])
        ear = np.stack([left, right], axis=1)
        ear[self.lost] = np.nan
        return ear

    def eye_closure(self) -> np.ndarray:
        """(T, 2) lid closure of the subject's (left, right) eye in [0, 1], measured on the detected face mesh:
        the EAR's drop below the eye's open EAR (the 75th percentile over the video: eyes are open most of
        the time), 1 at a quarter of it, with a dead zone of EYE_CLOSURE_DEAD_ZONE against detector noise.
        Lost frames are interpolated."""
        ear = self.eye_aspect_ratios()
        seen = ~self.lost
        open_ = np.nanpercentile(ear[seen], 75, axis=0)
        drop = (open_ - ear) / np.maximum(0.75 * open_, 1e-6)
        closure = np.clip((drop - EYE_CLOSURE_DEAD_ZONE) / (1 - EYE_CLOSURE_DEAD_ZONE), 0.0, 1.0)
        return smoothing.fill_gaps(np.nan_to_num(closure), seen).astype(np.float32)


# --- one frame ------------------------------------------------------------------------------------------

def fit_frame(image: np.ndarray, landmarks: Landmarks, body_model: BodyModel, init: BodyFit, *,
              steps: int = FRAME_STEPS, free_shape: bool = False, free_global_orient: bool = False,
              tie_weight: float | None = None) -> BodyFit:
    """Fit one video frame starting from `init` (the previous frame's fit): Adam on pose, expression,
    hands (when detected) and translation with fit.py's data term and priors, plus a tie to `init`.
    Shape, global orientation (unless freed) and camera are `init`'s."""
    start = time.perf_counter()
    tie_weight = TIE_WEIGHT if tie_weight is None else tie_weight
    height, width = image.shape[:2]
    if not landmarks.has_face:
        raise ValueError("fit_frame needs face landmarks")
    if landmarks.image_size != (height, width) or tuple(init.image_size) != (height, width):
        raise ValueError(f"landmarks {landmarks.image_size} / init {init.image_size} do not match the "
                         f"{(height, width)} image")
    camera = init.camera
    table = load_face_table(body_model)
    tg = _targets(landmarks)

    var = _Variables.from_fit(body_model, init)
    pose0, expr0 = var.pose.clone(), var.expression.clone()

    def loss_fn():
        face_uv, kp_uv, _ = _project(body_model, table, var.params(), camera)
        prior = _prior(var, 0.2)
        tie = (((var.pose - pose0) / TIE_POSE_RAD).square().sum()
               + ((var.expression - expr0) / TIE_EXPRESSION).square().sum())
        return _data_loss(face_uv, kp_uv, tg) + 0.5 * prior + tie_weight * tie

    names = ["ab", "log_depth", "pose", "expression"]
    if landmarks.has_hand(0) or landmarks.has_hand(1):
        names.append("hand_pose")
    if free_shape:
        names.append("shape")
    if free_global_orient:
        names.append("global_orient")
    leaves = [(getattr(var, name), FRAME_LR[name]) for name in names]
    loss = _adam(leaves, loss_fn, steps, var)

    return _result(body_model, table, var, tg, landmarks, camera, (height, width),
                   {"seconds": round(time.perf_counter() - start, 3), "steps": steps, "loss": loss, "warm_start": True})


# --- a video --------------------------------------------------------------------------------------------

def _empty_landmarks(size: tuple[int, int]) -> Landmarks:
    z = np.zeros
    return Landmarks(image_size=size, face=z((NUM_FACE, 3), np.float32), face_conf=z(NUM_FACE, np.float32),
                     pose=z((NUM_POSE, 3), np.float32), pose_conf=z(NUM_POSE, np.float32),
                     hands=z((2, NUM_HAND, 3), np.float32), hands_conf=z((2, NUM_HAND), np.float32))


def track_video(path: str | Path, *, fps: float | None = None, body_model: BodyModel | None = None,
                progress: Callable[[int, int], None] | None = None, max_frames: int | None = None,
                steps: int = FRAME_STEPS, smooth: bool = True, fov_deg: float = DEFAULT_FOV_DEG,
                checkpoint_dir: str | Path | None = None) -> Track:
    """Track the person in the video at `path` (module docstring). fps: the constant rate to track at
    (None: the container's rate); max_frames: only the first frames; progress(done, total) after each
    frame; smooth=False keeps the raw per-frame fits (lost frames still interpolated); checkpoint_dir:
    save the raw fits every CHECKPOINT_FRAMES frames there and resume from them (`_Checkpoints`)."""
    from vlogger_cli.body.anny_model import anny_body
    from vlogger_cli.media import probe_video, read_frames
    from vlogger_cli.threads import small_op_threads

    path = Path(path)
    info = probe_video(path)  # InputError for no file, no video stream, zero frames
    rate = float(fps or info.fps)
    if rate <= 0:
        raise JobError(f"{path}: cannot tell the frame rate; pass fps")
    total = round(info.duration * rate) if fps else info.num_frames
    if max_frames is not None:
        total = min(total, max_frames)
    model = body_model if body_model is not None else anny_body()
    started = time.perf_counter()
    stats = {"detect_s": 0.0, "fit_s": 0.0, "first_fit_s": 0.0, "recovered": []}

    fits: list[BodyFit | None] = []
    marks: list[Landmarks] = []
    size: tuple[int, int] | None = None
    previous: BodyFit | None = None
    gap = 0
    checkpoints = None
    if checkpoint_dir is not None:
        key = {"video": str(path), "rate": rate, "steps": steps, "fov_deg": fov_deg, "model": model.name}
        checkpoints = _Checkpoints(Path(checkpoint_dir), key)
        fits, marks, saved = checkpoints.restore()
        stats.update(saved)
        if marks:
            size = marks[-1].image_size
            previous = next((f for f in reversed(fits) if f is not None), None)
            gap = next((k for k, f in enumerate(reversed(fits)) if f is not None), len(fits))
    done = len(fits)
    with small_op_threads():
        for i, frame in enumerate(read_frames(path, fps=fps)):
            if max_frames is not None and i >= max_frames:
                break
            if i < done:
                continue  # tracked before the interruption (decoding is cheap next to fitting)
            size = frame.shape[:2]
            t0 = time.perf_counter()
            try:
                found = detect_landmarks(frame, source=f"frame {i} of {path}")
            except JobError:
                found = None
            t1 = time.perf_counter()
            stats["detect_s"] += t1 - t0
            if found is None:
                marks.append(_empty_landmarks(size))
                fits.append(None)
                gap += 1
            else:
                marks.append(found)
                if previous is None:
                    fit = fit_portrait(frame, found, model, fov_deg=fov_deg)
                    stats["first_fit_s"] = time.perf_counter() - t1
                else:
                    fit = fit_frame(frame, found, model, previous, steps=RECOVERY_STEPS if gap else steps)
                    if fit.relative_face_error > RECOVERY_ERROR and not gap:
                        fit = fit_frame(frame, found, model, fit, steps=RECOVERY_STEPS)
                        stats["recovered"].append(i)
                    stats["fit_s"] += time.perf_counter() - t1
                fits.append(fit)
                previous, gap = fit, 0
            if checkpoints is not None and (i + 1) % CHECKPOINT_FRAMES == 0:
                checkpoints.save(i + 1 - CHECKPOINT_FRAMES, fits[-CHECKPOINT_FRAMES:], marks[-CHECKPOINT_FRAMES:], stats)
            if progress is not None:
                progress(i + 1, max(total, i + 1))
        if not fits:
            raise JobError(f"{path}: no frames could be read")
        if previous is None:
            raise JobError(f"no person/face found in any frame of VIDEO {path}; use a video showing the person's face")
        track = _assemble(path, rate, size, model, fits, marks, smooth=smooth)
        track.face_errors, track.face_diagonal = _errors(track, model)
    n_fitted = max(1, sum(f is not None for f in fits) - 1)
    track.info.update({
        "seconds": round(time.perf_counter() - started, 2),
        "detect_s_per_frame": round(stats["detect_s"] / len(fits), 4),
        "fit_s_per_frame": round(stats["fit_s"] / n_fitted, 4),
        "first_fit_s": round(stats["first_fit_s"], 2),
        "recovered_frames": stats["recovered"],
        "steps": steps, "recovery_steps": RECOVERY_STEPS, "fov_deg": fov_deg,
        "raw_relative_errors": [None if f is None else round(f.relative_face_error, 5) for f in fits],
    })
    return track


class _Checkpoints:
    """Raw per-frame fits and landmarks of a tracking in progress: `<first>.npz` per CHECKPOINT_FRAMES frames,
    each written atomically with the run's key (video, rate, steps, field of view, model) and the timing stats.
    `restore` returns the gap-free run from frame 0 made under the same key (else nothing)."""

    FIT_FIELDS = ("shape", "global_orient", "transl", "pose", "hand_pose", "expression", "face_errors",
                  "keypoint_errors")

    def __init__(self, folder: Path, key: dict):
        self.folder, self.key = folder, json.loads(json.dumps(key))

    def save(self, first: int, fits: list, marks: list[Landmarks], stats: dict) -> None:
        from vlogger_cli.io import atomic_path

        some = next((f for f in fits if f is not None), None)
        arrays = {"valid": np.array([f is not None for f in fits]),
                  "face_diagonal": np.array([np.nan if f is None else f.face_diagonal for f in fits], np.float64)}
        for name in self.FIT_FIELDS:
            ref = getattr(some, name) if some is not None else np.zeros(0, np.float32)
            arrays[name] = np.stack([np.zeros_like(ref) if f is None else getattr(f, name) for f in fits])
        for name in _LANDMARKS:
            arrays[f"lm_{name}"] = np.stack([getattr(m, name) for m in marks])
        meta = {"key": self.key, "image_size": list(marks[0].image_size), "stats": stats,
                "camera": some.camera.to_dict() if some is not None else None,
                "model_name": some.model_name if some is not None else None}
        with atomic_path(self.folder / f"{first:06d}.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)

    def restore(self) -> tuple[list, list, dict]:
        fits: list = []
        marks: list = []
        stats: dict = {}
        while (self.folder / f"{len(fits):06d}.npz").is_file():
            with np.load(self.folder / f"{len(fits):06d}.npz") as data:
                meta = json.loads(str(data["meta"]))
                if meta["key"] != self.key:
                    return [], [], {}
                size = tuple(meta["image_size"])
                for k in range(len(data["valid"])):
                    marks.append(Landmarks(image_size=size, **{n: data[f"lm_{n}"][k] for n in _LANDMARKS}))
                    if not data["valid"][k]:
                        fits.append(None)
                        continue
                    fits.append(BodyFit(model_name=meta["model_name"], image_size=size,
                                        camera=Camera.from_dict(meta["camera"]),
                                        face_diagonal=float(data["face_diagonal"][k]), info={"restored": True},
                                        **{n: data[n][k] for n in self.FIT_FIELDS}))
                stats = meta["stats"]
        return fits, marks, stats


def _assemble(path: Path, fps: float, size, model: BodyModel, fits: list, marks: list[Landmarks], *,
              smooth: bool) -> Track:
    valid = np.array([f is not None for f in fits])
    first = fits[int(np.argmax(valid))]
    n = len(fits)
    get = lambda name: np.stack([getattr(f if f is not None else first, name) for f in fits]).astype(np.float64)
    pose_w = smoothing.window_frames(SMOOTH_POSE_S, fps) if smooth else None
    expr_w = smoothing.window_frames(SMOOTH_EXPRESSION_S, fps) if smooth else None

    pose = smoothing.fill_and_smooth_rotations(get("pose"), valid, pose_w, SMOOTH_ORDER)
    hand_pose = smoothing.fill_and_smooth_rotations(get("hand_pose"), valid, pose_w, SMOOTH_ORDER)
    transl = smoothing.fill_gaps(get("transl"), valid)
    expression = smoothing.fill_gaps(get("expression"), valid)
    if smooth:
        transl = smoothing.savgol(transl, pose_w, SMOOTH_ORDER)
        expression = smoothing.savgol(expression, expr_w, SMOOTH_ORDER)
    if tuple(model.expression_names) == ARKIT_NAMES:
        expression = np.clip(expression, 0.0, 1.0)
    landmarks = {k: np.stack([getattr(m, k) for m in marks]).astype(np.float32) for k in _LANDMARKS}
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
    return Track(source=str(path), fps=fps, image_size=(int(size[0]), int(size[1])), model_name=model.name,
                 camera=first.camera, shape=f32(first.shape), global_orient=f32(np.tile(first.global_orient, (n, 1))),
                 transl=f32(transl), pose=f32(pose), hand_pose=f32(hand_pose), expression=f32(expression),
                 landmarks=landmarks, face_errors=np.full((n, NUM_FACE), np.nan, np.float32),
                 face_diagonal=np.full(n, np.nan, np.float32), lost=~valid,
                 info={"smoothing": {"method": "savitzky-golay", "order": SMOOTH_ORDER, "pose_window": pose_w,
                                     "expression_window": expr_w} if smooth else None})


def projected_face(track: Track, model: BodyModel | None = None, batch: int = 32) -> np.ndarray:
    """(T, 478, 2) the fitted model's face-mesh points projected into every frame (lost frames included:
    where the detector has nothing, these stand in for the landmarks, e.g. for masks)."""
    from vlogger_cli.body.anny_model import anny_body

    model = model if model is not None else anny_body()
    table = load_face_table(model)
    out_uv = np.zeros((track.num_frames, NUM_FACE, 2), np.float32)
    with torch.no_grad():
        for first in range(0, track.num_frames, batch):
            last = min(first + batch, track.num_frames) - 1
            out = model(track.params(first, last))
            uv, _ = track.camera.project(table.locate(out.vertices, model.faces))  # (B, 478, 2)
            out_uv[first:last + 1] = uv.numpy()
    return out_uv


def _errors(track: Track, model: BodyModel) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame face reprojection errors of the track's (smoothed) parameters, NaN on lost frames."""
    uv = projected_face(track, model)
    errors = np.linalg.norm(uv - track.landmarks["face"][..., :2], axis=-1).astype(np.float32)
    diag = np.full(track.num_frames, np.nan, np.float32)
    for t in range(track.num_frames):
        if track.lost[t]:
            errors[t] = np.nan
        else:
            diag[t] = track.landmarks_at(t).face_diagonal()
    return errors, diag


# --- files ----------------------------------------------------------------------------------------------

def save_track(folder: str | Path, track: Track) -> dict[str, Path]:
    """Write track.safetensors (arrays) and track.json (the rest), each atomically; returns the paths."""
    from vlogger_cli.io import atomic_save_safetensors, atomic_write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {name: np.ascontiguousarray(getattr(track, name), dtype=np.float32) for name in ("shape",) + _PARAMS}
    tensors.update({f"landmarks.{k}": np.ascontiguousarray(v, dtype=np.float32) for k, v in track.landmarks.items()})
    tensors["face_errors"] = np.ascontiguousarray(track.face_errors, np.float32)
    tensors["face_diagonal"] = np.ascontiguousarray(track.face_diagonal, np.float32)
    tensors["lost"] = track.lost.astype(np.uint8)
    paths = {"tensors": folder / TRACK_TENSORS, "json": folder / TRACK_JSON}
    atomic_save_safetensors(paths["tensors"], tensors, {"format_version": str(FORMAT_VERSION), "model": track.model_name})
    rel = track.relative_errors
    summary = {
        "format_version": FORMAT_VERSION, "source": track.source, "fps": track.fps,
        "image_size": {"height": track.image_size[0], "width": track.image_size[1]},
        "model": track.model_name, "camera": track.camera.to_dict(), "num_frames": track.num_frames,
        "lost_frames": track.lost_frames,
        "errors": {"face_mean_relative": _round(np.nanmean(rel)), "face_max_relative": _round(np.nanmax(rel)),
                   "face_mean_px": _round(np.nanmean(track.mean_face_errors))},
        "names": {"pose": list(CANONICAL_JOINTS)},
        "info": track.info,
    }
    atomic_write_json(paths["json"], summary)
    return paths


def _round(x) -> float | None:
    x = float(x)
    return None if not math.isfinite(x) else round(x, 5)


def load_track(folder: str | Path) -> Track:
    from safetensors.numpy import load_file

    folder = Path(folder)
    meta = json.loads((folder / TRACK_JSON).read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{folder / TRACK_JSON}: track format {meta.get('format_version')}, expected {FORMAT_VERSION}")
    tensors = load_file(str(folder / TRACK_TENSORS))
    size = meta["image_size"]
    return Track(source=meta["source"], fps=float(meta["fps"]), image_size=(int(size["height"]), int(size["width"])),
                 model_name=meta["model"], camera=Camera.from_dict(meta["camera"]), shape=tensors["shape"],
                 landmarks={k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("landmarks.")},
                 face_errors=tensors["face_errors"], face_diagonal=tensors["face_diagonal"],
                 lost=tensors["lost"].astype(bool), info=meta.get("info", {}),
                 **{name: tensors[name] for name in _PARAMS})


__all__ = ["Track", "fit_frame", "load_track", "projected_face", "save_track", "track_video"]
