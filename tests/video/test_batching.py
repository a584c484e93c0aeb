"""Several videos' windows in one denoiser batch (video/batching.py, `render --batch-windows`), bf16 inference
(`render --precision`) and the opt-in torch.compile (video/compile.py), with tiny models on the CPU."""

import numpy as np
import pytest
import torch

from vlogger_cli.controls.render import ControlFrames
from vlogger_cli.video.batching import (StageTask, WindowLimit, parse_batch_windows, render_together,
                                        window_limit)
from vlogger_cli.video.chunks import stage_run, window_store
from vlogger_cli.video.compile import backend_from_env, compile_denoiser, compiled_backend
from vlogger_cli.video.outpaint import outpaint
from vlogger_cli.video.render import CascadeJob, render_cascade, render_cascades
from vlogger_cli.video.sampling import Conditioning, WindowRequest, batch_key

FRAMES = (9, 7, 6)  # three jobs whose last windows differ (window 4, overlap 0.5): they batch in changing groups


def controls_of(frames: int, seed: int) -> ControlFrames:
    rng = np.random.default_rng(seed)
    parts = rng.integers(0, 15, (frames, 32, 32)).astype(np.uint8)
    return ControlFrames(position=rng.normal(size=(frames, 32, 32, 3)).astype(np.float32), mask=parts > 0,
                         parts=parts, warped=rng.integers(0, 256, (frames, 32, 32, 3)).astype(np.uint8),
                         warped_mask=parts > 3, flow=rng.normal(size=(frames, 32, 32, 2)).astype(np.float32))


@pytest.fixture(scope="module")
def cascade(build):
    """A 16² base and a 32² residual SR over it, both reading the flow-warped portrait (control layers perturbed)."""
    return [build.model("tiny", seed=3, resolution=16, flow_reference=True),
            build.model("tiny", seed=1, residual=True, lowres_resolution=16, flow_reference=True)]


def jobs_for(root, frames=FRAMES, inpaint=False, **options):
    """Three jobs; `inpaint`: video editing's inputs too (per-frame source images, known pixels)."""
    rng = np.random.default_rng(7)
    options = {"steps": 2, "window": 4, "overlap": 0.5, **options}
    jobs = [CascadeJob(controls_of(n, i), rng.integers(0, 256, (40, 40, 3)).astype(np.uint8), n, root / f"job{i}",
                       seed=10 * i, key=f"k{i}", options=dict(options)) for i, n in enumerate(frames)]
    if inpaint:
        for job in jobs:
            source = rng.integers(0, 256, (job.num_frames, 32, 32, 3)).astype(np.uint8)
            where = rng.random((job.num_frames, 32, 32)) > 0.5
            job.portraits = lambda s, e, source=source: source[s:e]
            job.known = lambda s, e, source=source, where=where: (source[s:e], where[s:e])
    return jobs


def assert_close(job_a, job_b):
    flipped = False  # the stage below rounded a pixel the other way: this stage's input differs by a grey level
    for stage in ("base", "sr32"):
        a, b = window_store(job_a.chunks / stage), window_store(job_b.chunks / stage)
        assert a.indices() == b.indices() and a.is_complete() and b.is_complete()
        for wa, wb in zip(a.windows(), b.windows()):
            assert torch.allclose(wa.latents, wb.latents, atol=1e-2 if flipped else 1e-4), stage
            assert torch.equal(wa.rng_state, wb.rng_state)  # each window drew from its own video's generator
            assert wa.meta == wb.meta
        fa, fb = a.frames(0, job_a.num_frames).astype(int), b.frames(0, job_b.num_frames).astype(int)
        assert np.abs(fa - fb).max() <= 1, stage  # float tolerance: a rounding step of uint8 at most
        flipped = bool((fa != fb).any())


@pytest.mark.parametrize("options", [dict(sampler="dpm"), dict(sampler="ddpm"), dict(sampler="ddim", guidance_scale=2.0),
                                     dict(sampler="dpm", batch=2, inpaint=True)])
def test_batched_windows_give_the_frames_of_one_at_a_time(cascade, tmp_path, options):
    alone, together = jobs_for(tmp_path / "alone", **options), jobs_for(tmp_path / "together", **options)
    for job in alone:
        render_cascade(cascade, job.controls, job.portrait, job.num_frames, job.chunks, seed=job.seed, key=job.key,
                       portraits=job.portraits, known=job.known, **job.options)
    calls_alone = [m.calls for m in cascade]
    assert render_cascades(cascade, together, batch=3) == [None, None, None]
    calls_together = [m.calls - c for m, c in zip(cascade, calls_alone)]
    for a, b in zip(alone, together):
        assert_close(a, b)
    # window k of the three jobs went through the denoiser together: far fewer calls than one at a time
    windows = sum(len(window_store(j.chunks / "base").indices()) for j in alone)
    assert calls_together[0] < calls_alone[0] and calls_together[0] <= (windows - 4) * 2


def test_one_job_in_a_batch_is_render_cascade_bit_for_bit(cascade, tmp_path):
    [a], [b] = jobs_for(tmp_path / "a", frames=(9,)), jobs_for(tmp_path / "b", frames=(9,))
    render_cascade(cascade, a.controls, a.portrait, a.num_frames, a.chunks, seed=a.seed, key=a.key, **a.options)
    assert render_cascades(cascade, [b], batch=4) == [None]
    for stage in ("base", "sr32"):
        for wa, wb in zip(window_store(a.chunks / stage).windows(), window_store(b.chunks / stage).windows()):
            assert torch.equal(wa.latents, wb.latents) and torch.equal(wa.frames, wb.frames)


class Killed(KeyboardInterrupt):
    pass


def test_a_killed_batched_render_resumes_batched_or_alone(cascade, tmp_path):
    whole = jobs_for(tmp_path / "whole")
    render_cascades(cascade, whole, batch=3)
    cut = jobs_for(tmp_path / "cut")
    seen = []

    def kill_in_the_sr_stage(stage, state):
        seen.append((stage, state.index))
        if stage == "sr32" and state.index == 1:
            raise Killed

    cut[0].on_window = kill_in_the_sr_stage
    with pytest.raises(Killed):
        render_cascades(cascade, cut, batch=3)
    # every window finished before the kill is on disk: the base of every job, the first SR windows
    assert all(window_store(j.chunks / "base").is_complete() for j in cut)
    assert window_store(cut[0].chunks / "sr32").indices() == [0, 1]
    assert not window_store(cut[0].chunks / "sr32").is_complete()
    # resumed: two jobs together again, the third alone (a batch never changes what a window continues from)
    cut[0].on_window = None
    assert render_cascades(cascade, cut[:2], batch=2) == [None, None]
    render_cascade(cascade, cut[2].controls, cut[2].portrait, cut[2].num_frames, cut[2].chunks, seed=cut[2].seed,
                   key=cut[2].key, **cut[2].options)
    for a, b in zip(whole, cut):
        assert_close(a, b)


def test_a_failing_job_fails_alone(cascade, tmp_path):
    jobs = jobs_for(tmp_path)
    good = jobs[1].controls

    class Broken:
        def load(self, start, stop):
            if start > 0:
                raise OSError(5, "Input/output error", "controls/w00001.npz")
            return good[start:stop]

    jobs[1].controls = Broken()
    errors = render_cascades(cascade, jobs, batch=3)
    assert errors[0] is None and errors[2] is None and isinstance(errors[1], OSError)
    assert window_store(jobs[0].chunks / "sr32").is_complete() and window_store(jobs[2].chunks / "sr32").is_complete()
    assert not (jobs[1].chunks / "sr32").exists()  # its SR stage never started


def test_out_of_memory_splits_the_batch_and_keeps_each_windows_noise(cascade, tmp_path, monkeypatch):
    """A batch that runs out of GPU memory is retried in halves, each window's RNG restored first."""
    import vlogger_cli.video.batching as batching

    real = batching.sample_windows
    sizes = []

    def small_gpu(model, requests, **kw):
        sizes.append(len(requests))
        if len(requests) > 1:
            for r in requests:  # a partly run batch has drawn noise already
                torch.randn(5, generator=r.generator)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (test)")
        return real(model, requests, **kw)

    alone = jobs_for(tmp_path / "alone")
    render_cascades(cascade, alone, batch=1)
    monkeypatch.setattr(batching, "sample_windows", small_gpu)
    lines = []
    split = jobs_for(tmp_path / "split")
    assert render_cascades(cascade, split, batch=3, log=lines.append) == [None, None, None]
    # per stage (base, SR): the batch of 3 fails, then 2 fails, then one at a time, and the stage keeps that limit
    assert sizes[:3] == [3, 2, 1] and sizes.count(3) == 2 and sizes.count(2) == 2
    assert any("ran out of GPU memory" in line for line in lines)
    for a, b in zip(alone, split):
        assert_close(a, b)


def test_stochastic_windows_of_several_rows_are_never_batched(tiny):
    tokens = torch.zeros(2, 4, 16)
    two_rows = WindowRequest(Conditioning(tokens), 4)
    one_row = WindowRequest(Conditioning(tokens[:1]), 4)
    assert batch_key(two_rows, "ddpm") != batch_key(one_row, "ddpm")
    assert batch_key(two_rows, "dpm") == batch_key(one_row, "dpm")
    assert batch_key(WindowRequest(Conditioning(tokens), 3), "dpm") != batch_key(two_rows, "dpm")


def test_batch_windows_values_and_auto_on_the_cpu():
    assert parse_batch_windows("auto") == "auto" and parse_batch_windows("3") == 3 and parse_batch_windows(2) == 2
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ValueError):
            parse_batch_windows(bad)
    assert window_limit("auto", "cpu").value == 1  # auto on the CPU: one window per call
    assert window_limit(4, "cpu").value == 4
    assert window_limit("auto", "cuda").value is None and window_limit("auto", "cuda").auto


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_auto_measures_a_window_on_cuda(cascade, tmp_path):
    models = [m.to("cuda") for m in cascade]
    try:
        jobs = jobs_for(tmp_path, device="cuda")
        lines = []
        assert render_cascades(models, jobs, batch="auto", log=lines.append) == [None, None, None]
        assert any("MiB per window" in line for line in lines)
    finally:
        [m.to("cpu") for m in cascade]


def test_stage_tasks_render_together_into_their_stores(tiny, tmp_path):
    """render_together on one stage: windows saved per video as they finish, callbacks per window."""
    gen = torch.Generator().manual_seed(0)
    portrait = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    tasks, seen = [], []
    for i, n in enumerate((9, 5)):
        ctrl = torch.randn(n, tiny.config.control_channels, 32, 32, generator=gen)
        store = window_store(tmp_path / f"v{i}")
        tasks.append(StageTask(stage_run(tiny, store, ctrl, portrait, n, steps=2, seed=i), store,
                               lambda state, i=i: seen.append((i, state.index))))
    render_together(tiny, tasks, limit=WindowLimit(2))
    assert [t.error for t in tasks] == [None, None] and [t.windows for t in tasks] == [4, 2]
    assert seen == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (0, 3)]
    assert all(t.store.is_complete() for t in tasks)


def test_a_window_too_big_alone_fails_its_video_only(tiny, tmp_path, monkeypatch):
    import vlogger_cli.video.batching as batching

    gen = torch.Generator().manual_seed(0)
    portrait = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    tasks = []
    for i in range(3):
        ctrl = torch.randn(6, tiny.config.control_channels, 32, 32, generator=gen)
        store = window_store(tmp_path / f"v{i}")
        tasks.append(StageTask(stage_run(tiny, store, ctrl, portrait, 6, steps=2, seed=i), store))
    real, big = batching.sample_windows, tasks[1].run.generator

    def no_room_for_video_1(model, requests, **kw):
        if any(r.generator is big for r in requests):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (test)")
        return real(model, requests, **kw)

    monkeypatch.setattr(batching, "sample_windows", no_room_for_video_1)
    render_together(tiny, tasks, limit=WindowLimit(3))
    assert tasks[0].error is None and tasks[2].error is None and tasks[0].store.is_complete()
    assert isinstance(tasks[1].error, torch.cuda.OutOfMemoryError) and tasks[1].windows == 0


# ---- bf16 inference (render --precision) ----

def test_bf16_on_the_cpu_runs_and_stays_close_to_fp32_which_is_unchanged(tiny):
    gen = torch.Generator().manual_seed(0)
    ctrl = torch.randn(6, tiny.config.control_channels, 32, 32, generator=gen)
    portrait = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)

    def render(autocast):
        states = list(outpaint(tiny, ctrl, portrait, 6, steps=3, seed=1, autocast=autocast))
        return torch.cat([s.latents for s in states], 1), np.concatenate([s.frames[0].numpy() for s in states])

    default, fp32, bf16 = render(None), render(False), render(True)
    assert torch.equal(default[0], fp32[0]) and np.array_equal(default[1], fp32[1])  # CPU default = fp32, bit for bit
    assert not torch.equal(bf16[0], fp32[0])  # bf16 really ran
    assert (bf16[0] - fp32[0]).abs().max() < 0.1 and (bf16[0] - fp32[0]).abs().mean() < 0.01
    assert np.abs(bf16[1].astype(int) - fp32[1].astype(int)).mean() < 2.0


def test_precision_settings_map_to_the_samplers_autocast():
    from vlogger_cli.pipeline.base import InferenceSettings

    assert [InferenceSettings(precision=p).autocast for p in ("auto", "bf16", "fp32")] == [None, True, False]
    with pytest.raises(ValueError):
        InferenceSettings(precision="fp16")
    with pytest.raises(ValueError):
        InferenceSettings(batch_windows=0)


# ---- torch.compile, opt-in ----

def test_compiled_denoiser_gives_the_eager_output(build):
    model = build.model()
    inputs = build.inputs(model.config, 4)
    tokens = model.encode_reference(inputs["reference"])
    args = (inputs["sample"], torch.tensor(10), tokens, inputs["controls"][None], None)
    with torch.inference_mode():
        eager = model(*args)
        compile_denoiser(model, "eager", warn=pytest.fail)
        assert compiled_backend(model) == "eager"
        compile_denoiser(model, "eager", warn=pytest.fail)  # once per model: asked again, nothing happens
        first = model(*args)
        again = model(args[0], torch.tensor(20), *args[2:])  # another timestep: the same graph
    assert torch.equal(first, eager) and model.calls == 3  # the counters stay outside the compiled code
    assert again.shape == eager.shape


def test_a_failing_compiler_falls_back_to_eager_with_one_warning(build):
    model = build.model()
    inputs = build.inputs(model.config, 4)
    tokens = model.encode_reference(inputs["reference"])
    args = (inputs["sample"], torch.tensor(10), tokens, inputs["controls"][None], None)

    def no_compiler(graph, example_inputs):
        raise RuntimeError("no working C++ compiler found\nsecond line of the compiler's complaint")

    warnings = []
    with torch.inference_mode():
        eager = model(*args)
        compile_denoiser(model, no_compiler, warn=warnings.append)
        out = [model(*args) for _ in range(3)]
    assert all(torch.equal(o, eager) for o in out)
    assert len(warnings) == 1 and "\n" not in warnings[0] and "running eagerly" in warnings[0]
    assert compiled_backend(model) == "failed:no_compiler"
    with pytest.raises(RuntimeError, match="channels"):  # a real error is not hidden: the eager run raises it
        model(inputs["sample"][:, :, :1], torch.tensor(10), tokens, inputs["controls"][None], None)


def test_compile_switch_from_the_environment():
    assert backend_from_env({}) is None and backend_from_env({"VLOGGER_COMPILE": "0"}) is None
    assert backend_from_env({"VLOGGER_COMPILE": "1"}) == "inductor"
    assert backend_from_env({"VLOGGER_COMPILE": "aot_eager"}) == "aot_eager"
