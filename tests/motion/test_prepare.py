"""`vlogger train prepare-videos`: tracked videos become stage-1 training clips (the motion dataset format)."""

import os

import numpy as np
from click.testing import CliRunner

from vlogger_cli.cli import main
from vlogger_cli.motion.dataset import load_clips, read_index
from vlogger_cli.motion.representation import MOTION_DIM, REFERENCE_DIM

os.environ.setdefault("GLOG_minloglevel", "2")
FPS = 25.0


def _clip(folder, name, *, sound=True, face=True, frames=16):
    import soundfile as sf
    from PIL import Image
    from skimage.data import astronaut

    from vlogger_cli.export import write_mp4

    image = astronaut()[:320, 60:380] if face else np.full((320, 320, 3), 90, np.uint8)
    shots = [np.asarray(Image.fromarray(image).rotate(3 * np.sin(k / 2), resample=Image.BICUBIC)) for k in range(frames)]
    audio = None
    if sound:
        t = np.arange(int(frames / FPS * 16000)) / 16000
        audio = folder / f"{name}.wav"
        sf.write(audio, (0.3 * np.sin(2 * np.pi * 180 * t) * (t % 0.25 < 0.12)).astype(np.float32), 16000)
    path = folder / f"{name}.mp4"
    write_mp4(shots, FPS, path, audio_path=audio, crf=12)
    return path


def test_prepare_videos_writes_a_motion_dataset(tmp_path):
    talk = _clip(tmp_path, "talk")
    silent = _clip(tmp_path, "silent", sound=False)
    nobody = _clip(tmp_path, "nobody", face=False)
    out = tmp_path / "data"
    r = CliRunner().invoke(main, ["train", "prepare-videos", str(talk), str(silent), str(nobody), "--out", str(out)])
    assert r.exit_code == 1, r.output  # two videos could not be used; the third was added
    assert "added 1" in r.output and "has no sound" in r.output and "no person/face found" in r.output
    index = read_index(out)
    assert index["fps"] == FPS and len(index["clips"]) == 1
    entry = index["clips"][0]
    assert entry["id"].startswith("talk-") and entry["frames"] == 16 and entry["source"] == str(talk)
    clip = load_clips(out)[0]
    assert clip.motion.shape == (16, MOTION_DIM) and clip.reference.shape == (REFERENCE_DIM,)
    assert clip.features.num_frames == 16 and np.isfinite(clip.motion).all()
    # again, plus nothing new: the clip is not made twice
    r = CliRunner().invoke(main, ["train", "prepare-videos", str(talk), "--out", str(out)])
    assert r.exit_code == 0 and "already there 1" in r.output
    r = CliRunner().invoke(main, ["train", "prepare-videos", str(talk), "--out", str(out), "--fps", "30"])
    assert r.exit_code == 1 and "25.0 fps" in r.output


def test_max_seconds_keeps_the_start_of_each_video(tmp_path):
    """--max-seconds 0.4: 10 of the 20 frames, tracked as such (a capped track-cache entry), audio cut to match."""
    talk = _clip(tmp_path, "long", frames=20)
    out = tmp_path / "data"
    r = CliRunner().invoke(main, ["train", "prepare-videos", str(talk), "--out", str(out), "--max-seconds", "0.4"])
    assert r.exit_code == 0, r.output
    assert "10 frames" in r.output and read_index(out)["clips"][0]["frames"] == 10
    clip = load_clips(out)[0]
    assert clip.motion.shape == (10, MOTION_DIM) and clip.features.num_frames == 10


def test_heldout_figures_compare_generated_with_tracked_motion(tmp_path):
    """motion/heldout.py on a tracked clip: the tracked figures come from the frames (a head turning ±3°), the
    generated ones are the mean over the seeds, and the mean row averages the clips."""
    from vlogger_cli.motion.heldout import FIGURES, clip_figures, heldout_figures

    talk = _clip(tmp_path, "turn", frames=20)
    one, two = (clip_figures(talk, seeds=1), clip_figures(talk, seeds=2))
    assert one["frames"] == 20 and two["seeds"] == 2
    assert one["lip_sync_tracked"] == two["lip_sync_tracked"] and one["head_std_tracked"] == two["head_std_tracked"]
    assert 0.5 < one["head_std_tracked"] < 5  # the clip's head turns by up to 3° (tracking noise on top)
    assert one["head_std"] != two["head_std"]  # seed 1 was added to the mean
    again = _clip(tmp_path, "again", frames=20)  # another file (the same frames)
    figures = heldout_figures([talk, again], seeds=1)
    assert list(figures["clips"]) == ["turn.mp4", "again.mp4"] and figures["clips"]["turn.mp4"] == one
    assert all(abs(figures["mean"][f] - (one[f] + figures["clips"]["again.mp4"][f]) / 2) < 1e-3 for f in FIGURES)
