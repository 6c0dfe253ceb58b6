"""Sensitivity job: the slope of the reward→policy map by forward-mode AD through training.

    python -m cliffjax.experiments.sensitivity                                   # one job
    python -m cliffjax.experiments.sensitivity -m algo=grpo,mhpo trainer.rl.entropy_coef=0,0.05
    python -m cliffjax.experiments.sensitivity sweep.mode=replay                 # fixed data

Same config as the policy-cliff job (``conf/sensitivity.yaml`` extends
``conf/policy_cliff.yaml``: the ``algo``, ``task``, ``model``, ``trainer`` and ``sweep`` groups
and their validation). One job

1. builds the job's setup (warm start, fixed training prompts, answer set, δ) exactly as a
   policy-cliff job does (``cliffjax.experiments.policy_cliff.Setup``);
2. trains ``sweep.n_seeds`` runs at ε = 0 with the tangent of ε carried through every step
   (``cliffjax.analysis.sensitivity.make_sensitivity``: ``jax.jvp`` of the in-graph driver,
   vmapped over seeds), and, for the cost, the same runs without it;
   with ``sweep.mode=replay`` every seed's run replays the rollouts the seed-0 run recorded,
   so the derivative is exact for those data (else it is the pathwise derivative given each
   run's samples, docs/sensitivity.md);
3. measures per seed the first-order slopes of the final policy on held-out and training
   prompts: ``tv_slope`` (d TV(π_ε, π_0)/dε at 0), ``kl_curvature``, ``reward_slope``,
   ``delta_slope_train`` (the tie-breaker shift rate), next to the soft-optimal policy's
   Lipschitz bound ``‖δ‖∞ / (2α)`` when an entropy bonus α is on (arXiv 2507.20150 Prop. 4.7
   with γ = 0: a bound for the regularized *optimum*, shown as a reference);
   and the per-token slopes ``d log π(y_t | x, y_<t)/dε`` of each seed's greedy completion of
   every held-out prompt (``logp_slopes.npz``; per-seed summaries ``seq_logp_slope``,
   ``logp_slope_rms``, ``logp_slope_absmax``);
4. runs the finite differences over ``sweep.eps`` (``results.jsonl``): the policy-cliff
   sweep (``run_sweep``, fresh sampling with common random numbers), or in replay mode the
   seed-0 run replayed on the same recorded rollouts at every ε (``run_replay``), where the
   slope is the exact limit of TV(ε)/ε;
5. writes ``sensitivity.jsonl`` (one row per seed), ``sensitivity_summary.json`` (cost: time
   and compiled memory of the plain and the differentiated runs; ``fd_over_slope``: measured
   TV(ε)/ε over the slope at each ε) and ``derivative_vs_fd.png``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from omegaconf import DictConfig

from cliffjax.analysis.sensitivity import distribution_slopes, logp_slope, make_sensitivity
from cliffjax.experiments import report
from cliffjax.experiments.app import hydra_app
from cliffjax.experiments.cliff_config import (
    CliffJobConfig,
    register_cliff_configs,
)
from cliffjax.experiments.policy_cliff import (
    Setup,
    _warm_start_dir,
    record_rollouts,
    run_replay,
    run_sweep,
    seed_keys,
    start_job,
)
from cliffjax.tasks.evaluate import greedy_rewards
from cliffjax.training.rl import make_rl_train

SENSITIVITY_FILE = "sensitivity.jsonl"
LOGP_FILE = "logp_slopes.npz"


def _memory_bytes(compiled: Any) -> int | None:
    try:
        m = compiled.memory_analysis()
        return int(m.temp_size_in_bytes + m.output_size_in_bytes + m.argument_size_in_bytes)
    except Exception:  # not every backend reports it
        return None


def lipschitz_bound(setup: Setup, entropy_coef: float) -> float | None:
    """``‖δ‖∞ / (2α)``: the soft-optimal policy's TV slope bound (None without entropy)."""
    if entropy_coef <= 0:
        return None
    return float(jnp.max(jnp.abs(setup.delta_train))) / (2.0 * entropy_coef)


def greedy_logp_slopes(setup: Setup, params: Any, tangent: Any) -> dict[str, jax.Array]:
    """Per-token ``d log π(y_t | x, y_<t)/dε`` of each seed's greedy completion ``y`` of every
    held-out prompt ``x`` under its final policy: ``{"completion", "mask", "logp", "d_logp"}``,
    each ``[seeds, n_eval, N]`` (``d_logp`` is 0 where ``mask`` is 0)."""

    @jax.jit
    @jax.vmap
    def one(p, t):
        _, _, completion, mask = greedy_rewards(setup.graphdef, p, setup.task, setup.ep, setup.em)
        logp, d_logp = logp_slope(setup.graphdef, p, t, setup.ep, completion)
        m = mask.astype(jnp.float32)
        return {"completion": completion, "mask": mask, "logp": logp * m, "d_logp": d_logp * m}

    return one(params, tangent)


def greedy_slope_columns(greedy: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Per-seed summaries of :func:`greedy_logp_slopes`: ``seq_logp_slope`` (mean over prompts
    of ``d log π(y|x)/dε``, the whole greedy completion), ``logp_slope_rms`` and
    ``logp_slope_absmax`` (over the real tokens)."""
    m = greedy["mask"].astype(jnp.float32)
    d = greedy["d_logp"]
    n = jnp.maximum(m.sum((1, 2)), 1.0)
    return {
        "seq_logp_slope": d.sum(-1).mean(-1),
        "logp_slope_rms": jnp.sqrt((d**2).sum((1, 2)) / n),
        "logp_slope_absmax": jnp.abs(d).max((1, 2)),
    }


def fd_over_slope(
    rows: list[dict[str, Any]], fd_rows: list[dict[str, Any]], seed0_only: bool = False
) -> dict[str, float]:
    """``{ε: mean TV(ε)/ε ÷ mean dTV/dε}`` on the held-out prompts, for every ε > 0 of the
    finite-difference rows (only seed 0 on both sides with ``seed0_only``: replay mode, where
    the finite differences replay seed 0's data). Ratios near 1 at small ε: the run responds
    linearly at that scale."""
    pick = [r for r in rows if not seed0_only or r["seed"] == 0]
    slope = float(np.mean([r["tv_slope"] for r in pick]))
    out = {}
    for e in sorted({r["eps"] for r in fd_rows if r["eps"] > 0}):
        fd = [r["tv_exact"] / e for r in fd_rows if r["eps"] == e]
        out[f"{e:g}"] = float(np.mean(fd)) / slope if slope > 0 else float("nan")
    return out


def run_sensitivity(
    job: CliffJobConfig, out_dir: Path, setup: Setup | None = None
) -> dict[str, Any]:
    """The whole job (module docstring); returns ``{"rows", "summary", "sweep"}``."""
    t_start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    setup = setup or Setup(job, _warm_start_dir())
    exp, sw = job.experiment, job.sweep
    program, beta = setup.program(exp.algo.name, exp.algo.config)
    n_s = sw.n_seeds
    keys = seed_keys(setup, n_s)
    replay = sw.mode == "replay"
    records = record_rollouts(setup, program) if replay else None

    # Plain runs of the same seeds (the cost baseline).
    train = make_rl_train(program)

    def plain_one(key):
        return train(setup.init_params, key, None, setup.shift(0.0), records)[0]

    plain = jax.jit(jax.vmap(plain_one)).lower(keys).compile()
    t0 = time.perf_counter()
    jax.block_until_ready(plain(keys))
    plain_s = time.perf_counter() - t0

    sens = make_sensitivity(train)

    def sens_one(key):
        s = sens(setup.init_params, key, 0.0, setup.pert, None, records)
        return s.params, s.tangent, s.metrics_tangent

    t0 = time.perf_counter()
    differentiated = jax.jit(jax.vmap(sens_one)).lower(keys).compile()
    jvp_compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    params, tangent, d_metrics = differentiated(keys)
    jax.block_until_ready(tangent)
    jvp_s = time.perf_counter() - t0

    prompts = jnp.concatenate([setup.ep, setup.tp])
    n_eval = setup.ep.shape[0]

    @jax.jit
    @jax.vmap
    def slopes(p, t):
        return distribution_slopes(setup.graphdef, p, t, prompts, setup.cand, setup.cmask)

    s = slopes(params, tangent)
    greedy = greedy_logp_slopes(setup, params, tangent)
    d_eval, d_train = s.d_dist[:, :n_eval, :-1], s.d_dist[:, n_eval:, :-1]
    out = {
        "tv_slope": s.tv_slope[:, :n_eval].mean(1),
        "tv_slope_train": s.tv_slope[:, n_eval:].mean(1),
        "kl_curvature": s.kl_curvature[:, :n_eval].mean(1),
        "kl_curvature_train": s.kl_curvature[:, n_eval:].mean(1),
        "reward_slope": jnp.sum(d_eval * setup.r_eval[None], -1).mean(1),
        "reward_slope_train": jnp.sum(d_train * setup.r_train[None], -1).mean(1),
        "delta_slope_train": jnp.sum(d_train * setup.delta_train[None], -1).mean(1),
        "train_reward_slope": d_metrics["reward_mean"][:, -1],
        **greedy_slope_columns(greedy),
    }
    out = {k: np.asarray(v) for k, v in out.items()}
    alpha = exp.trainer.rl.entropy_coef
    bound = lipschitz_bound(setup, alpha)
    common = {
        "objective": exp.algo.name,
        "task": exp.task.name,
        "entropy_coef": alpha,
        "kl_beta": beta,
        "perturbation": sw.perturbation + (" (replay)" if replay else ""),
        "derivative": "exact for replayed data" if replay else "pathwise given the samples",
        "lipschitz_bound": bound,
    }
    rows = [{**common, "seed": i, **{k: float(v[i]) for k, v in out.items()}} for i in range(n_s)]
    with (out_dir / SENSITIVITY_FILE).open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")

    np.savez(out_dir / LOGP_FILE, **{k: np.asarray(v) for k, v in greedy.items()})

    # Finite differences over sweep.eps (results.jsonl), for the comparison: fresh sampling
    # with common random numbers, or, in replay mode, the seed-0 run on the same rollouts the
    # tangent runs replayed (then the slope is the exact limit of TV(ε)/ε as ε → 0).
    if replay:
        sweep = run_replay(job, out_dir, setup, rollouts=records, objectives=(exp.algo.name,))
    else:
        sweep = run_sweep(job, out_dir, setup)
    summary = {
        "objective": exp.algo.name,
        "n_seeds": n_s,
        "rl_steps": exp.trainer.rl.steps,
        "plain_s": plain_s,
        "jvp_s": jvp_s,
        "jvp_over_plain": jvp_s / max(plain_s, 1e-9),
        "jvp_compile_s": jvp_compile_s,
        "plain_bytes": _memory_bytes(plain),
        "jvp_bytes": _memory_bytes(differentiated),
        "wall_s": time.perf_counter() - t_start,
    }
    if summary["plain_bytes"] and summary["jvp_bytes"]:
        summary["jvp_bytes_over_plain"] = summary["jvp_bytes"] / summary["plain_bytes"]
    summary["fd_over_slope"] = fd_over_slope(rows, sweep["rows"], seed0_only=replay)
    (out_dir / "sensitivity_summary.json").write_text(json.dumps(summary, indent=2))
    report.plot_slope_vs_fd(rows, report.summarize(sweep["rows"]), out_dir / "derivative_vs_fd.png")
    return {"rows": rows, "summary": summary, "sweep": sweep}


register_cliff_configs()


@hydra_app("sensitivity")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (``python -m cliffjax.experiments.sensitivity``)."""
    job, out_dir = start_job(cfg, text_ok=False)
    result = run_sensitivity(job, out_dir)
    s = result["summary"]
    rows = result["rows"]
    mean = lambda k: float(np.mean([r[k] for r in rows]))
    print(
        f"{rows[0]['objective']}: dTV/dε = {mean('tv_slope'):.4g} (held-out), "
        f"{mean('tv_slope_train'):.4g} (train); d E_π δ/dε = {mean('delta_slope_train'):.4g}; "
        f"bound {rows[0]['lipschitz_bound']}"
    )
    print(
        f"cost: differentiated {s['jvp_s']:.2f} s vs plain {s['plain_s']:.2f} s "
        f"({s['jvp_over_plain']:.2f}x) for {s['n_seeds']} runs"
    )
    ratios = ", ".join(f"ε={e}: {r:.3g}" for e, r in s["fd_over_slope"].items())
    print(f"finite-difference TV(ε)/ε over the slope: {ratios}")
    print(
        f"greedy completions: d log π(y|x)/dε = {mean('seq_logp_slope'):.4g}, per-token rms "
        f"{mean('logp_slope_rms'):.4g}"
    )
    print(f"results: {out_dir / SENSITIVITY_FILE}, per-token slopes: {out_dir / LOGP_FILE}")


if __name__ == "__main__":
    main()
