"""What `vlogger eval` shows: the metric table (name, unit, meaning), terminal tables, JSON, and the plot.

`METRICS` documents every reported metric once; the terminal table and the README's reference table
read their units from it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from vlogger_cli.io import atomic_path, atomic_write_text

GROUPS = ("file", "identity", "sharpness", "lip_sync", "motion", "reference")

METRICS = {
    "identity": {
        "to_portrait_mean": ("dist", "dlib 128-d face descriptor distance to the portrait, mean over frames (< 0.6: same person)"),
        "to_portrait_worst": ("dist", "the largest distance of any frame to the portrait"),
        "to_portrait_worst_frame": ("frame", "the frame with that largest distance"),
        "to_first_mean": ("dist", "distance to the first frame with a face, mean (identity drift)"),
        "to_first_worst": ("dist", "the largest distance to the first frame"),
        "to_first_worst_frame": ("frame", "the frame with that largest distance"),
        "same_person": ("fraction", "frames closer than 0.6 to the portrait"),
    },
    "sharpness": {
        "cpbd": ("0..1", "CPBD of the face crop (256²), mean over sampled frames; higher is sharper"),
        "laplacian_var": ("grey²", "variance of the Laplacian of the same crops (fallback; higher is sharper)"),
        "frames_measured": ("frames", "frames measured (at most 30, evenly spread)"),
    },
    "lip_sync": {
        "score": ("r", "mouth opening predicted from the speech, held-out correlation at the best lag"),
        "offset_ms": ("ms", "best lag: > 0 the sound comes after the lips"),
        "lag_frames": ("frames", "the best lag in frames"),
        "score_at_zero": ("r", "the score with sound and picture as they are (lag 0)"),
        "control_best": ("r", "best score of any control (unrelated speech) at any lag"),
        "specificity": ("fraction", "controls that score below the matched speech"),
        "margin": ("r", "score minus control_best (> 0: the speech beats every control)"),
        "controls": ("clips", "number of controls"),
    },
    "motion": {
        "face_found": ("fraction", "frames in which a face was found"),
        "jitter": ("%/frame²", "landmark acceleration in % of the face size, mean over frames"),
        "jitter_p95": ("%/frame²", "the same, 95th percentile"),
        "head_yaw_std": ("deg", "standard deviation of head yaw (turning left/right)"),
        "head_pitch_std": ("deg", "standard deviation of head pitch (nodding)"),
        "head_roll_std": ("deg", "standard deviation of head roll (tilting)"),
        "blinks": ("blinks", "number of blinks"),
        "blinks_per_min": ("1/min", "blinks per minute of video"),
    },
    "reference": {
        "face_psnr": ("dB", "PSNR of the face crop against the reference video's frame"),
        "face_ssim": ("-1..1", "SSIM of the face crop against the reference"),
        "lme": ("%", "landmark error: mean FaceMesh point distance in % of the face size"),
        "lme_px": ("px", "the same in the reference's pixels"),
        "frames_compared": ("frames", "frames with a face in both videos"),
    },
    "file": {
        "video_duration_s": ("s", "duration of the video stream"),
        "audio_duration_s": ("s", "duration of the audio stream"),
        "audio_minus_video_s": ("s", "audio minus video duration"),
        "frames": ("frames", "decoded frames"),
        "fps": ("1/s", "frame rate"),
        "variable_rate": ("", "frame durations differ by more than 10 %"),
        "width": ("px", "frame width"),
        "height": ("px", "frame height"),
        "video_codec": ("", "video codec"),
        "pix_fmt": ("", "pixel format"),
        "audio_codec": ("", "audio codec"),
        "audio_sample_rate": ("Hz", "audio sample rate"),
    },
}

SUMMARY_COLUMNS = (
    ("identity", "to_portrait_mean", "id→portrait"),
    ("identity", "to_first_mean", "id→first"),
    ("sharpness", "cpbd", "CPBD"),
    ("lip_sync", "score", "sync r"),
    ("lip_sync", "offset_ms", "offset ms"),
    ("lip_sync", "specificity", "specif."),
    ("motion", "jitter", "jitter"),
    ("motion", "head_yaw_std", "yaw°"),
    ("motion", "blinks_per_min", "blink/min"),
    ("motion", "face_found", "face"),
    ("reference", "face_psnr", "PSNR"),
)


def fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def video_table(result: dict) -> str:
    """The metrics of one video: group, metric, value, unit (and why a metric is n/a)."""
    lines = [f"{result['video']}"]
    for group_name in GROUPS:
        group = result.get(group_name)
        if group is None:
            continue
        reasons = group.get("reasons", {})
        for key, (unit, _) in METRICS[group_name].items():
            if key not in group:
                continue
            value = fmt(group[key])
            note = f"  ({reasons[key]})" if group[key] is None and key in reasons else ""
            lines.append(f"  {group_name:<10} {key:<24} {value:>10} {unit}{note}")
    return "\n".join(lines)


def summary_table(results: list[dict]) -> str:
    """One row per video, the headline metric of each group."""
    names = [Path(r["video"]).name for r in results]
    width = max([len("video")] + [len(n) for n in names])
    header = f"{'video':<{width}}" + "".join(f" {title:>11}" for _, _, title in SUMMARY_COLUMNS)
    rows = [header]
    for name, result in zip(names, results):
        cells = []
        for group, key, _ in SUMMARY_COLUMNS:
            cells.append(fmt((result.get(group) or {}).get(key)) if "error" not in result else "-")
        row = f"{name:<{width}}" + "".join(f" {c:>11}" for c in cells)
        if "error" in result:
            row += f"  error: {result['error']}"
        rows.append(row)
    return "\n".join(rows)


def to_json(obj):
    """JSON-safe copy: numpy numbers and arrays to Python, NaN and inf to None."""
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_json(v) for v in obj.tolist()]
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def dumps(obj) -> str:
    return json.dumps(to_json(obj), indent=1) + "\n"


def write_json(path: str | Path, obj) -> Path:
    atomic_write_text(path, dumps(obj))
    return Path(path)


def write_plot(result: dict, path: str | Path) -> Path:
    """Per-frame curves of one video: mouth opening against speech loudness, identity distance, jitter,
    head rotation, eye aspect ratio with the blinks, and the reference PSNR when there is one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = result["per_frame"]
    rows = 6 if "face_psnr" in series else 5
    fig, axes = plt.subplots(rows, 1, figsize=(10, 1.9 * rows + 0.6), sharex=True)
    t = np.arange(len(series["jitter"])) / result["file"]["fps"]
    _plot_lips(axes[0], t, result["lip_sync"], series)
    _plot_identity(axes[1], t, result["identity"], series)

    ax = axes[2]
    ax.plot(t, series["jitter"], color="tab:orange", lw=1.0)
    ax.set_ylabel("% face / frame²")
    ax.set_title(f"landmark jitter: mean {fmt(result['motion']['jitter'])} % of the face size per frame²", fontsize=10)

    ax = axes[3]
    for key, colour in (("head_yaw", "tab:green"), ("head_pitch", "tab:olive"), ("head_roll", "tab:cyan")):
        ax.plot(t, series[key], color=colour, lw=1.0, label=key[5:])
    ax.set_ylabel("degrees")
    ax.legend(loc="upper left", fontsize=8, ncol=3)
    motion = result["motion"]
    ax.set_title(f"head rotation from the first frame: std yaw {fmt(motion['head_yaw_std'])}°, "
                 f"pitch {fmt(motion['head_pitch_std'])}°, roll {fmt(motion['head_roll_std'])}°", fontsize=10)

    ax = axes[4]
    ax.plot(t, series["eye_aspect_ratio"], color="black", lw=0.9)
    blinks = motion.get("blink_frames") or []
    ax.plot(t[blinks], np.asarray(series["eye_aspect_ratio"])[blinks], "v", color="tab:red", label="blink")
    ax.set_ylabel("eye aspect ratio")
    ax.set_title(f"eyes: {motion['blinks']} blinks ({fmt(motion['blinks_per_min'])} per minute)", fontsize=10)

    if rows == 6:
        ax = axes[5]
        ax.plot(t[: len(series["face_psnr"])], series["face_psnr"], color="tab:brown", lw=1.0)
        ax.set_ylabel("face PSNR (dB)", color="tab:brown")
        lme = ax.twinx()
        lme.plot(t[: len(series["lme"])], series["lme"], color="tab:pink", lw=0.9)
        lme.set_ylabel("LME (% face)", color="tab:pink")
        ax.set_title(f"against the reference: face PSNR {fmt(result['reference']['face_psnr'])} dB, "
                     f"LME {fmt(result['reference']['lme'])} % of the face size", fontsize=10)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(Path(result["video"]).name, fontsize=11)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return Path(path)


def _plot_lips(ax, t, lip: dict, series: dict) -> None:
    ax.plot(t, series["mouth_opening"], color="tab:red", lw=1.2)
    ax.set_ylabel("mouth / eye width", color="tab:red")
    if series.get("loudness") is None:
        ax.set_title(f"mouth opening; lip sync n/a ({lip['reasons'].get('score', '')})", fontsize=10)
        return
    loud = ax.twinx()
    loud.plot(t, series["loudness"], color="tab:blue", lw=0.9, alpha=0.6)
    loud.set_ylabel("speech loudness (dB)", color="tab:blue")
    offset = lip["offset_ms"]
    ax.set_title(f"mouth opening (red) vs speech (blue): score {fmt(lip['score'])} at {offset:+.0f} ms; "
                 f"best control {fmt(lip['control_best'])}, specificity {fmt(lip['specificity'])}", fontsize=10)


def _plot_identity(ax, t, ident: dict, series: dict) -> None:
    top = 0.9  # room above the 0.6 line for the legend
    for key, colour, label in (("identity_to_portrait", "tab:purple", "to portrait"),
                               ("identity_to_first", "tab:grey", "to first frame")):
        if key in series:
            # frames without a descriptor (no face, or not sampled: --identity-frames) are skipped, not gaps
            values = np.asarray(series[key], dtype=float)
            measured = np.isfinite(values)
            if measured.any():
                ax.plot(t[measured], values[measured], color=colour, lw=1.2, label=label,
                        marker="." if measured.mean() < 0.5 else None, ms=3)
                top = max(top, float(values[measured].max()) + 0.05)
    ax.axhline(0.6, color="black", ls=":", lw=0.8, label="same person below")
    ax.set_ylim(0, top)
    ax.set_ylabel("face distance")
    ax.legend(loc="upper right", fontsize=8, ncol=3)
    ax.set_title(f"identity (dlib descriptor distance): mean to portrait {fmt(ident['to_portrait_mean'])}, "
                 f"to first frame {fmt(ident['to_first_mean'])}", fontsize=10)
