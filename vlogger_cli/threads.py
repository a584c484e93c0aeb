"""Ground floor: how many CPU threads torch work uses, per process and per stage.

Imports nothing from vlogger_cli.

Several renderers on one box (local `--workers N`, Ray tasks, or `vlogger render` processes started by hand
on one output root) must share its cores: each process left at torch's default thread count spins its
threads against the others' (measured on the 2-core box: stage-2 sampling took 38 s per 4-frame window beside
a second renderer, ~4 s for a one-thread renderer beside it). So each renderer process is sized from the
cores it may use (`available_cores`) and how many renderers share them (`render_threads`), and one GPU is
pinned per local worker (`worker_env`). Ray pins GPUs itself (`num_gpus=1`) and sizes tasks by
`ray_task_cpus`.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Mapping, Sequence

# Thread-count variables of the OpenMP / BLAS runtimes torch, numpy and OpenCV start with: set for the
# process and its children so libraries that start after the choice follow it too.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

# OpenMP's default wait policy (libgomp, which torch's CPU build uses) keeps idle threads spinning at every
# barrier; with anything else on the cores (a second renderer, another user's job) the spinning threads take
# the CPU from the ones doing the work. Measured on the shared 2-core box (bench/batch.py (d): 4 diffusion
# jobs at 128², load ~3 from others): one renderer with 2 threads 174 s, the same with PASSIVE 38.5 s (with
# 1 thread: 38.5 s); two renderers with 2 threads each 180-456 s, with PASSIVE 37.8 s. Not measured on an
# idle machine, where spinning saves the wake-ups; a user's OMP_WAIT_POLICY always wins.
PASSIVE_OPENMP = {"OMP_WAIT_POLICY": "PASSIVE"}


@contextlib.contextmanager
def small_op_threads():
    """torch CPU threads for stages made of many small ops (anny forward/backward in the fit, the body
    model per window). Measured on the 2-core machine: the astronaut fit takes 1.7 s with 1 thread and
    10-20 s with 2 (the threads spin against each other on (V, 3) sized ops). Override with
    VLOGGER_TORCH_THREADS."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("VLOGGER_TORCH_THREADS", "1")))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def cores_from(affinity: int, cpu_max: str | None = None) -> int:
    """Cores a process may use: its affinity mask, capped by a cgroup v2 CPU quota (`cpu.max`: "QUOTA PERIOD"
    or "max PERIOD"; a container started with --cpus 2.5 has "250000 100000" -> 3 cores)."""
    cores = max(1, affinity)
    if cpu_max:
        quota, _, period = cpu_max.strip().partition(" ")
        if quota.isdigit() and period.isdigit() and int(period) > 0:
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    return cores


def available_cores() -> int:
    """The cores this process may run on: `os.sched_getaffinity` (taskset, cpusets, Slurm, Ray's placement)
    capped by the cgroup's CPU quota (docker --cpus), which the affinity does not show."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = os.cpu_count() or 1
    try:
        cpu_max = open("/sys/fs/cgroup/cpu.max").read()
    except OSError:
        cpu_max = None
    return cores_from(affinity, cpu_max)


def passive_openmp_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The OpenMP wait policy a renderer starts with: the user's OMP_WAIT_POLICY if set, else PASSIVE."""
    chosen = (os.environ if env is None else env).get("OMP_WAIT_POLICY")
    return {"OMP_WAIT_POLICY": chosen} if chosen else dict(PASSIVE_OPENMP)


def prefer_passive_openmp() -> bool:
    """`passive_openmp_env` for this process and its children; OpenMP reads it once, when torch loads it.
    Returns whether it takes effect in this process (torch not imported yet)."""
    os.environ.update(passive_openmp_env())
    return "torch" not in sys.modules


def _positive_int(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() and int(value) > 0 else None


def thread_choice(cores: int, workers: int = 1, threads: int | None = None,
                  env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """(torch threads of one renderer process, why in words): `--threads` if given; else OMP_NUM_THREADS when
    the user (or Ray) set it; else its share of the cores, cores ÷ renderers sharing them (at least 1)."""
    if threads:
        return threads, "--threads"
    from_env = _positive_int((os.environ if env is None else env).get("OMP_NUM_THREADS"))
    if from_env:
        return from_env, "OMP_NUM_THREADS"
    share = f" / {workers} workers" if workers > 1 else ""
    return max(1, cores // max(1, workers)), f"{cores} core(s) this process may use{share}"


def render_threads(cores: int, workers: int = 1, threads: int | None = None,
                   env: Mapping[str, str] | None = None) -> int:
    """torch threads of one renderer process (`thread_choice`)."""
    return thread_choice(cores, workers, threads, env)[0]


@contextlib.contextmanager
def environment(values: Mapping[str, str]):
    """os.environ with `values` while the block runs (child processes started in it inherit them), then as before."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def process_threads(n: int):
    """Size this process's CPU work to `n` threads while the block runs: torch now, and the OpenMP/BLAS
    runtimes that start later (environment). Restored after, so an in-process caller (tests) keeps its own."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with environment({name: str(n) for name in THREAD_ENV}):
            yield n
    finally:
        torch.set_num_threads(previous)


def visible_gpus(env: Mapping[str, str], count: int) -> list[str]:
    """The GPU ids workers may be pinned to: CUDA_VISIBLE_DEVICES as the user narrowed it, else 0..count-1."""
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    return [str(i) for i in range(count)]


def worker_env(index: int, gpus: Sequence[str], threads: int) -> dict[str, str]:
    """Environment a local worker `index` starts with (set before its interpreter loads torch): its thread
    count, and one GPU (round robin) when there are GPUs.
    EGL_DEVICE_ID puts pyrender's EGL context on the same GPU (EGL does not read CUDA_VISIBLE_DEVICES; this
    assumes the driver lists EGL devices in PCI order, hence CUDA_DEVICE_ORDER=PCI_BUS_ID)."""
    env = {name: str(threads) for name in THREAD_ENV}
    if gpus:
        gpu = gpus[index % len(gpus)]
        env.update(CUDA_VISIBLE_DEVICES=gpu, CUDA_DEVICE_ORDER="PCI_BUS_ID")
        if gpu.isdigit():
            env["EGL_DEVICE_ID"] = gpu
    return env


def ray_task_cpus(nodes: Sequence[tuple[float, float]], workers: int | None = None, threads: int | None = None) -> int:
    """CPUs (= torch threads) each Ray render task asks for. nodes: (CPUs, GPUs) of each live node; tasks take a
    GPU each when any node has one, so then only GPU nodes count. `--threads` as given (at most a node's CPUs, or
    no task could ever be placed); `--workers N`: N tasks per node; GPU nodes: one task per GPU with that GPU's
    share of its node's cores; CPU-only: one task per core (Ray's default). Minimum over nodes: every node fits one."""
    gpu_nodes = [(int(c), int(g)) for c, g in nodes if g >= 1 and c >= 1]
    cpus = [c for c, _ in gpu_nodes] or [int(c) for c, _ in nodes if c >= 1] or [1]
    if threads:
        return min(threads, max(cpus))
    if workers:
        return max(1, min(c // workers for c in cpus))
    if gpu_nodes:
        return max(1, min(c // g for c, g in gpu_nodes))
    return 1
