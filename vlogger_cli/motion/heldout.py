"""Stage 1 on held-out real talking videos: the motion generated from each clip's speech against the motion
tracked from its frames (`bench/motion.py --heldout`, the corpus-gated test of the shipped weights).

Per clip: lip sync (Pearson of jawOpen with loudness, quality.pearson) of the generated and of the tracked
motion, and the head's rotation std in degrees (quality.head_rotation_std: how alive a head is). The generated
figures are the mean over seeds 0..N-1: one draw of a diffusion model is a noisy figure (seed 0 of the
synthetic-only weights gives 2.53° of head rotation std on the three held-out clips, the mean of 5 seeds 1.69°).
The clips are tracked through the track cache (`vlogger train prepare-videos` conversion, motion/prepare.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FIGURES = ("lip_sync", "lip_sync_tracked", "head_std", "head_std_tracked")


def clip_figures(video, *, weights=None, seeds: int = 1, steps: int | None = None, threads: int = 1,
                 fps: float = 25.0, sampler: str | None = None) -> dict:
    """{figure: value} of one held-out video (module docstring)."""
    from vlogger_cli.audio import compute_features
    from vlogger_cli.motion.generate import generate_motion
    from vlogger_cli.motion.prepare import prepare_video
    from vlogger_cli.motion.quality import head_rotation_std, pearson
    from vlogger_cli.motion.representation import channel_index

    tracked, _reference, waveform, _meta = prepare_video(Path(video), fps)
    feats = compute_features(waveform, fps)  # prepare_video cut the speech to the tracked frames
    n = min(len(tracked), feats.num_frames)
    runs = []
    for seed in range(seeds):
        m = generate_motion(feats, None, weights_dir=weights, seed=seed, steps=steps, threads=threads,
                            **({"sampler": sampler} if sampler else {}))
        runs.append((pearson(m.channel("jawOpen")[:n], feats.energy[:n]), head_rotation_std(m.values[:n])["total"]))
    lip, head = np.mean(runs, axis=0)
    return {"lip_sync": round(float(lip), 4),
            "lip_sync_tracked": round(float(pearson(tracked[:n, channel_index("jawOpen")], feats.energy[:n])), 4),
            "head_std": round(float(head), 3), "head_std_tracked": round(float(head_rotation_std(tracked[:n])["total"]), 3),
            "frames": int(n), "seeds": int(seeds)}


def heldout_figures(videos, **kw) -> dict:
    """{"clips": {name: figures}, "mean": {figure: mean over the clips}} (clip_figures' keywords)."""
    clips = {Path(v).name: clip_figures(v, **kw) for v in videos}
    mean = {f: round(float(np.mean([c[f] for c in clips.values()])), 4) for f in FIGURES}
    return {"clips": clips, "mean": mean}
