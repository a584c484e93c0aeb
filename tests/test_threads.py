"""The thread and GPU policy for several renderers on one box (vlogger_cli/threads.py): pure functions of
cores, workers, flags and environment."""

import os
import subprocess
import sys

import pytest
import torch

from vlogger_cli import threads as th


@pytest.mark.parametrize("affinity, cpu_max, cores", [
    (16, None, 16),
    (16, "max 100000", 16),            # no quota
    (16, "250000 100000\n", 3),        # docker --cpus 2.5
    (2, "800000 100000", 2),           # quota above the affinity: the affinity
    (8, "50000 100000", 1),            # half a core: still one thread
    (0, None, 1),
    (4, "garbage", 4),
])
def test_cores_from_affinity_and_cgroup_quota(affinity, cpu_max, cores):
    assert th.cores_from(affinity, cpu_max) == cores


def test_available_cores_is_this_process_affinity_at_most():
    assert 1 <= th.available_cores() <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize("cores, workers, flag, env, threads", [
    (2, 1, None, {}, 2),                          # alone: every core
    (2, 2, None, {}, 1),                          # two renderers on 2 cores: one thread each
    (16, 4, None, {}, 4),
    (16, 3, None, {}, 5),
    (2, 4, None, {}, 1),                          # more workers than cores: still 1
    (16, 4, 2, {}, 2),                            # --threads wins
    (16, 1, None, {"OMP_NUM_THREADS": "3"}, 3),   # the user's (or Ray's) OMP_NUM_THREADS
    (16, 1, 6, {"OMP_NUM_THREADS": "3"}, 6),      # --threads over the environment
    (16, 2, None, {"OMP_NUM_THREADS": "0"}, 8),   # nonsense in the environment is ignored
    (16, 2, None, {"OMP_NUM_THREADS": "four"}, 8),
])
def test_render_threads(cores, workers, flag, env, threads):
    assert th.render_threads(cores, workers, flag, env) == threads


def test_thread_choice_says_why():
    assert th.thread_choice(8, 2, None, {}) == (4, "8 core(s) this process may use / 2 workers")
    assert th.thread_choice(8, 1, None, {})[1] == "8 core(s) this process may use"
    assert th.thread_choice(8, 1, 3, {})[1] == "--threads"
    assert th.thread_choice(8, 1, None, {"OMP_NUM_THREADS": "2"}) == (2, "OMP_NUM_THREADS")


def test_visible_gpus_respects_the_users_narrowing():
    assert th.visible_gpus({}, 4) == ["0", "1", "2", "3"]
    assert th.visible_gpus({}, 0) == []
    assert th.visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}, 4) == ["2", "3"]
    assert th.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, 4) == []
    assert th.visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}, 4) == []
    assert th.visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-8f2a,GPU-11bc"}, 2) == ["GPU-8f2a", "GPU-11bc"]


def test_worker_env_pins_one_gpu_per_worker_round_robin():
    envs = [th.worker_env(i, ["0", "1"], 4) for i in range(3)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0"]
    assert [e["EGL_DEVICE_ID"] for e in envs] == ["0", "1", "0"]  # pyrender's EGL context on the same GPU
    assert all(e["OMP_NUM_THREADS"] == e["MKL_NUM_THREADS"] == "4" for e in envs)
    cpu = th.worker_env(1, [], 1)
    assert "CUDA_VISIBLE_DEVICES" not in cpu and cpu["OMP_NUM_THREADS"] == "1"
    assert "EGL_DEVICE_ID" not in th.worker_env(0, ["GPU-8f2a"], 1)  # a UUID has no EGL index


@pytest.mark.parametrize("nodes, workers, flag, cpus", [
    ([(2, 0)], None, None, 1),                  # CPU node: one job per core, as before
    ([(16, 2)], None, None, 8),                 # GPU node: a GPU's share of the cores
    ([(64, 0), (16, 4), (8, 1)], None, None, 4),  # CPU-only head ignored; every GPU node fits a task
    ([(16, 0)], 4, None, 4),                    # --workers 4: 4 jobs per node
    ([(16, 2), (8, 2)], 2, None, 4),
    ([(2, 0)], 8, None, 1),
    ([(16, 0)], None, 6, 6),                    # --threads
    ([(2, 0)], None, 6, 2),                     # ... at most a node's CPUs, or the task never runs
    ([], None, None, 1),
])
def test_ray_task_cpus(nodes, workers, flag, cpus):
    assert th.ray_task_cpus(nodes, workers, flag) == cpus


def test_process_threads_sizes_torch_and_the_runtimes_then_restores(monkeypatch):
    monkeypatch.setenv("MKL_NUM_THREADS", "7")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    target = 2 if before == 1 else 1
    with th.process_threads(target):
        assert torch.get_num_threads() == target
        assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == str(target)
    assert torch.get_num_threads() == before
    assert os.environ["MKL_NUM_THREADS"] == "7" and "OMP_NUM_THREADS" not in os.environ


def test_openmp_waits_passively_unless_the_user_chose():
    assert th.passive_openmp_env({}) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert th.passive_openmp_env({"OMP_WAIT_POLICY": "ACTIVE"}) == {"OMP_WAIT_POLICY": "ACTIVE"}
    assert th.passive_openmp_env({"OMP_WAIT_POLICY": ""}) == {"OMP_WAIT_POLICY": "PASSIVE"}


def test_passive_openmp_is_set_before_torch_loads():
    """OpenMP reads its wait policy once, when torch loads it: the CLI sets it first (a fresh interpreter here)."""
    probe = ("import os, sys\nfrom vlogger_cli.threads import prefer_passive_openmp\n"
             "took = prefer_passive_openmp()\nimport torch\nprint(took, os.environ['OMP_WAIT_POLICY'])")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "PASSIVE"]
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "ACTIVE"]
    assert th.prefer_passive_openmp() is False  # in this process torch is loaded: too late, and it says so
