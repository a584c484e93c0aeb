"""Stage "controls": motion -> posed body per frame -> the 2D controls of stage 2 (C^d, C^m, C^w, flow).

Pose of frame t (VLOGGER §3.1): the reference fit's rotation of each driven joint times the
generated residual, R_t = R_ref · ΔR_t (residuals act in the joint's own frame, as the motion stage
trains them). Expression is the generated one (the motion model is told the reference expression
and returns the whole expression), with the lids closed by max(eyeBlink*, blink). Gaze already
reaches the eyes through the ARKit eyeLook* channels, so the eye joints keep the reference pose;
hands keep the reference hand pose (the motion's compact hand code is not mapped onto fingers yet).

Controls are rendered at the output resolution in the framed square (pipeline/fit.py), window by
window, each window saved as a chunk: a resumed run renders only the missing windows.
"""

from __future__ import annotations

import numpy as np

from vlogger_cli.pipeline.base import Stage, StageContext
from vlogger_cli.threads import small_op_threads

WINDOW = 50  # frames per controls chunk (2 s at 25 fps): bounded memory, fine-grained resume


def render_camera(fit, framing, size: int):
    """The fit's camera restricted to the framed square, at size x size."""
    return fit.camera.cropped(framing.left, framing.top, round(framing.side), round(framing.side)).scaled(size, size)


def frame_params(fit, motion, first: int, last: int, *, transl=None, hand_pose=None, pose=None):
    """BodyParams (batch = frames first..last) of the fitted body driven by the motion.

    transl (T, 3) / hand_pose (T, 30, 3) / pose (T, 13, 3): per-frame values for these frames (a tracked
    video's; `vlogger edit`) instead of the reference fit's; `pose` only for the joints the motion does not
    drive (the eyes), the others are always reference x residual."""
    import torch

    from vlogger_cli.body.model import ARKIT_NAMES, CANONICAL_JOINTS, BodyParams
    from vlogger_cli.motion.representation import POSE, POSE_JOINTS
    from vlogger_cli.rotations import rotation_6d_to_matrix
    from vlogger_cli.motion.axes import to_canonical

    values = motion.values[first:last + 1]
    n = len(values)
    ref = fit.params()  # batch 1, axis-angle
    import roma

    ref_rot = roma.rotvec_to_rotmat(ref.pose[0])  # (13, 3, 3)
    rot = ref_rot.expand(n, -1, -1, -1).clone() if pose is None else roma.rotvec_to_rotmat(
        torch.as_tensor(np.ascontiguousarray(pose, dtype=np.float32)))
    d6 = torch.as_tensor(values[:, POSE]).reshape(n, len(POSE_JOINTS), 6)
    residual = torch.as_tensor(to_canonical(rotation_6d_to_matrix(d6).numpy()))
    for k, joint in enumerate(POSE_JOINTS):
        j = CANONICAL_JOINTS.index(joint)
        rot[:, j] = ref_rot[j] @ residual[:, k]
    expression = torch.as_tensor(motion.expression[first:last + 1].copy())
    blink = torch.as_tensor(motion.blink[first:last + 1].copy())
    for name in ("eyeBlinkLeft", "eyeBlinkRight"):
        i = ARKIT_NAMES.index(name)
        expression[:, i] = torch.maximum(expression[:, i], blink)
    expression = expression.clamp(0.0, 1.0)
    expand = lambda t: None if t is None else t.expand(n, *t.shape[1:])  # noqa: E731
    per_frame = lambda a: torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return BodyParams(shape=expand(ref.shape), global_orient=expand(ref.global_orient),
                      transl=expand(ref.transl) if transl is None else per_frame(transl),
                      pose=rot, hand_pose=expand(ref.hand_pose) if hand_pose is None else per_frame(hand_pose),
                      expression=expression)


def run_controls(ctx: StageContext) -> None:
    with small_op_threads():
        _render_controls(ctx)


def _render_controls(ctx: StageContext) -> None:
    import torch

    from vlogger_cli.body.anny_model import anny_body
    from vlogger_cli.controls.texture import reference_texture
    from vlogger_cli.controls.render import ControlFrames, ControlRenderer
    from vlogger_cli.controls.sheet import save_contact_sheet
    from vlogger_cli.controls.store import ControlStore

    fit, framing, motion = ctx.results.fit, ctx.results.framing, ctx.results.motion
    model = anny_body()
    camera = render_camera(fit, framing, ctx.spec.resolution)
    with torch.no_grad():
        ref_vertices = model(fit.params()).vertices[0].numpy()
    texture = reference_texture(ctx.results.reference, camera, ref_vertices, model.faces)
    store = ControlStore(ctx.job.path("controls"))
    total = motion.num_frames
    with ControlRenderer.for_model(model, camera, texture) as renderer:
        for first in range(0, total, WINDOW):
            last = min(first + WINDOW, total) - 1
            if store.has(first, last):
                continue  # finished by an earlier, interrupted run
            with torch.no_grad():
                vertices = model(frame_params(fit, motion, first, last)).vertices
            store.write(first, renderer.render(vertices))
            ctx.log.info("controls: frames %d-%d", first, last)
    # Only the three frames the sheet shows are read back: memory must not grow with the video.
    picks = sorted({0, total // 2, total - 1})
    sample = ControlFrames.concatenate([store.load(i, i + 1) for i in picks])
    save_contact_sheet(ctx.job.path("controls.png"), sample, portrait=ctx.results.reference, frame_numbers=picks,
                       indices=range(len(picks)))
    ctx.results.controls = store


def load_controls_stage(ctx: StageContext) -> None:
    from vlogger_cli.controls.store import ControlStore

    ctx.results.controls = ControlStore(ctx.job.path("controls"))


CONTROLS = Stage("controls", run_controls, load_controls_stage, ("controls.png",), resumes=("controls",))
