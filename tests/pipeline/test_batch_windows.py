"""The real frames stage of several jobs rendered together (`vlogger render --batch-windows`), with
`--precision` and `--compile`, through the CLI and the runner, on a tiny random-weight model. The stages before
frames are replaced by one that hands the frames stage random controls (the inputs' stages are tested
elsewhere; this is about the frames stage, the runner and the flags), so no export: frames are read from the
chunks."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vlogger_cli.cli import main
from vlogger_cli.controls.render import ControlFrames
from vlogger_cli.frame_store import FrameStore
from vlogger_cli.io import atomic_write_text
from vlogger_cli.pipeline import Stage

ROOT = Path(__file__).resolve().parents[2]
FRAMES = {"a": 10, "b": 7, "c": 8}


def handed_over(ctx):
    """What the controls stage would hand the frames stage, made up per job (deterministic)."""
    n, seed = FRAMES[ctx.spec.id], sorted(FRAMES).index(ctx.spec.id)
    rng = np.random.default_rng(seed)
    parts = rng.integers(0, 15, (n, 128, 128)).astype(np.uint8)
    ctx.results.controls = ControlFrames(position=rng.normal(size=(n, 128, 128, 3)).astype(np.float32),
                                         mask=parts > 0, parts=parts,
                                         warped=rng.integers(0, 256, (n, 128, 128, 3)).astype(np.uint8),
                                         warped_mask=parts > 3, flow=np.zeros((n, 128, 128, 2), np.float32))
    ctx.results.reference = rng.integers(0, 256, (128, 128, 3)).astype(np.uint8)
    ctx.results.motion = SimpleNamespace(num_frames=n)


def write_inputs(ctx):
    atomic_write_text(ctx.job.path("inputs.txt"), "made up")


INPUTS = Stage("inputs", write_inputs, handed_over, ("inputs.txt",))


@pytest.fixture
def workspace(tmp_path_factory, monkeypatch):
    from vlogger_cli import pipeline
    from vlogger_cli.pipeline.inference import clear_cache
    from vlogger_cli.video.config import preset
    from vlogger_cli.video.model import VideoDiffusionModel

    folder = tmp_path_factory.mktemp("batch")
    torch.manual_seed(0)
    model = VideoDiffusionModel.from_config(preset("tiny", resolution=128, patch_size=4, block_out_channels=(48, 48),
                                                   conditioning_embedding_out_channels=(8, 8, 8), window=4,
                                                   flow_reference=True))
    model.save_pretrained(folder / "weights" / "video")
    monkeypatch.setenv("VLOGGER_WEIGHTS_DIR", str(folder / "weights"))
    monkeypatch.setattr(pipeline, "STAGES", (INPUTS, pipeline.render.FRAMES))
    shutil.copy(ROOT / "manifests" / "media" / "astronaut.jpg", folder / "face.jpg")
    (folder / "m.yaml").write_text("defaults:\n  renderer: diffusion\n  resolution: 128\n  steps: 2\n  overlap: 0.5\n"
                                   "jobs:\n" + "".join(f"  - id: {i}\n    portrait: face.jpg\n    text: Hi.\n    seed: {k}\n"
                                                       for k, i in enumerate(FRAMES)))
    clear_cache()
    yield folder
    clear_cache()


def render(folder: Path, out: str, *args) -> dict:
    result = CliRunner().invoke(main, ["render", str(folder / "m.yaml"), "-o", str(folder / out), "--device", "cpu",
                                       "--threads", "1", *args])
    assert result.exit_code == 0, result.output
    frames = {}
    for job in FRAMES:
        info = json.loads((folder / out / job / "frames.json").read_text())
        assert info["folder"] == "chunks/base" and info["frames"] == FRAMES[job]
        frames[job] = FrameStore(folder / out / job / info["folder"]).frames(0, FRAMES[job]).astype(int)
    return frames


def cached_models():
    from vlogger_cli.pipeline.inference import _LOADED

    return [m for models in _LOADED.values() for m in models]


def test_batched_windows_bf16_and_compile_through_the_cli(workspace):
    from vlogger_cli.video.compile import compiled_backend

    alone = render(workspace, "alone")
    [model] = cached_models()  # loaded once for the three jobs, kept for the next render in this process
    calls = model.calls
    together = render(workspace, "together", "--batch-windows", "3", "--precision", "fp32")
    assert cached_models() == [model] and compiled_backend(model) is None
    assert model.calls - calls < calls  # window k of the three jobs in one call: fewer denoiser calls
    for job in FRAMES:
        assert np.abs(together[job] - alone[job]).max() <= 1  # float tolerance
    log = (workspace / "together" / "a" / "log.txt").read_text()
    assert "frames: base window 3 (frames 8-9)" in log

    # one job (its windows all of one shape: one compilation), bf16 and compiled with a cheap backend
    result = CliRunner().invoke(main, ["render", str(workspace / "m.yaml"), "-o", str(workspace / "bf16"), "--device",
                                       "cpu", "--threads", "1", "--jobs", "c", "--precision", "bf16",
                                       "--compile-backend", "eager"])
    assert result.exit_code == 0, result.output
    assert cached_models() == [model] and compiled_backend(model) == "eager"  # --compile reached the model
    bf16 = FrameStore(workspace / "bf16" / "c" / "chunks" / "base").frames(0, FRAMES["c"]).astype(int)
    diff = np.abs(bf16 - alone["c"])
    assert diff.max() > 0 and diff.mean() < 3  # bf16 ran, and stays close to fp32


def test_a_killed_batched_render_resumes_to_the_same_frames(workspace, monkeypatch):
    import vlogger_cli.pipeline.render as frames_stage
    from vlogger_cli.jobs.runner import RunOptions, run_jobs
    from vlogger_cli.jobs.store import JobDir
    from vlogger_cli.manifest import load_manifest
    from vlogger_cli.pipeline import InferenceSettings

    from vlogger_cli.threads import process_threads

    specs = load_manifest(workspace / "m.yaml").jobs
    batched = RunOptions(device="cpu", stages=(INPUTS, frames_stage.FRAMES),
                         inference=InferenceSettings(batch_windows=3))
    with process_threads(1):  # a tiny model: one thread (tests/video/conftest.py says why)
        run_jobs(specs, workspace / "whole", batched, echo=lambda s: None)

    logger = frames_stage._window_logger

    def killing_logger(ctx):
        log = logger(ctx)

        def on_window(stage, state):
            log(stage, state)
            if ctx.spec.id == "b" and state.index == 1:
                raise KeyboardInterrupt  # Ctrl-C after the second round of windows

        return on_window

    monkeypatch.setattr(frames_stage, "_window_logger", killing_logger)
    with pytest.raises(KeyboardInterrupt), process_threads(1):
        run_jobs(specs, workspace / "cut", batched, echo=lambda s: None)
    for job in FRAMES:
        state = JobDir(workspace / "cut", job).read_state()
        assert state["state"] == "interrupted" and "inputs" in state["stages"] and "frames" not in state["stages"]
    assert FrameStore(workspace / "cut" / "b" / "chunks" / "base").indices() == [0, 1]
    monkeypatch.setattr(frames_stage, "_window_logger", logger)
    with process_threads(1):
        results = run_jobs(specs, workspace / "cut", batched, echo=lambda s: None)
    assert [(r.state, r.action) for r in results] == [("done", "resume")] * 3
    for job, n in FRAMES.items():
        whole = FrameStore(workspace / "whole" / job / "chunks" / "base").frames(0, n).astype(int)
        cut = FrameStore(workspace / "cut" / job / "chunks" / "base").frames(0, n).astype(int)
        assert np.abs(whole - cut).max() <= 1
