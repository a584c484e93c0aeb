from click.testing import CliRunner

from vlogger_cli.cli.train_video import sr, video, video_synth
from vlogger_cli.video.model import VideoDiffusionModel


def test_video_synth_then_train_video_with_overrides(tmp_path):
    runner = CliRunner()
    result = runner.invoke(video_synth, ["--out", str(tmp_path / "d"), "--clips", "2", "--frames", "6", "--size", "32"])
    assert result.exit_code == 0, result.output
    args = ["--data", str(tmp_path / "d"), "--out", str(tmp_path / "r"), "--preset", "tiny", "--phases", "control,temporal",
            "--steps", "2,1", "--set", "batch_size=2", "--set", "clip_batch_size=1", "--set", "val_items=1",
            "--set", "val_steps=1", "--device", "cpu"]
    result = runner.invoke(video, args)
    assert result.exit_code == 0, result.output
    assert "done: 3 steps" in result.output
    assert VideoDiffusionModel.from_pretrained(tmp_path / "r" / "final").config.resolution == 32
    again = runner.invoke(video, args)  # a finished run is not overwritten
    assert again.exit_code == 1 and "--resume" in again.output


def test_bad_options_are_usage_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(video, ["--data", str(tmp_path), "--out", str(tmp_path / "r"), "--set", "nope=1"])
    assert result.exit_code == 2 and "unknown video training option" in result.output
    result = runner.invoke(sr, ["--data", str(tmp_path), "--out", str(tmp_path / "r"), "--phases", "base", "--steps", "1,2"])
    assert result.exit_code == 2 and "phase_steps" in result.output
    result = runner.invoke(video, ["--data", str(tmp_path), "--out", str(tmp_path / "r2"), "--preset", "tiny",
                                   "--steps", "1,1,1"])
    assert result.exit_code == 1 and "index.json" in result.output
