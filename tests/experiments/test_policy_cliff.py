"""The policy-cliff job: config groups, validation, the vmapped program, replay, distances."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from cliffjax.experiments import policy_cliff as pc
from cliffjax.experiments.cliff_config import build_cliff_config, register_cliff_configs
from cliffjax.experiments.config import ConfigError
from cliffjax.objectives import get_objective, list_objectives
from cliffjax.training.rl import make_rl_train

CONF = Path(__file__).resolve().parents[2] / "conf"
# A job small enough to compile and run in seconds: 1-layer d=16 model, 3 RL steps.
TINY = [
    "sweep=smoke",
    "trainer.sft.steps=30",
    "trainer.sft.batch_size=16",
    "trainer.sft.optim.lr=1e-2",
    "trainer.sft.optim.warmup_steps=0",
    "trainer.rl.steps=3",
    "trainer.rl.prompts_per_step=4",
    "trainer.rl.group_size=4",
    "sweep.n_train_prompts=4",
    "sweep.n_eval_prompts=2",
    "sweep.n_eval_samples=256",
    "model.d_model=16",
    "model.n_layers=1",
    "model.n_heads=2",
    "model.d_ff=32",
    # A 30-step warm start teaches the format, not the task, so the task reward is nearly
    # flat: the entropy bonus and a random δ on every answer give every run a gradient.
    "trainer.rl.entropy_coef=0.01",
    "sweep.perturbation=random",
    "trainer.rl.optim.warmup_steps=0",
]


def _compose(overrides: list[str]):
    register_cliff_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="policy_cliff", overrides=overrides)


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


# ------------------------------------------------------------------------------------------
# Configs


@pytest.mark.parametrize("sweep", _options("sweep"))
def test_every_sweep_option_composes_and_validates(sweep):
    overrides = [f"sweep={sweep}"]
    if sweep == "reweight":
        overrides.append("task=multi_reward")
    if sweep == "text":  # text perturbations on a digit task (composed with task=jsonl elsewhere)
        with pytest.raises(ConfigError, match=r"sweep\.perturbation must be one of"):
            build_cliff_config(_compose(overrides))
        return
    job = build_cliff_config(_compose(overrides))
    assert 0.0 in job.sweep.eps and job.sweep.n_seeds >= 1


@pytest.mark.parametrize(
    "algo",
    [n for n in _options("algo") if n in list_objectives() and get_objective(n).kind == "policy"],
)
def test_every_policy_algo_composes(algo):
    job = build_cliff_config(_compose([f"algo={algo}"]))
    assert job.experiment.algo.name == algo
    assert job.experiment.task.name == "many_answers"


@pytest.mark.parametrize(
    "launcher", ["basic", "joblib", "submitit_local", "submitit_slurm", *_options("hydra/launcher")]
)
def test_every_launcher_composes(launcher):
    register_cliff_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="policy_cliff",
            overrides=[f"hydra/launcher={launcher}"],
            return_hydra_config=True,
        )
    assert "_target_" in cfg.hydra.launcher
    if launcher == "parallel":
        assert cfg.hydra.launcher.n_jobs == 2
    if launcher in ("slurm", "slurm_gpu"):
        assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    if launcher == "slurm_gpu":
        assert cfg.hydra.launcher.gpus_per_node == 1


@pytest.mark.parametrize(
    ("override", "exc", "needle"),
    [
        ("sweep.epz=[0,1]", (ConfigCompositionException, ConfigKeyError), "epz"),
        ("sweep.n_seeds=abc", (ConfigCompositionException, ValidationError), "n_seeds"),
        ("trainer.rl.stepz=3", (ConfigCompositionException, ConfigKeyError), "stepz"),
    ],
)
def test_bad_key_or_type_fails_at_composition(override, exc, needle):
    with pytest.raises(exc) as info:
        _compose([override])
    text = str(info.value) + str(info.value.__cause__)
    assert needle in text


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("sweep.eps=[0.1,0.2]", "sweep.eps must be a list containing 0.0"),
        ("sweep.perturbation=bump", "sweep.perturbation must be one of"),
        ("trainer.rl.entropy_coef=-1", "trainer.rl.entropy_coef must be >= 0"),
        ("sweep.eps=[0.0,inf]", "sweep.eps[1]: must be a finite number, got inf"),
        ("trainer.rl.group_size=1", "trainer.rl.group_size: must be >= 2"),
        ("sweep.replay_objectives=[grpo,nope]", "sweep.replay_objectives must be registered"),
        ("algo=rpo", "algo.name: the policy-cliff job trains policy objectives"),
        ("trainer.rl.prompts_per_step=500", "trainer.rl.prompts_per_step: the job samples"),
    ],
)
def test_bad_value_fails_with_field_name(override, needle):
    with pytest.raises(ConfigError, match=None) as info:
        build_cliff_config(_compose([override]))
    assert needle in str(info.value)


# ------------------------------------------------------------------------------------------
# The compiled program: one tiny job, run once, shared by the tests below


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    job = build_cliff_config(_compose(TINY))
    assert job.sweep.n_seeds * len(job.sweep.eps) == 4
    setup = pc.Setup(job)
    program, _ = setup.program(job.experiment.algo.name, job.experiment.algo.config)
    out_dir = tmp_path_factory.mktemp("sweep")
    out = pc.run_sweep(job, out_dir, setup)
    return job, setup, program, out, out_dir


def test_run_sweep_writes_rows_and_summary(tiny):
    job, _, _, out, out_dir = tiny
    rows = out["rows"]
    assert len(rows) == job.sweep.n_seeds * len(job.sweep.eps)
    base = [r for r in rows if r["eps"] == 0.0]
    assert all(r["tv_exact"] == 0.0 and r["reward_delta"] == 0.0 for r in base)
    assert all(r["sens_tv"] is None for r in base)
    for r in rows:
        assert 0.0 <= r["tv_exact"] <= 1.0 and r["kl_exact"] >= -1e-6
        if r["eps"] > 0:
            assert r["tv_exact"] > 0 and r["sens_tv"] == pytest.approx(r["tv_exact"] / r["eps"])
    # every run records its final training metrics, the objective's aux metrics included
    for r in rows:
        for k in ("train_entropy", "train_clip_frac_low", "train_clip_frac_high"):
            assert k in r and np.isfinite(r[k]), k
        assert r["train_ratio_min"] <= 1.0 + 1e-6 <= r["train_ratio_max"] + 2e-6
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["n_runs"] == 4 and summary["noise_floor_tv"] > 0
    assert (out_dir / "results.jsonl").read_text().count("\n") == len(rows)


def test_vmapped_runs_equal_runs_one_by_one(tiny):
    job, setup, program, out, _ = tiny
    keys = jnp.repeat(pc.seed_keys(setup, job.sweep.n_seeds), 2, axis=0)
    eps = jnp.tile(jnp.asarray(job.sweep.eps, jnp.float32), job.sweep.n_seeds)
    params_v = out["params"]  # all 2 seeds x 2 eps from the job's one vmapped program
    train = make_rl_train(program)
    single = jax.jit(lambda p, k, e: train(p, k, None, setup.shift(e))[0])
    for r in range(4):
        params_1 = single(setup.init_params, keys[r], eps[r])
        for a, b in zip(jax.tree.leaves(params_1), jax.tree.leaves(params_v)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b[r]), rtol=1e-4, atol=1e-5)
    # Runs differ: training moved the parameters, and differently for different seeds.
    leaves = jax.tree.leaves(params_v)
    init = jax.tree.leaves(setup.init_params)
    assert any(not np.allclose(x[0], i) for x, i in zip(leaves, init))
    assert any(not np.allclose(x[0], x[2]) for x in leaves)


@pytest.mark.parametrize(("algo", "kl_beta"), [("grpo", None), ("cispo", 0.05), ("mhpo", 0.05)])
def test_kl_to_warm_start_traces(tiny, algo, kl_beta):
    """With a KL coefficient the update scores the warm-start policy (tracing only: cheap)."""
    job, setup, _, _, _ = tiny
    sweep = dataclasses.replace(job.sweep, kl_beta=kl_beta)
    setup.job = dataclasses.replace(job, sweep=sweep)
    try:
        program, beta = setup.program(algo, None)
    finally:
        setup.job = job
    assert beta == (0.04 if kl_beta is None else kl_beta) and program.needs_reference
    train = make_rl_train(program)
    params, metrics, _ = jax.eval_shape(
        lambda p, k: train(p, k, None, setup.shift(0.1)), setup.init_params, setup.k_runs
    )
    assert jax.tree.structure(params) == jax.tree.structure(setup.init_params)
    assert "kl_ref" in metrics and "kl_mean" in metrics


def test_sampled_tv_tracks_exact_tv(tiny):
    _, setup, _, out, _ = tiny

    # Four policies at growing distance from the warm start, measured with the job's own
    # compiled programs (same shapes as in the job: no new compile).
    def noisy(scale, i):
        return jax.tree.map(
            lambda x: x + scale * jax.random.normal(jax.random.key(i), x.shape, x.dtype),
            setup.init_params,
        )

    stack = jax.tree.map(
        lambda *xs: jnp.stack(xs), *[noisy(s, i) for i, s in enumerate([0.0, 0.1, 0.3, 1.0])]
    )
    base = jax.tree.map(lambda x: jnp.stack([x] * 4), setup.init_params)
    m = pc.measure(setup, stack, np.zeros(4, int), jax.random.key(3))
    exact = m["tv_exact"]
    assert exact[0] == 0.0 and exact[3] > exact[1] > 0.0
    tv_s, kl_s = setup._programs["sampled"](stack, base, jax.random.key(4))
    tv_s = np.asarray(tv_s.mean(1))
    # The sampled estimate is of the full-sequence TV, which the exact coarsening bounds below
    # (up to the "other" mass); 256 samples x 2 prompts: a few hundredths of noise.
    other = m["other_mass"] + np.asarray(m["_d_eval"][0, :, -1].mean())
    assert np.all(tv_s >= exact - 0.08) and np.all(tv_s <= exact + other + 0.08)
    assert float(kl_s[3].mean()) > float(kl_s[1].mean()) > -0.05
    del out


def test_replay_reproduces_the_recorded_run(tiny, tmp_path):
    job, setup, _, out, _ = tiny
    name = job.experiment.algo.name
    sweep = dataclasses.replace(job.sweep, mode="replay", replay_objectives=(name, "dr_grpo"))
    rep = pc.run_replay(dataclasses.replace(job, sweep=sweep), tmp_path, setup)
    # The recording run is seed 0 at ε = 0: replaying its objective on its rollouts at ε = 0
    # must give the very same parameters as that run in the sweep.
    e0 = job.sweep.eps.index(0.0)
    for a, b in zip(jax.tree.leaves(rep["params"][name]), jax.tree.leaves(out["params"])):
        np.testing.assert_allclose(np.asarray(a[e0]), np.asarray(b[e0]), rtol=1e-4, atol=1e-5)
    rows = rep["rows"]
    assert [r["objective"] for r in rows] == [name] * 2 + ["dr_grpo"] * 2
    assert all(r["perturbation"] == "random (replay)" for r in rows)
    cross = rep["summary"]["replay_cross_tv"]
    assert cross[name][name] == 0.0 and cross[name]["dr_grpo"] == cross["dr_grpo"][name]
    # At ε > 0 the objectives see the same data but weigh it differently (std-normalised vs
    # mean-centred advantages), so they end at different distances from their ε = 0 runs.
    moved = {r["objective"]: r["tv_train"] for r in rows if r["eps"] > 0}
    assert moved[name] > 0 and moved["dr_grpo"] > 0 and moved[name] != moved["dr_grpo"]
    program, _ = setup.program(name, job.experiment.algo.config)
    rollouts, tp = pc.load_rollouts(tmp_path / "rollouts", setup, program)
    np.testing.assert_array_equal(np.asarray(tp), np.asarray(setup.tp))
    assert rollouts.completions.shape[0] == job.experiment.trainer.rl.steps
    # Replaying the saved rollouts (replay_from) gives the same result without recording again.
    sweep2 = dataclasses.replace(
        sweep, replay_objectives=(name,), replay_from=str(tmp_path / "rollouts")
    )
    rep2 = pc.run_replay(dataclasses.replace(job, sweep=sweep2), tmp_path / "b", setup)
    assert not (tmp_path / "b" / "rollouts").exists()
    for a, b in zip(jax.tree.leaves(rep2["params"][name]), jax.tree.leaves(rep["params"][name])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_two_job_multirun_end_to_end(tmp_path):
    """`-m` with two jobs: each writes its rows; the callback writes the CSV, plots, report."""
    sweep_dir = tmp_path / "mr"
    cmd = [
        sys.executable,
        "-m",
        "cliffjax.experiments.policy_cliff",
        "-m",
        "sweep.perturbation=ties,random",
        *[o for o in TINY if not o.startswith(("sweep.perturbation", "sweep.n_eval_samples"))],
        "sweep.n_eval_samples=8",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    env = {**os.environ, "PYTHONPATH": str(CONF.parent)}
    env["XLA_FLAGS"] = ""  # one CPU device, as a user's run
    proc = subprocess.run(
        cmd, cwd=CONF.parent, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"[report] {sweep_dir / 'report.md'}" in proc.stdout
    for job in ("0", "1"):
        assert (sweep_dir / job / "results.jsonl").read_text().count("\n") == 4
    with (sweep_dir / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and {r["perturbation"] for r in rows} == {"ties", "random"}
    assert all(float(r["train_clip_frac_high"]) >= 0 for r in rows)  # aux metrics in the CSV
    diagnostics = (sweep_dir / "report.md").read_text().split("## Objective diagnostics")[1]
    assert "| clip low | clip high | ratio min | ratio max |" in diagnostics
    assert (sweep_dir / "distance_vs_eps.png").stat().st_size > 1000
    # The second job reused the first job's warm start.
    summaries = [json.loads((sweep_dir / j / "summary.json").read_text()) for j in ("0", "1")]
    assert [s["warm_start_cached"] for s in summaries] == [False, True]
