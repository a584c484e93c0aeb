"""Semantic part labels (model.PARTS) for every anny vertex.

Sources, in order of precedence (later ones override earlier ones):
1. the dominant skinning bone (arms, forearms, hands, neck, torso, lower body, head, eyes);
2. anny's UV-space segmentation (`anny.face_segmentation`): hands, eyeballs/sockets, mouth cavity + tongue;
3. geometry around the mouth and face on the rest mesh (anny axes: x left, z up, -y forward):
   lips = head skin near the inner lip line (the border between the mouth cavity and the head skin, which
   is exactly where jawOpen separates the lips): within `LIP_WIDTH` at the centre, narrowing towards the
   corners like real lips; face skin = head skin in front of the
   ears and below the hairline; the rest of the head (scalp, ears, back) = head_back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vlogger_cli.body.model import PART_INDEX

LIP_WIDTH = 0.008
"""metres from the inner lip line that count as lips at the mouth's centre (an adult's vermilion is ~6-10 mm
tall there); it narrows elliptically to LIP_EDGE at the mouth corners."""

LIP_EDGE = 0.0015
"""metres of lips kept at (and just beyond) the mouth corners."""

HAIRLINE_ABOVE_EYES = 0.055
"""metres above the eyes' centre where the face skin ends (the forehead's usual hairline)."""

FACE_IN_FRONT_OF_EARS = 0.02
"""metres in front of the ears' centre where the face skin starts (the rest is cheek-to-ear side, head_back)."""


@dataclass(frozen=True)
class AnnyParts:
    labels: np.ndarray          # (V,) uint8 into PARTS
    mouth_corners: dict          # {"l": vertex, "r": vertex}: the inner lip line's extreme vertices
    lip_line: np.ndarray        # vertices on the border between mouth cavity and skin


def _bone_part(name: str) -> str:
    side = name[-1].lower() if name.endswith((".L", ".R")) else ""
    if name.startswith(("pelvis", "upperleg", "lowerleg", "foot", "toe")):
        return "lower_body"
    if name.startswith(("spine", "clavicle", "shoulder", "root")):
        return "torso"
    if name.startswith("neck"):
        return "neck"
    if name == "head":
        return "face_skin"
    if name.startswith("eye"):
        return "eyes"
    if name.startswith("upperarm"):
        return f"upper_arm_{side}"
    if name.startswith("lowerarm"):
        return f"forearm_{side}"
    if name.startswith(("wrist", "finger", "metacarpal")):
        return f"hand_{side}"
    raise ValueError(f"unmapped anny bone {name!r}")


def vertex_parts(core, rest_vertices: torch.Tensor) -> AnnyParts:
    """Labels for `core` (the anny model) given its rest-pose vertices (V, 3) in anny axes."""
    import anny
    from anny.face_segmentation import get_face_segmentation_mask

    faces = core.faces.cpu().numpy()
    verts = rest_vertices.detach().cpu().numpy().astype(np.float64)
    n = verts.shape[0]

    weights, indices = core.vertex_bone_weights, core.vertex_bone_indices
    dominant = indices.gather(1, weights.argmax(1, keepdim=True))[:, 0].cpu().numpy()
    bone_part = np.array([PART_INDEX[_bone_part(b)] for b in core.bone_labels], dtype=np.uint8)
    labels = bone_part[dominant]

    def seg_vertices(*names) -> np.ndarray:
        mask = get_face_segmentation_mask(core, list(names)).cpu().numpy()
        out = np.zeros(n, dtype=bool)
        out[faces[mask].ravel()] = True
        return out

    labels[seg_vertices("hand.L")] = PART_INDEX["hand_l"]
    labels[seg_vertices("hand.R")] = PART_INDEX["hand_r"]
    skin_faces = seg_vertices("head")  # vertices of the head's skin triangles
    head_skin = skin_faces & np.isin(labels, [PART_INDEX["face_skin"], PART_INDEX["neck"]])
    eyes = seg_vertices("eye_back.L", "eye_front.L", "eye_back.R", "eye_front.R", "eye_cavity.L", "eye_cavity.R")
    mouth = seg_vertices("mouth_cavity", "tongue")

    # Head skin: face in front of the ears and below the hairline, head_back elsewhere (scalp, ears, nape).
    dom_head = labels == PART_INDEX["face_skin"]
    coco = anny.KeypointsRegressor.coco(core)
    kp = coco({"vertices": rest_vertices[None].to(coco.regression_weights.dtype)})[0].cpu().numpy()
    ears = kp[[coco.labels.index("left_ear"), coco.labels.index("right_ear")]].mean(0)
    eye_centre = kp[[coco.labels.index("left_eye"), coco.labels.index("right_eye")]].mean(0)
    front = verts[:, 1] < ears[1] - FACE_IN_FRONT_OF_EARS
    below = verts[:, 2] < eye_centre[2] + HAIRLINE_ABOVE_EYES
    labels[dom_head & ~(front & below)] = PART_INDEX["head_back"]

    # Lips: skin around the inner lip line (mouth-cavity vertices that also touch skin faces).
    lip_line = np.nonzero(mouth & skin_faces & ~eyes)[0]
    if lip_line.size:
        dist = np.min(np.linalg.norm(verts[:, None, :] - verts[None, lip_line, :], axis=-1), axis=1)
        centre, half = verts[lip_line, 0].mean(), np.ptp(verts[lip_line, 0]) / 2 + LIP_EDGE
        across = np.clip(np.abs(verts[:, 0] - centre) / half, 0.0, 1.0)
        width = LIP_EDGE + (LIP_WIDTH - LIP_EDGE) * np.sqrt(1.0 - across**2)
        lips = (dist < width) & (head_skin | np.isin(np.arange(n), lip_line))
        labels[lips] = PART_INDEX["lips"]
        corners = {"l": int(lip_line[np.argmax(verts[lip_line, 0])]), "r": int(lip_line[np.argmin(verts[lip_line, 0])])}
    else:  # pragma: no cover - anny always has a mouth cavity
        corners = {"l": 0, "r": 0}

    labels[eyes] = PART_INDEX["eyes"]
    labels[mouth & ~skin_faces] = PART_INDEX["mouth_interior"]  # the lip line itself stays lips
    return AnnyParts(labels=labels.astype(np.uint8), mouth_corners=corners, lip_line=lip_line)
