"""Run directories: a reused directory refuses, overwrite clears, resume checks the config."""

import os

import pytest

from cliffjax.training.run_dir import RunDirError, prepare_run_dir

CFG = {"seed": 0, "model": {"d_model": 64}, "trainer": {"rl": {"steps": 3}, "resume": False}}


def test_reused_run_dir_refuses_and_overwrite_clears(tmp_path):
    d = str(tmp_path / "run")
    prepare_run_dir(d, CFG, resume=False, overwrite=False)
    assert os.path.isfile(os.path.join(d, "manifest.json"))
    with pytest.raises(RunDirError, match="not empty"):
        prepare_run_dir(d, CFG, resume=False, overwrite=False)
    open(os.path.join(d, "stale.txt"), "w").close()
    prepare_run_dir(d, CFG, resume=False, overwrite=True)
    assert not os.path.exists(os.path.join(d, "stale.txt"))


def test_resume_with_changed_seed_refuses_and_keeps_config(tmp_path):
    d = str(tmp_path / "run")
    prepare_run_dir(d, CFG, resume=False, overwrite=False)
    before = open(os.path.join(d, "config.yaml"), "rb").read()
    changed = {**CFG, "seed": 1, "model": {"d_model": 32}}
    with pytest.raises(RunDirError, match=r"seed: stored 0 -> requested 1") as e:
        prepare_run_dir(d, changed, resume=True, overwrite=False)
    assert "model.d_model" in str(e.value)
    assert open(os.path.join(d, "config.yaml"), "rb").read() == before
    longer = {**CFG, "trainer": {"rl": {"steps": 9}, "resume": True}}
    m = prepare_run_dir(d, longer, resume=True, overwrite=False, resume_allow=("trainer.rl.steps",))
    assert m["resumes"][0]["changed"][0]["field"] == "trainer.rl.steps"
    assert os.path.isfile(os.path.join(d, "config.resume-1.yaml"))
    assert open(os.path.join(d, "config.yaml"), "rb").read() == before


def test_resume_of_missing_dir_errors(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        prepare_run_dir(str(tmp_path / "nope"), CFG, resume=True, overwrite=False)
