"""End-to-end runs of the main job on tiny configs: RL raises held-out accuracy, resuming is
bitwise-identical to an uninterrupted run, a planted NaN stops the run at the right step with
the last good checkpoint kept, and the preference path runs.

The base run (warm start + GRPO on 1-digit addition with a tiny model) is shared by the first
two tests; the margin of the first was measured on several seeds (docs/training.md).
"""

import os
import shutil

import jax
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from core.training.checkpoint import Checkpointer
from core.training.guards import NonFiniteError
from core.training.metrics import read_metrics
from experiments.config import build_config, register_configs
from experiments.train import run

CONF = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "conf"))

TINY = (
    "model.d_model=64",
    "model.n_layers=2",
    "model.n_heads=4",
    "model.d_ff=128",
    "model.max_seq_len=16",
    "task.n_digits=1",
    "task.n_eval=30",
    "trainer.progress=false",
)
BASE = (
    *TINY,
    "trainer.sft.steps=150",
    "trainer.sft.batch_size=64",
    "trainer.sft.optim.warmup_steps=10",
    "trainer.rl.steps=60",
    "trainer.rl.prompts_per_step=16",
    "trainer.rl.group_size=8",
    "trainer.eval_every=0",
    "trainer.kl_every=10",
    "trainer.checkpoint.every=20",
    "trainer.checkpoint.keep=10",
)
TIMING_KEYS = {"step_time", "rollout_time", "update_time", "pairs_time", "tokens_per_s"}


def _config(*overrides):
    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return build_config(compose(config_name="config", overrides=list(overrides)))


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("base"))
    return run_dir, run(_config(*BASE), run_dir)


def test_rl_raises_heldout_accuracy(base_run):
    run_dir, result = base_run
    s = result.summary
    assert s["eval_accuracy_after"] >= s["eval_accuracy_before"] + 0.15, s
    for name in ("metrics.jsonl", "reward_curve.png", "summary.json", "config.yaml"):
        assert os.path.exists(os.path.join(run_dir, name))
    recs = [r for r in read_metrics(os.path.join(run_dir, "metrics.jsonl")) if r["phase"] == "rl"]
    assert [r["step"] for r in recs] == list(range(1, 61))
    for key in (
        "reward_mean",
        "entropy",
        "clip_frac_low",
        "ratio_max",
        "grad_norm",
        "response_len",
    ):
        assert key in recs[-1]
    assert "kl_ref" in recs[10] and "kl_ref" not in recs[11]


def test_resume_is_bitwise_identical(base_run, tmp_path):
    run_dir, result = base_run
    resumed_dir = str(tmp_path / "resumed")
    shutil.copytree(run_dir, resumed_dir)
    ckpt_dir = os.path.join(resumed_dir, "checkpoints")
    # Interrupt after RL step 20: drop every later checkpoint (SFT has 150 steps).
    for name in os.listdir(ckpt_dir):
        if name.isdigit() and int(name) > 150 + 20:
            shutil.rmtree(os.path.join(ckpt_dir, name))
    assert Checkpointer(ckpt_dir, keep=10).latest_step() == 170
    again = run(_config(*BASE, "trainer.resume=true"), resumed_dir)
    for a, b in zip(jax.tree.leaves(result.params), jax.tree.leaves(again.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    strip = lambda recs: [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in recs]
    assert strip(read_metrics(os.path.join(resumed_dir, "metrics.jsonl"))) == strip(
        read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    )
    assert again.summary["eval_accuracy_before"] == result.summary["eval_accuracy_before"]


def test_planted_nan_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = _config(
        *TINY,
        "trainer.sft.steps=2",
        "trainer.rl.steps=6",
        "trainer.rl.prompts_per_step=4",
        "trainer.rl.group_size=4",
        "trainer.eval_every=0",
        "trainer.checkpoint.every=1",
        "trainer.nan_at_step=3",
    )
    with pytest.raises(NonFiniteError) as e:
        run(cfg, str(tmp_path))
    assert (e.value.phase, e.value.step, e.value.quantity) == ("rl", 4, "loss")
    assert "rl step 4" in str(e.value)
    ckpt = Checkpointer(str(tmp_path / "checkpoints"), keep=3)
    assert ckpt.latest_step() == 2 + 3  # RL step 3, the last good one
    assert ckpt.restore_meta(5)["step"] == 3


def test_preference_run_from_own_samples(tmp_path):
    cfg = _config(
        *TINY,
        "algo=rpo",
        "trainer.sft.steps=40",
        "trainer.preference.steps=3",
        "trainer.preference.prompts_per_step=8",
        "trainer.preference.group_size=4",
        "trainer.eval_every=0",
    )
    result = run(cfg, str(tmp_path))
    recs = [r for r in read_metrics(str(tmp_path / "metrics.jsonl")) if r["phase"] == "preference"]
    assert [r["step"] for r in recs] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) for r in recs) and "pair_valid_frac" in recs[0]
    assert result.summary["eval_accuracy_after"] is not None
