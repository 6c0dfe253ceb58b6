"""Policy-cliff sweep job: how far does the trained policy move when the reward moves by ε·δ?

    python -m cliffjax.experiments.policy_cliff                                  # one job (conf/policy_cliff.yaml)
    python -m cliffjax.experiments.policy_cliff -m algo=grpo,dr_grpo,mhpo sweep.entropy_coef=0,0.1
    python -m cliffjax.experiments.policy_cliff sweep.mode=replay                # rollout replay
    python -m cliffjax.experiments.report multirun/policy_cliff/<date>/<time>    # gather a multirun

One job = one objective, task, model and regularization setting. It

1. warm-starts a policy with supervised training on the task (one ``lax.scan``, seed ``seed``);
2. builds a fixed training prompt set, the answer set ``A_L`` and the perturbation δ
   (``cliffjax.experiments.cliff_core``);
3. trains ``n_seeds × len(eps)`` RL runs from that same initialization in **one compiled,
   vmapped program** (purejaxrl-style); runs of one seed share all PRNG keys, so only ε
   differs between them;
4. measures, for every run against the ε = 0 run of the same seed: exact sequence-level TV and
   KL on held-out prompts (and on the training prompts), the sampled TV/KL estimates, the
   change in exact expected reward, and the sensitivity TV/ε; plus the seed noise floor (mean
   TV between seeds at ε = 0);
5. writes ``results.jsonl`` (one row per run) and ``summary.json`` (job facts, timings) in its
   Hydra job directory, for ``cliffjax.experiments.report``.

Settings that change shapes or objectives (algo, model, task, steps, entropy/KL coefficients,
which are compile-time constants here) are separate jobs of a Hydra multirun; see
docs/sweeps.md.

Replay mode (``sweep.mode=replay``): record the rollouts of one run (seed 0, ε = 0, the job's
``algo``) into ``rollouts.npz``, or load ``sweep.replay_from``; then train every objective of
``sweep.replay_objectives`` on exactly those rollouts at every ε (vmapped over ε) and report
per-objective rows (perturbation label ``"<kind> (replay)"``) and the cross-objective TV matrix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import jax
import jax.numpy as jnp
import numpy as np
import optax
from omegaconf import DictConfig

from cliffjax.experiments.cliff_config import (
    CliffJobConfig,
    build_cliff_config,
    register_cliff_configs,
)
from cliffjax.experiments.cliff_core import (
    RolloutRecord,
    TrainSpec,
    answer_candidates,
    answer_distribution,
    kl_categorical,
    make_cliff_train,
    make_perturbation,
    make_replay_train,
    objective_has_kl,
    sampled_distances,
    sampling_config,
    tv_distance,
)
from cliffjax.experiments.config import ConfigError, make_task
from cliffjax.models.policy import make_policy
from cliffjax.objectives import get_objective
from cliffjax.training.config import SFTConfig
from cliffjax.training.sft import sequence_nll
from cliffjax.training.state import make_optimizer

Array = jax.Array
PyTree = Any


# --------------------------------------------------------------------------------------------
# Job pieces
# --------------------------------------------------------------------------------------------


def warm_start(
    graphdef: Any, params: PyTree, task: Any, sft: SFTConfig, key: Array
) -> tuple[PyTree, float]:
    """Supervised warm start as one compiled ``lax.scan``; returns ``(params, final loss)``.

    Next-token cross-entropy on ``task.sft_batch`` (``cliffjax.training.sft.sequence_nll``) with
    the optimizer of ``sft``. Every run of the job starts from its result.
    """
    if sft.steps == 0:
        return params, float("nan")
    tx = make_optimizer(sft.optim, sft.steps)

    def loss_fn(p, tokens, mask):
        nll, n, _ = sequence_nll(graphdef, p, tokens, mask)
        return nll / jnp.maximum(n, 1.0)

    @jax.jit
    def run(params, key):
        def body(carry, k):
            p, o = carry
            tokens, mask = task.sft_batch(k, sft.batch_size)
            loss, grads = jax.value_and_grad(loss_fn)(p, tokens, mask)
            updates, o = tx.update(grads, o, p)
            return (optax.apply_updates(p, updates), o), loss

        (p, _), losses = jax.lax.scan(
            body, (params, tx.init(params)), jax.random.split(key, sft.steps)
        )
        return p, losses[-1]

    params, loss = run(params, key)
    return params, float(loss)


def answer_length(task: Any, requested: int) -> int:
    """L of the answer set: ``requested`` if > 0, else read from the task's config."""
    if requested > 0:
        return requested
    cfg = getattr(task, "config", None)
    if hasattr(cfg, "max_digits"):
        return int(cfg.max_digits)
    if hasattr(cfg, "n_digits"):
        return int(cfg.n_digits) + 1  # a sum of two n-digit numbers has up to n + 1 digits
    raise ConfigError("sweep.max_digits: cannot infer the answer length of this task; set it")


def prompt_sets(
    task: Any, n_train: int, n_eval: int, key: Array
) -> tuple[Array, dict, Array, dict]:
    """Fixed training prompts (distinct when the task enumerates them) and held-out prompts."""
    if hasattr(task, "train_pairs") and hasattr(task, "prompts_for"):
        pairs = np.asarray(task.train_pairs)
        if n_train and n_train < len(pairs):
            pairs = pairs[np.asarray(jax.random.permutation(key, len(pairs))[:n_train])]
        tp, tm = task.prompts_for(jnp.asarray(pairs[:, 0]), jnp.asarray(pairs[:, 1]))
    else:
        tp, tm = task.train_prompts(key, n_train or 32)
    ep, em = task.eval_set()
    if n_eval and n_eval < ep.shape[0]:
        ep, em = ep[:n_eval], jax.tree.map(lambda x: x[:n_eval], em)
    return tp, dict(tm), ep, dict(em)


def candidate_rewards(
    task: Any, prompts: Array, meta: dict, cand: Array, cmask: Array
) -> tuple[Array, dict]:
    """Task rewards ``[n, A]`` of every answer for every prompt, and the component names."""
    n, a = prompts.shape[0], cand.shape[0]

    @jax.jit  # one compile instead of one per eager op
    def rewards(meta, cand, cmask):
        rep = jax.tree.map(lambda x: jnp.repeat(x, a, axis=0), meta)
        r, comps = task.reward(jnp.tile(cand, (n, 1)), jnp.tile(cmask, (n, 1)), rep)
        return r.reshape(n, a).astype(jnp.float32), {k: v.reshape(n, a) for k, v in comps.items()}

    return rewards(meta, cand, cmask)


def objective_config(name: str, base: Any, kl_beta: float | None) -> tuple[Any, float]:
    """The objective config with the sweep's KL coefficient; returns ``(cfg, effective β)``.

    With ``kl_beta=None`` the objective keeps its own ``beta`` (0 if it has none). Otherwise
    ``beta`` is set to ``kl_beta`` when the objective has that field; else the job adds its own
    k3 KL-to-init term with that coefficient (``cliffjax.experiments.cliff_core.make_update_fn``).
    """
    cfg = base if base is not None else get_objective(name).default_config
    if kl_beta is None:
        return cfg, float(getattr(cfg, "beta", 0.0) or 0.0)
    if objective_has_kl(cfg):
        cfg = dataclasses.replace(cfg, beta=float(kl_beta))
    return cfg, float(kl_beta)


def _job_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def _warm_start_dir() -> Path | None:
    """``<sweep dir>/warm_start`` in a multirun (its jobs share the warm start), else ``None``."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    return Path(hc.sweep.dir) / "warm_start" if hc.mode == RunMode.MULTIRUN else None


def save_params(path: Path, params: PyTree, loss: float) -> None:
    """Write the leaves of ``params`` to ``path`` atomically (parallel jobs may race)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    leaves = {f"p{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(params))}
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, loss=np.float64(loss), **leaves)
    os.replace(tmp, path)


def load_params(path: Path, like: PyTree) -> tuple[PyTree, float]:
    """Inverse of :func:`save_params`; ``like`` gives the tree structure and dtypes."""
    leaves, treedef = jax.tree.flatten(like)
    with np.load(path) as z:
        new = [jnp.asarray(z[f"p{i}"], dtype=x.dtype) for i, x in enumerate(leaves)]
        return jax.tree.unflatten(treedef, new), float(z["loss"])


def _overrides() -> str:
    from hydra.core.hydra_config import HydraConfig

    try:
        return " ".join(HydraConfig.get().overrides.task)
    except ValueError:
        return ""


class Setup:
    """Everything a job computes before training (shared by sweep and replay modes).

    ``warm_start_dir``: where the jobs of a multirun share their warm-start parameters (keyed
    by a hash of seed, model, task and SFT settings); ``None`` = always train it.
    """

    def __init__(self, job: CliffJobConfig, warm_start_dir: str | Path | None = None) -> None:
        exp, sw = job.experiment, job.sweep
        self.job = job
        self._programs: dict[Any, Any] = {}  # compiled programs, reused across calls
        self.task = make_task(exp.task)
        tok = self.task.tokenizer
        k_model, k_sft, k_prompts, k_pert, self.k_runs, self.k_eval = jax.random.split(
            jax.random.key(exp.seed), 6
        )
        t0 = time.perf_counter()
        self.graphdef, params = make_policy(exp.model, k_model)
        cache = None
        if warm_start_dir is not None:
            ident = repr((exp.seed, exp.model, exp.task, exp.trainer.sft))
            cache = Path(warm_start_dir) / f"{hashlib.sha256(ident.encode()).hexdigest()[:16]}.npz"
        self.warm_start_cached = cache is not None and cache.exists()
        if self.warm_start_cached:
            self.init_params, self.sft_loss = load_params(cache, params)
        else:
            self.init_params, self.sft_loss = warm_start(
                self.graphdef, params, self.task, exp.trainer.sft, k_sft
            )
            if cache is not None:
                save_params(cache, self.init_params, self.sft_loss)
        jax.block_until_ready(self.init_params)
        self.sft_s = time.perf_counter() - t0
        self.max_digits = answer_length(self.task, sw.max_digits)
        self.tp, self.tm, self.ep, self.em = prompt_sets(
            self.task, sw.n_train_prompts, sw.n_eval_prompts, k_prompts
        )
        self.cand, self.cmask = answer_candidates(
            self.max_digits, self.task.max_new_tokens, tok.digit0_id, tok.eos_id, tok.pad_id
        )
        self.r_train, comps = candidate_rewards(self.task, self.tp, self.tm, self.cand, self.cmask)
        self.r_eval, _ = candidate_rewards(self.task, self.ep, self.em, self.cand, self.cmask)
        self.components = tuple(sorted(comps))
        self.pert = make_perturbation(
            sw.perturbation, k_pert, self.r_train, self.components, tuple(sw.reweight)
        )
        # The δ of each (train prompt, answer) for the E_π δ metric (reweight: Σ d_k c_k).
        delta = self.pert.table
        if self.pert.weights.shape[0]:
            delta = delta + sum(w * comps[n] for w, n in zip(self.pert.weights, self.components))
        self.delta_train = delta
        self.sampling = sampling_config(
            self.task, dataclasses.replace(exp.trainer.rl, temperature=1.0, top_k=0, top_p=1.0)
        )

    def train_spec(self, name: str, base_cfg: Any) -> tuple[TrainSpec, float]:
        sw = self.job.sweep
        obj_cfg, beta = objective_config(name, base_cfg, sw.kl_beta)
        spec = get_objective(name)
        kl_own = sw.kl_beta if (sw.kl_beta is not None and not objective_has_kl(obj_cfg)) else 0.0
        ts = TrainSpec(
            self.graphdef,
            self.task,
            spec,
            obj_cfg,
            self.job.experiment.trainer.rl,
            sw.entropy_coef,
            float(kl_own or 0.0),
            self.max_digits,
        )
        return ts, beta

    def sweep_program(self, ts: TrainSpec, n_runs: int) -> Callable:
        """The compiled ``vmap(train)`` over ``n_runs`` (key, ε) pairs (cached per setting).

        Call it as ``program(init_params, keys[n_runs], eps[n_runs], perturbation)``. The
        entropy coefficient is passed as data, so programs differing only in it are one
        program for JAX's compilation cache.
        """
        if (ts, n_runs) not in self._programs:
            train = make_cliff_train(ts, self.tp, self.tm)
            batched = jax.jit(jax.vmap(train, in_axes=(None, 0, 0, None, None)))
            keys = jnp.repeat(self.k_runs[None], n_runs, axis=0)
            eps = jnp.zeros((n_runs,), jnp.float32)
            c_h = jnp.float32(ts.entropy_coef)
            compiled = batched.lower(self.init_params, keys, eps, self.pert, c_h).compile()
            self._programs[(ts, n_runs)] = lambda p, k, e, d: compiled(p, k, e, d, c_h)
        return self._programs[(ts, n_runs)]

    def distributions(self, params: PyTree) -> tuple[Array, Array]:
        """Exact answer distributions of a stack of ``R`` policies, on the held-out and on the
        training prompts: ``([R, n_eval, A + 1], [R, n_train, A + 1])``, one compiled call."""
        prompts = jnp.concatenate([self.ep, self.tp])

        def one(p):
            return answer_distribution(self.graphdef, p, prompts, self.cand, self.cmask)

        if "dist" not in self._programs:
            self._programs["dist"] = jax.jit(jax.vmap(one))
        d = self._programs["dist"](params)
        n_eval = self.ep.shape[0]
        return d[:, :n_eval], d[:, n_eval:]


def measure(setup: Setup, params: PyTree, base_of: np.ndarray, key: Array) -> dict[str, np.ndarray]:
    """Per-run metrics of a stack of ``R`` final policies against their baselines ``base_of[R]``.

    Keys starting with ``_`` are not per-run (distribution tables, init values).
    """
    stacked = jax.tree.map(lambda x, i: jnp.concatenate([x, i[None]]), params, setup.init_params)
    d_eval, d_train = setup.distributions(stacked)  # [R + 1, n, A + 1]; the last is the init
    init_eval, init_train = d_eval[-1], d_train[-1]
    d_eval, d_train = d_eval[:-1], d_train[:-1]
    base = jnp.asarray(base_of)
    out = {
        "tv_exact": tv_distance(d_eval, d_eval[base]).mean(1),
        "kl_exact": kl_categorical(d_eval, d_eval[base]).mean(1),
        "tv_train": tv_distance(d_train, d_train[base]).mean(1),
        "kl_train": kl_categorical(d_train, d_train[base]).mean(1),
        "reward": jnp.sum(d_eval[..., :-1] * setup.r_eval[None], -1).mean(1),
        "reward_train": jnp.sum(d_train[..., :-1] * setup.r_train[None], -1).mean(1),
        "delta_mean_train": jnp.sum(d_train[..., :-1] * setup.delta_train[None], -1).mean(1),
        "tv_from_init_train": tv_distance(d_train, init_train[None]).mean(1),
        "other_mass": d_eval[..., -1].mean(1),
        "_init_reward": jnp.sum(init_eval[:, :-1] * setup.r_eval, -1).mean(),
        "_init_reward_train": jnp.sum(init_train[:, :-1] * setup.r_train, -1).mean(),
    }
    params_base = jax.tree.map(lambda x: x[base], params)
    n_samples = setup.job.sweep.n_eval_samples

    if "sampled" not in setup._programs:

        def one(p, q, k):
            return sampled_distances(setup.graphdef, p, q, setup.ep, k, setup.sampling, n_samples)

        setup._programs["sampled"] = jax.jit(jax.vmap(one, in_axes=(0, 0, None)))
    tv_s, kl_s = setup._programs["sampled"](params, params_base, key)
    out["tv_sampled"] = tv_s.mean(1)
    out["kl_sampled"] = kl_s.mean(1)
    out["reward_delta"] = out["reward"] - out["reward"][base]
    out["_d_eval"] = d_eval
    out["_d_train"] = d_train
    return {k: np.asarray(v) for k, v in out.items()}


def seed_keys(setup: Setup, n_seeds: int) -> Array:
    """The rollout key of each seed (shared by every ε of that seed)."""
    return jax.random.split(setup.k_runs, n_seeds)


def noise_floor(dist: np.ndarray, runs: list[int]) -> float:
    """Mean TV (over prompts, then over pairs) between the distributions of ``runs``."""
    pairs = list(itertools.combinations(runs, 2))
    if not pairs:
        return float("nan")
    return float(np.mean([0.5 * np.abs(dist[i] - dist[j]).sum(-1).mean() for i, j in pairs]))


def _row(common: dict, m: dict, r: int, eps: float, seed: int) -> dict:
    row = dict(common)
    row.update(eps=float(eps), seed=int(seed))
    for k, v in m.items():
        if not k.startswith("_"):
            row[k] = float(v[r])
    row["sens_tv"] = row["tv_exact"] / eps if eps > 0 else None
    row["sens_tv_train"] = row["tv_train"] / eps if eps > 0 else None
    return row


# --------------------------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------------------------


def run_sweep(job: CliffJobConfig, out_dir: Path, setup: Setup | None = None) -> dict[str, Any]:
    """Sweep mode: every seed × ε in one vmapped program; writes results and summary."""
    t_start = time.perf_counter()
    setup = setup or Setup(job, _warm_start_dir())
    exp, sw = job.experiment, job.sweep
    ts, beta = setup.train_spec(exp.algo.name, exp.algo.config)
    eps = list(sw.eps)
    n_e, n_s = len(eps), sw.n_seeds
    keys = jnp.repeat(seed_keys(setup, n_s), n_e, axis=0)  # run r = s * n_e + e
    eps_arr = jnp.tile(jnp.asarray(eps, jnp.float32), n_s)
    e0 = eps.index(0.0)
    base_of = np.asarray([(r // n_e) * n_e + e0 for r in range(n_s * n_e)])

    t0 = time.perf_counter()
    compiled = setup.sweep_program(ts, n_s * n_e)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    params, curves = compiled(setup.init_params, keys, eps_arr, setup.pert)
    jax.block_until_ready(params)
    train_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    m = measure(setup, params, base_of, setup.k_eval)
    eval_s = time.perf_counter() - t0
    common = {
        "objective": exp.algo.name,
        "task": exp.task.name,
        "entropy_coef": sw.entropy_coef,
        "kl_beta": beta,
        "perturbation": sw.perturbation,
    }
    rows = []
    curves = {k: np.asarray(v) for k, v in curves.items()}
    for r in range(n_s * n_e):
        row = _row(common, m, r, eps[r % n_e], r // n_e)
        row["final_train_reward"] = float(curves["reward"][r, -10:].mean())
        row["final_entropy"] = float(curves["entropy"][r, -10:].mean())
        rows.append(row)
    base_runs = [s * n_e + e0 for s in range(n_s)]
    summary = {
        "mode": "sweep",
        "overrides": _overrides(),
        "objective": exp.algo.name,
        "n_runs": n_s * n_e,
        "n_train_prompts": int(setup.tp.shape[0]),
        "n_eval_prompts": int(setup.ep.shape[0]),
        "n_answers": int(setup.cand.shape[0]),
        "noise_floor_tv": noise_floor(m["_d_eval"], base_runs),
        "noise_floor_tv_train": noise_floor(m["_d_train"], base_runs),
        "init_reward": float(m["_init_reward"]),
        "init_reward_train": float(m["_init_reward_train"]),
        "warm_start_cached": setup.warm_start_cached,
        "sft_loss": setup.sft_loss,
        "sft_s": setup.sft_s,
        "compile_s": compile_s,
        "train_s": train_s,
        "eval_s": eval_s,
        "wall_s": time.perf_counter() - t_start,
        "rl_steps": exp.trainer.rl.steps,
    }
    _write(out_dir, rows, summary)
    np.savez(out_dir / "curves.npz", eps=np.asarray(eps_arr), **curves)
    return {"rows": rows, "summary": summary, "params": params}


def run_replay(job: CliffJobConfig, out_dir: Path, setup: Setup | None = None) -> dict[str, Any]:
    """Replay mode: identical rollouts, several objectives, every ε (vmapped over ε)."""
    t_start = time.perf_counter()
    setup = setup or Setup(job, _warm_start_dir())
    exp, sw = job.experiment, job.sweep
    t0 = time.perf_counter()
    if sw.replay_from:
        rollouts, tp = load_rollouts(sw.replay_from)
        if tp.shape != setup.tp.shape or not np.array_equal(np.asarray(tp), np.asarray(setup.tp)):
            raise ConfigError(
                "sweep.replay_from: the recorded prompts differ from this job's prompt set"
            )
    else:
        ts, _ = setup.train_spec(exp.algo.name, exp.algo.config)
        train = make_cliff_train(ts, setup.tp, setup.tm)
        record = jax.jit(lambda p, k: train(p, k, 0.0, setup.pert, record=True))
        _, curves = record(setup.init_params, seed_keys(setup, job.sweep.n_seeds)[0])
        rollouts = curves["rollouts"]
        save_rollouts(out_dir / "rollouts.npz", rollouts, setup.tp)
    record_s = time.perf_counter() - t0
    eps = list(sw.eps)
    e0 = eps.index(0.0)
    eps_arr = jnp.asarray(eps, jnp.float32)
    base_of = np.full(len(eps), e0)
    rows, finals, timings, final_params = [], {}, {}, {}
    for name in sw.replay_objectives:
        t0 = time.perf_counter()
        base_cfg = exp.algo.config if name == exp.algo.name else None
        ts, beta = setup.train_spec(name, base_cfg)
        if ("replay", ts) not in setup._programs:  # compiled once per objective setting
            replay = make_replay_train(ts, setup.tp)
            setup._programs[("replay", ts)] = jax.jit(
                jax.vmap(replay, in_axes=(None, None, 0, None, None))
            )
        batched = setup._programs[("replay", ts)]
        key = seed_keys(setup, sw.n_seeds)[0]
        c_h = jnp.float32(sw.entropy_coef)
        params, curves = batched(setup.init_params, rollouts, eps_arr, key, c_h)
        m = measure(setup, params, base_of, setup.k_eval)
        common = {
            "objective": name,
            "task": exp.task.name,
            "entropy_coef": sw.entropy_coef,
            "kl_beta": beta,
            "perturbation": f"{sw.perturbation} (replay)",
        }
        for r, e in enumerate(eps):
            row = _row(common, m, r, e, 0)
            row["final_entropy"] = float(np.asarray(curves["entropy"])[r, -10:].mean())
            rows.append(row)
        finals[name] = m["_d_eval"][e0]
        final_params[name] = params
        timings[name] = time.perf_counter() - t0
    names = list(finals)
    cross = {
        a: {b: float(0.5 * np.abs(finals[a] - finals[b]).sum(-1).mean()) for b in names}
        for a in names
    }
    summary = {
        "mode": "replay",
        "overrides": _overrides(),
        "objective": exp.algo.name,
        "replay_objectives": names,
        "replay_cross_tv": cross,
        "n_runs": len(rows),
        "sft_s": setup.sft_s,
        "record_s": record_s,
        "replay_s": timings,
        "train_s": sum(timings.values()),
        "wall_s": time.perf_counter() - t_start,
    }
    _write(out_dir, rows, summary)
    print("cross-objective TV at ε=0 on identical rollouts (held-out prompts):")
    print("          " + " ".join(f"{n:>8s}" for n in names))
    for a in names:
        print(f"{a:>8s}  " + " ".join(f"{cross[a][b]:8.4f}" for b in names))
    return {"rows": rows, "summary": summary, "params": final_params}


def save_rollouts(path: Path, rollouts: RolloutRecord, train_prompts: Array) -> None:
    """Write recorded rollouts (``[steps, B, ...]`` per field) and the prompt set to ``path``."""
    arrays = {f: np.asarray(getattr(rollouts, f)) for f in RolloutRecord._fields}
    np.savez(path, train_prompts=np.asarray(train_prompts), **arrays)


def load_rollouts(path: str | Path) -> tuple[RolloutRecord, Array]:
    """Inverse of :func:`save_rollouts`."""
    with np.load(path) as z:
        rec = RolloutRecord(*(jnp.asarray(z[f]) for f in RolloutRecord._fields))
        return rec, jnp.asarray(z["train_prompts"])


def _write(out_dir: Path, rows: list[dict], summary: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "results.jsonl").open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))


def format_rows(rows: list[dict]) -> str:
    """A short per-ε table of one job (means over seeds) for the job's log."""
    by_eps: dict[float, list[dict]] = {}
    for r in rows:
        by_eps.setdefault((r["objective"], r["eps"]), []).append(r)
    lines = ["objective      eps     TV exact   KL exact   TV train   TV sampled  Δreward"]
    for (obj, e), rs in sorted(by_eps.items()):
        mean = lambda k, rs=rs: float(np.mean([x[k] for x in rs]))
        lines.append(
            f"{obj:12s} {e:7.3g}  {mean('tv_exact'):9.4f}  {mean('kl_exact'):9.4f}  "
            f"{mean('tv_train'):9.4f}  {mean('tv_sampled'):10.4f}  {mean('reward_delta'):+8.4f}"
        )
    return "\n".join(lines)


register_cliff_configs()


@hydra.main(config_path="../conf", config_name="policy_cliff", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (``python -m cliffjax.experiments.policy_cliff``)."""
    try:
        job = build_cliff_config(cfg)
    except ConfigError as e:
        print(f"invalid config: {e}", file=sys.stderr)
        sys.exit(2)
    out_dir = _job_dir()
    ws = _warm_start_dir()
    if ws is not None:
        # Jobs of a multirun share compiled programs that are identical (evaluation, and
        # training when only data such as δ differs) through JAX's persistent cache.
        jax.config.update("jax_compilation_cache_dir", str(ws.parent / ".jax_cache"))
    result = run_replay(job, out_dir) if job.sweep.mode == "replay" else run_sweep(job, out_dir)
    s = result["summary"]
    print(format_rows(result["rows"]))
    print(
        f"job wall {s['wall_s']:.1f} s (warm start {s['sft_s']:.1f} s, train {s['train_s']:.1f} s)"
    )
    print(f"results: {out_dir / 'results.jsonl'}")


if __name__ == "__main__":
    main()
