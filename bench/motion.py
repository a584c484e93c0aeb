"""Benchmark of stage 1 (motion generation): real-time factor and lip-sync figures.

    .venv/bin/python bench/motion.py [--weights DIR] [--threads N] [--sampler NAME] [--steps N] [--repeat 3]

Real-time factor = seconds of audio / seconds of compute for `generate_motion` with the default
sampler and steps (or --sampler / --steps), model load excluded (a warm-up call loads it). Target: >= 100x on 2 CPU cores.
Then the lip-sync report (quality.py) on held-out espeak voices and, where ../shared/testdata exists,
the real recordings: Pearson(jawOpen, loudness) and jawOpen in silences > 0.3 s.

--heldout VIDEO...: real talking videos never trained on. For each, the motion generated from its speech
against the motion tracked from its frames (the track cache; `vlogger train prepare-videos` conversion):
lip sync of both, and the head's rotation std (quality.head_rotation_std) — how alive generated heads are
next to real ones speaking the same words.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def speech(seconds: float, seed: int = 0) -> np.ndarray:
    """Held-out-voice synthetic speech (with pauses) cut to `seconds`."""
    from vlogger_cli.motion.corpus import HELDOUT_VOICES, make_clip

    voices = tuple((v, None) for v in HELDOUT_VOICES)
    parts, total, i = [], 0, 0
    while total < seconds * 16000:
        w = make_clip(np.random.default_rng([seed, i]), voices=voices)["waveform"]
        parts.append(w)
        total += len(w)
        i += 1
    return np.concatenate(parts)[: int(seconds * 16000)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="motion weights folder (default weights/motion)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads during generation (generate_motion's default: 1)")
    ap.add_argument("--sampler", default=None,
                    help="motion.diffusion sampler (ddpm, ddim, dpm, dpm-sde; default: DEFAULT_SAMPLER)")
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: the sampler's default)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per length; the best is reported")
    ap.add_argument("--heldout", nargs="*", default=[], help="held-out real talking videos (module docstring)")
    ap.add_argument("--seeds", type=int, default=1,
                    help="--heldout: generate each clip's motion with seeds 0..N-1 and report the means")
    ap.add_argument("--skip-speed", action="store_true", help="only the quality figures")
    args = ap.parse_args()

    import torch

    from vlogger_cli.audio import compute_features, load_audio
    from vlogger_cli.motion.diffusion import DEFAULT_SAMPLER, SAMPLERS
    from vlogger_cli.motion.generate import generate_motion
    from vlogger_cli.motion.quality import lip_sync_report

    args.sampler = args.sampler or DEFAULT_SAMPLER
    if args.sampler not in SAMPLERS:
        ap.error(f"unknown sampler {args.sampler!r}; choose one of {', '.join(SAMPLERS)}")

    print(f"torch threads: {args.threads}, torch {torch.__version__}, sampler {args.sampler}")
    generate_motion(compute_features(speech(2.0), 25.0), None, weights_dir=args.weights, steps=args.steps,
                    threads=args.threads, sampler=args.sampler)  # load
    for seconds in () if args.skip_speed else (10.0, 60.0):
        feats = compute_features(speech(seconds, seed=1), 25.0)
        best = float("inf")
        for r in range(args.repeat):
            t0 = time.perf_counter()
            m = generate_motion(feats, None, weights_dir=args.weights, seed=r, steps=args.steps, threads=args.threads,
                                sampler=args.sampler)
            best = min(best, time.perf_counter() - t0)
        print(f"{seconds:4.0f} s audio: {best:.3f} s compute, real-time factor {seconds / best:.0f}x "
              f"({m.meta['sampler']}, {m.meta['steps']} steps, window {m.meta['window']}, overlap {m.meta['overlap']})")

    print("lip sync (Pearson jawOpen~loudness >= 0.5; jawOpen in silences > 0.3 s < 0.1):")
    cases = [("held-out espeak voices, 30 s", compute_features(speech(30.0, seed=2), 25.0))]
    testdata = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "audio"
    for wav in sorted(testdata.glob("*.wav")) if testdata.is_dir() else []:
        cases.append((wav.name, compute_features(load_audio(wav), 25.0)))
    for label, feats in cases:
        m = generate_motion(feats, None, weights_dir=args.weights, seed=0, steps=args.steps, threads=args.threads,
                            sampler=args.sampler)
        print(f"  {label}: {lip_sync_report(m.channel('jawOpen'), feats.energy, feats.fps)}")
    if args.heldout:
        heldout(args)


def heldout(args) -> None:
    """Generated vs tracked motion on held-out real videos (module docstring; motion/heldout.py)."""
    from vlogger_cli.motion.heldout import heldout_figures

    figures = heldout_figures(args.heldout, weights=args.weights, seeds=args.seeds, steps=args.steps,
                              threads=args.threads, sampler=args.sampler)
    print(f"held-out real videos: generated from the speech (mean of {args.seeds} seeds; {args.sampler}, "
          f"{args.steps or 'default'} steps) vs tracked from the frames")
    print("  video | jaw~loudness generated / tracked | head rotation std (deg) generated / tracked")
    for name, row in [*figures["clips"].items(), ("mean", figures["mean"])]:
        print(f"  {name} | {row['lip_sync']:.3f} / {row['lip_sync_tracked']:.3f} | "
              f"{row['head_std']:.2f} / {row['head_std_tracked']:.2f}")


if __name__ == "__main__":
    main()
