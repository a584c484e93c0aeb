import pytest

from vlogger_cli.jobs.store import JobDir, config_hash
from vlogger_cli.manifest import JobSpec


def spec(tmp_path, **kw):
    portrait = tmp_path / "p.jpg"
    if not portrait.exists():
        portrait.write_bytes(b"photo-1")
    return JobSpec(id="a", portrait=portrait, text="hi", **kw)


def test_config_hash_covers_config_and_file_content(tmp_path):
    base = config_hash(spec(tmp_path))
    assert config_hash(spec(tmp_path)) == base
    assert config_hash(spec(tmp_path, seed=1)) != base
    (tmp_path / "p.jpg").write_bytes(b"photo-2")  # same name, new photo: must redo
    assert config_hash(spec(tmp_path)) != base


def test_paths_stay_inside_job_folder(tmp_path):
    job = JobDir(tmp_path, "a")
    assert job.path("controls/0.npz") == (tmp_path / "a" / "controls" / "0.npz").resolve()
    for bad in ("../b/x", "/etc/passwd", "controls/../../x"):
        with pytest.raises(ValueError):
            job.path(bad)


def test_state_round_trip_and_validation(tmp_path):
    job = JobDir(tmp_path, "a")
    assert job.read_state() is None
    job.write_state({"state": "running", "id": "a"})
    assert job.read_state()["state"] == "running"
    with pytest.raises(ValueError):
        job.write_state({"state": "bogus"})
    job.state_path.write_text("{torn")
    assert job.read_state() is None


def test_remove_stale_temps_only_removes_ours(tmp_path):
    job = JobDir(tmp_path, "a")
    (job.root / "chunks").mkdir(parents=True)
    (job.root / "chunks" / ".0001.npz.abc.tmp.npz").write_bytes(b"")
    (job.root / "audio.wav").write_bytes(b"")
    (job.root / ".hidden_user_file").write_bytes(b"")
    assert job.remove_stale_temps() == 1
    assert sorted(p.name for p in job.root.rglob("*") if p.is_file()) == [".hidden_user_file", "audio.wav"]
