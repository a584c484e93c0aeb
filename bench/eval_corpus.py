"""Reference figures for `vlogger eval`: what real footage scores, and how specific the lip-sync test is.

    python bench/eval_corpus.py ../shared/testdata/videos/*.mp4 ../shared/corpus/videos/*.mp4 --work .cache/eval-corpus

Per video it reuses `WORK/<name>.json` when there is one (`vlogger eval VIDEO --json WORK/<name>.json` writes
the same), else measures the video. Then:

- the README's table: per clip the headline metrics, and their median over all clips;
- lip-sync specificity across clips: each clip's mouth opening scored against its own speech and against every
  other clip's speech (looped or cut to its length; same lip-sync measure, same lags); the rate at which its own
  speech scores higher (chance: 50 %), and the rate at which it beats the shipped shifted-speech controls.

Outputs made from the shared media stay in WORK (outside the repository); only the numbers go in the README.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

COLUMNS = (("identity", "to_first_mean", "{:.2f}"), ("identity", "to_first_worst", "{:.2f}"),
           ("sharpness", "cpbd", "{:.2f}"), ("lip_sync", "score", "{:.2f}"), ("lip_sync", "offset_ms", "{:+.0f}"),
           ("lip_sync", "margin", "{:+.2f}"), ("lip_sync", "specificity", "{:.2f}"), ("motion", "jitter", "{:.2f}"),
           ("motion", "head_yaw_std", "{:.1f}"), ("motion", "head_pitch_std", "{:.1f}"),
           ("motion", "head_roll_std", "{:.1f}"), ("motion", "blinks_per_min", "{:.0f}"),
           ("motion", "face_found", "{:.2f}"), ("file", "audio_minus_video_s", "{:+.3f}"))


def measure(videos: list[Path], work: Path) -> dict[str, dict]:
    from vlogger_cli.eval.measure import evaluate_video
    from vlogger_cli.eval.report import write_json

    results = {}
    for video in videos:
        path = work / f"{video.stem}.json"
        if not path.is_file():
            write_json(path, [evaluate_video(video)])
        (results[video.stem],) = json.loads(path.read_text())
        results[video.stem]["path"] = str(video)
    return results


def table(results: dict[str, dict], per_clip: bool = False) -> str:
    """Markdown: per metric the median and the range over the clips (or one row per clip)."""
    if per_clip:
        rows = ["| clip | " + " | ".join(key for _, key, _ in COLUMNS) + " |", "|" + " --- |" * (len(COLUMNS) + 1)]
        for name, result in results.items():
            cells = [_cell(result[group].get(key), form) for group, key, form in COLUMNS]
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(rows)
    rows = [f"| metric | median of {len(results)} clips | range |", "| --- | --- | --- |"]
    for group, key, form in COLUMNS:
        values = [r[group][key] for r in results.values() if r[group].get(key) is not None]
        if values:
            rows.append(f"| {group}.{key} | {form.format(np.median(values))} | "
                        f"{form.format(min(values))} – {form.format(max(values))} |")
    return "\n".join(rows)


def _cell(value, form: str) -> str:
    return "n/a" if value is None else form.format(value)


def cross_speech(results: dict[str, dict]) -> tuple[float, int, list[str]]:
    """(rate at which a clip's own speech outscores another clip's, pairs, per-clip lines)."""
    from vlogger_cli.audio.features import frame_count
    from vlogger_cli.audio.load import load_audio
    from vlogger_cli.eval import lip_sync
    from vlogger_cli.media import extract_audio

    waveforms = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, result in results.items():
            waveforms[name] = load_audio(extract_audio(result["path"], Path(tmp) / f"{name}.wav"), max_seconds=3600)
    bands_at = {}  # (clip, fps) -> its speech bands at that frame rate

    def bands_of(name: str, fps: float) -> np.ndarray:
        if (name, fps) not in bands_at:
            waveform = waveforms[name]
            bands_at[name, fps] = lip_sync.speech_bands(waveform, fps, frame_count(len(waveform), fps))[0]
        return bands_at[name, fps]

    wins = pairs = 0
    lines = []
    for name, result in results.items():
        fps = result["file"]["fps"]
        mouth = np.array([np.nan if v is None else v for v in result["per_frame"]["mouth_opening"]], float)
        max_lag = int(round(lip_sync.MAX_LAG_S * fps))
        own = result["lip_sync"]["score"]
        beaten = 0
        for other in waveforms:
            if other == name:
                continue
            bands = bands_of(other, fps)
            score = lip_sync.best_lag(lip_sync.lag_scores(mouth, lip_sync.fit_length(bands, len(mouth)), max_lag))[1]
            beaten += own > score
            pairs += 1
        wins += beaten
        lines.append(f"{name}: own speech {own:.2f} beats {beaten}/{len(waveforms) - 1} other clips' speech")
    return wins / pairs, pairs, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("--work", type=Path, required=True, help="folder for the per-video JSON (outside the repo)")
    parser.add_argument("--per-clip", action="store_true", help="one table row per clip")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = measure(args.videos, args.work)
    print(table(results, args.per_clip))
    rate, pairs, lines = cross_speech(results)
    print("\n".join(lines))
    shifted = np.mean([r["lip_sync"]["specificity"] == 1.0 for r in results.values()])
    print(f"own speech beats another clip's speech in {rate:.1%} of {pairs} pairs (chance 50 %); "
          f"beats all shipped shifted-speech controls in {shifted:.0%} of {len(results)} clips")


if __name__ == "__main__":
    main()
