"""The sensitivity job on a tiny config: slopes per seed, the cost record, the comparison with
the finite-difference sweep, and the report section."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

from cliffjax.experiments import report
from cliffjax.experiments.cliff_config import build_cliff_config, register_cliff_configs
from cliffjax.experiments.sensitivity import run_sensitivity

CONF = Path(__file__).resolve().parents[2] / "conf"
TINY = [
    "algo=dr_grpo",
    "sweep=smoke",
    "sweep.eps=[0,0.001,0.01]",
    "sweep.perturbation=random",
    "trainer.sft.steps=30",
    "trainer.sft.batch_size=16",
    "trainer.rl.steps=4",
    "trainer.rl.prompts_per_step=4",
    "trainer.rl.group_size=4",
    "trainer.rl.entropy_coef=0.01",
    "sweep.n_train_prompts=4",
    "sweep.n_eval_prompts=2",
    "model.d_model=16",
    "model.n_layers=1",
    "model.d_ff=32",
]


def test_sensitivity_job_writes_slopes_cost_and_report(tmp_path):
    register_cliff_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        job = build_cliff_config(compose(config_name="sensitivity", overrides=TINY))
    out = run_sensitivity(job, tmp_path / "0")
    rows = out["rows"]
    assert len(rows) == job.sweep.n_seeds
    for r in rows:
        for k in ("tv_slope", "tv_slope_train", "kl_curvature", "delta_slope_train"):
            assert math.isfinite(r[k]), k
        assert r["tv_slope"] > 0 and r["kl_curvature"] >= 0
        assert r["lipschitz_bound"] > 0  # entropy bonus on
    s = json.loads((tmp_path / "0" / "sensitivity_summary.json").read_text())
    assert s["jvp_s"] > 0 and s["plain_s"] > 0 and s["jvp_bytes"] > s["plain_bytes"]
    # The finite-difference sweep ran next to it; at ε = 0.001 the measured TV/ε is of the
    # order of the slope (Dr. GRPO: no std normalization, so no jump at tied groups).
    fd = [r["tv_exact"] / r["eps"] for r in out["sweep"]["rows"] if r["eps"] == 0.001]
    slope = sum(r["tv_slope"] for r in rows) / len(rows)
    assert 0.1 < (sum(fd) / len(fd)) / slope < 10
    assert (tmp_path / "0" / "derivative_vs_fd.png").stat().st_size > 1000
    path = report.write_report(tmp_path)
    text = path.read_text()
    assert "## Derivative vs finite difference" in text
    assert "| dr_grpo | 0.01 | 0 | random | pathwise given the samples | 2 |" in text
    assert (tmp_path / "derivative_vs_fd.png").stat().st_size > 1000


def test_replay_mode_slope_is_the_limit_of_replayed_finite_differences(tmp_path):
    """In replay mode the finite differences replay the same rollouts the tangent run
    trained on, so TV(ε)/ε at small ε matches the slope up to O(ε) and float32 round-off;
    the per-token slopes of the greedy completions are written too."""
    register_cliff_configs()
    overrides = [*TINY, "sweep.mode=replay", "sweep.eps=[0,0.0003,0.003]"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        job = build_cliff_config(compose(config_name="sensitivity", overrides=overrides))
    out = run_sensitivity(job, tmp_path / "0")
    rows = out["rows"]
    assert {r["perturbation"] for r in rows} == {"random (replay)"}
    assert {r["perturbation"] for r in out["sweep"]["rows"]} == {"random (replay)"}
    s = json.loads((tmp_path / "0" / "sensitivity_summary.json").read_text())
    assert abs(s["fd_over_slope"]["0.0003"] - 1) < 0.05, s["fd_over_slope"]
    greedy = np.load(tmp_path / "0" / "logp_slopes.npz")
    n_seeds, n_eval = job.sweep.n_seeds, 2
    assert greedy["d_logp"].shape[:2] == (n_seeds, n_eval)
    assert np.all(greedy["d_logp"][greedy["mask"] == 0] == 0)
    assert np.any(greedy["d_logp"] != 0)
    for r in rows:
        assert math.isfinite(r["seq_logp_slope"]) and r["logp_slope_rms"] > 0
    assert (tmp_path / "0" / "derivative_vs_fd.png").stat().st_size > 1000
