"""smplx adapter specifics: finding the model file, errors, expression = coefficients + jaw."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlogger_cli.body.model import PART_INDEX, load_body_model
from vlogger_cli.body.smplx_model import SmplxBody, find_smplx_file
from vlogger_cli.errors import JobError


def test_missing_file_is_a_one_line_job_error(tmp_path, monkeypatch):
    monkeypatch.setenv("VLOGGER_WEIGHTS_DIR", str(tmp_path / "weights"))
    with pytest.raises(JobError) as err:
        SmplxBody()
    message = str(err.value)
    assert "\n" not in message and "SMPLX_NEUTRAL.npz" in message
    assert str(tmp_path / "weights" / "body" / "smplx") in message


def test_pickle_files_are_refused(tmp_path):
    (tmp_path / "SMPLX_NEUTRAL.pkl").write_bytes(b"not loaded")
    with pytest.raises(JobError, match="pickle"):
        find_smplx_file(tmp_path / "SMPLX_NEUTRAL.pkl")


def test_found_in_weights_folder(smplx_file, monkeypatch):
    weights = smplx_file.parent.parent
    target = weights / "body" / "smplx"
    target.mkdir(parents=True, exist_ok=True)
    (target / "SMPLX_NEUTRAL.npz").write_bytes(smplx_file.read_bytes())
    monkeypatch.setenv("VLOGGER_WEIGHTS_DIR", str(weights))
    assert find_smplx_file() == target / "SMPLX_NEUTRAL.npz"
    assert find_smplx_file(smplx_file.parent) == smplx_file


def test_npz_with_pickled_entries_loads_from_a_clean_copy(smplx_file, tmp_path, monkeypatch):
    monkeypatch.setenv("VLOGGER_CACHE_DIR", str(tmp_path / "cache"))
    with np.load(smplx_file) as data:
        arrays = dict(data)
    arrays["part2num"] = np.array([{"head": 15}], dtype=object)  # a pickled entry, as some releases have
    dirty = tmp_path / "SMPLX_NEUTRAL.npz"
    np.savez(dirty, **arrays)
    model = SmplxBody(dirty)
    assert model.num_vertices == arrays["v_template"].shape[0]
    assert list((tmp_path / "cache" / "smplx").glob("*.npz"))


def test_expression_coefficients_and_jaw(smplx_model):
    names = smplx_model.expression_names
    assert names[:2] == ("expression00", "expression01") and names[-3:] == ("jaw_x", "jaw_y", "jaw_z")
    params = smplx_model.zero_params(3)
    params.expression = smplx_model.expression_vector(3)
    params.expression[1, 0] = 2.0
    params.expression[2] = smplx_model.expression_vector(1, jaw_x=0.4)[0]
    with torch.no_grad():
        v = smplx_model(params).vertices
    assert (v[1] - v[0]).norm(dim=-1).max() > 1e-3       # expression blendshapes act
    moved = (v[2] - v[0]).norm(dim=-1) > 2e-3           # the jaw rotates its own vertices only
    head = np.isin(smplx_model.part_labels, [PART_INDEX["face_skin"], PART_INDEX["head_back"], PART_INDEX["lips"]])
    assert moved.any() and head[moved.numpy()].all()


def test_load_body_model_factory(smplx_file):
    assert load_body_model("smplx", smplx_file).name == "smplx"
    with pytest.raises(JobError, match="unknown body model"):
        load_body_model("nope")
