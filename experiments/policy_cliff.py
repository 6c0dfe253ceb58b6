"""Policy-cliff sweep job: how far does the trained policy move when the reward moves by ε·δ?

    python -m cliffjax.experiments.policy_cliff                                  # one job (conf/policy_cliff.yaml)
    python -m cliffjax.experiments.policy_cliff -m algo=grpo,dr_grpo,mhpo trainer.rl.entropy_coef=0,0.1
    python -m cliffjax.experiments.policy_cliff sweep.mode=replay                # rollout replay
    python -m cliffjax.experiments.report multirun/policy_cliff/<date>/<time>    # gather a multirun

One job = one objective, task, model and regularization setting. It

1. warm-starts a policy with supervised training on the task (the in-graph SFT driver
   ``cliffjax.training.sft.make_sft_train``, seed ``seed``);
2. builds a fixed training prompt set (``cliffjax.tasks.FixedPrompts``), the answer set
   ``A_L`` and the perturbation δ (``cliffjax.analysis``);
3. trains ``n_seeds × len(eps)`` RL runs from that same initialization in **one compiled,
   vmapped program**: the in-graph driver ``cliffjax.training.rl.make_rl_train`` of the one
   RL step the main job also runs, with the shift ``r + ε·δ`` as a traced argument; runs of
   one seed share all PRNG keys, so only ε differs between them;
4. measures, for every run against the ε = 0 run of the same seed: exact sequence-level TV and
   KL on held-out prompts (and on the training prompts), the sampled TV/KL estimates, the
   change in exact expected reward, and the sensitivity TV/ε; plus the seed noise floor (mean
   TV between seeds at ε = 0);
5. writes ``results.jsonl`` (one row per run: distances, and ``train_<metric>``, the final
   training metrics including the objective's aux metrics), ``curves.npz`` (every per-step
   metric of every run) and ``summary.json`` (job facts, timings) in its Hydra job
   directory, for ``cliffjax.experiments.report``.

Text tasks (``task=jsonl``, any model, e.g. ``model=hf``; ``sweep=text``) have no enumerable
answer set: their jobs (``cliffjax.experiments.policy_cliff_text``) measure distances between
the distributions of sampled final answers instead, with bootstrap intervals and a noise floor.

Settings that change shapes or objectives (algo, model, task, steps, entropy/KL coefficients,
which are compile-time constants here) are separate jobs of a Hydra multirun; see
docs/sweeps.md.

Replay mode (``sweep.mode=replay``): record the rollouts of one run (seed 0, ε = 0, the job's
``algo``) into ``rollouts/`` (orbax), or load ``sweep.replay_from``; then train every objective of
``sweep.replay_objectives`` on exactly those rollouts at every ε (vmapped over ε) and report
per-objective rows (perturbation label ``"<kind> (replay)"``) and the cross-objective TV matrix.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import jax
import jax.numpy as jnp
import numpy as np
from omegaconf import DictConfig

from cliffjax.analysis import (
    PerturbedReward,
    RewardShift,
    answer_candidates,
    answer_distribution,
    candidate_rewards,
    kl_categorical,
    make_perturbation,
    sampled_distances,
    tv_distance,
)
from cliffjax.experiments.app import hydra_app
from cliffjax.experiments.cliff_config import (
    CliffJobConfig,
    build_cliff_config,
    register_cliff_configs,
)
from cliffjax.experiments.config import ConfigError, make_task
from cliffjax.models.lora import fold_adapters
from cliffjax.models.policy import make_policy
from cliffjax.objectives import get_objective
from cliffjax.tasks.base import sampling_config
from cliffjax.tasks.wrappers import FixedPrompts
from cliffjax.training.program import RLProgram
from cliffjax.training.rl import make_rl_train
from cliffjax.training.rollout import RolloutRecord
from cliffjax.training.sft import make_sft_train
from cliffjax.training.trees import restore_tree, save_tree, tree_exists

Array = jax.Array
PyTree = Any

#: Per-step training metrics averaged over this many final steps into each result row.
FINAL_WINDOW: Final = 10


# --------------------------------------------------------------------------------------------
# Job pieces
# --------------------------------------------------------------------------------------------


def objective_config(name: str, base: Any, kl_beta: float | None) -> tuple[Any, float]:
    """The objective config with the sweep's KL coefficient; returns ``(cfg, effective β)``.

    With ``kl_beta=None`` the objective keeps its own coefficient (``spec.kl_field``);
    otherwise that field is set to ``kl_beta``. The reference is the warm-start policy.
    """
    spec = get_objective(name)
    cfg = base if base is not None else spec.default_config
    if kl_beta is not None:
        cfg = spec.with_kl_coef(cfg, kl_beta)
    return cfg, spec.kl_coef(cfg)


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


def _overrides() -> str:
    from hydra.core.hydra_config import HydraConfig

    try:
        return " ".join(HydraConfig.get().overrides.task)
    except ValueError:
        return ""


def warm_start(
    exp: Any,
    graphdef: Any,
    params: PyTree,
    task: Any,
    key: Array,
    warm_start_dir: str | Path | None,
) -> tuple[PyTree, float, bool]:
    """The supervised warm start of a job: ``(params, final SFT loss, whether it was cached)``.

    ``warm_start_dir``: where the jobs of a multirun share it (an orbax tree keyed by a hash
    of seed, model, task and SFT settings); ``None`` = always train it.
    """
    cache = None
    if warm_start_dir is not None:
        ident = repr((exp.seed, exp.model, exp.task, exp.trainer.sft))
        cache = Path(warm_start_dir) / hashlib.sha256(ident.encode()).hexdigest()[:16]
    cached = cache is not None and tree_exists(cache)
    like = {"params": params, "loss": jnp.zeros((), jnp.float32)}
    if cached:
        saved = restore_tree(cache, like)
    else:
        sft = exp.trainer.sft
        train_sft = jax.jit(make_sft_train(graphdef, task, sft))
        warm, metrics = train_sft(params, key)
        loss = metrics["loss"][-1] if sft.steps else jnp.float32(jnp.nan)
        saved = {"params": warm, "loss": jnp.asarray(loss, jnp.float32)}
        if cache is not None:
            save_tree(cache, saved)
    params = saved["params"]
    lora = getattr(exp.model, "lora", None)
    if lora is not None and lora.enabled and exp.trainer.sft.steps:
        # As in the main job: the warm start's adapters move into the base and restart at
        # B = 0, so the runs' KL reference (adapters off) is the warm-started policy.
        params = jax.jit(fold_adapters, static_argnums=1)(params, lora.scale)
    jax.block_until_ready(params)
    return params, float(saved["loss"]), cached


class Setup:
    """Everything a job computes before training (shared by sweep and replay modes).

    ``warm_start_dir``: where the jobs of a multirun share their warm-start parameters (an
    orbax tree keyed by a hash of seed, model, task and SFT settings); ``None`` = always
    train it.
    """

    def __init__(self, job: CliffJobConfig, warm_start_dir: str | Path | None = None) -> None:
        exp, sw = job.experiment, job.sweep
        self.job = job
        self._programs: dict[Any, Any] = {}  # compiled programs, reused across calls
        base = make_task(exp.task)
        tok = base.tokenizer
        k_model, k_sft, k_prompts, k_pert, self.k_runs, self.k_eval = jax.random.split(
            jax.random.key(exp.seed), 6
        )
        t0 = time.perf_counter()
        self.graphdef, params = make_policy(exp.model, k_model)
        self.init_params, self.sft_loss, self.warm_start_cached = warm_start(
            exp, self.graphdef, params, base, k_sft, warm_start_dir
        )
        self.sft_s = time.perf_counter() - t0
        self.max_digits = sw.max_digits or base.answer_digits
        self.tp, self.tm = base.train_prompt_set(k_prompts, sw.n_train_prompts)
        self.tm = dict(self.tm)
        self.task = FixedPrompts(base, self.tp, self.tm)
        self.ep, self.em = base.eval_set()
        if sw.n_eval_prompts and sw.n_eval_prompts < self.ep.shape[0]:
            n = sw.n_eval_prompts
            self.ep, self.em = self.ep[:n], jax.tree.map(lambda x: x[:n], dict(self.em))
        self.cand, self.cmask = answer_candidates(
            self.max_digits, base.max_new_tokens, tok.digit0_id, tok.eos_id, tok.pad_id
        )
        self.r_train, comps = candidate_rewards(base, self.tp, self.tm, self.cand, self.cmask)
        self.r_eval, _ = candidate_rewards(base, self.ep, self.em, self.cand, self.cmask)
        self.components = tuple(sorted(comps))
        self.pert = make_perturbation(
            sw.perturbation, k_pert, self.r_train, self.components, tuple(sw.reweight)
        )
        # The δ of each (train prompt, answer) for the E_π δ metric (reweight: Σ d_k c_k).
        delta = self.pert.table
        if self.pert.weights.shape[0]:
            delta = delta + sum(w * comps[n] for w, n in zip(self.pert.weights, self.components))
        self.delta_train = delta
        self.transform = PerturbedReward(self.max_digits, tok.digit0_id, tok.eos_id)
        # Distances are measured on the policy itself: temperature 1, no filtering.
        self.sampling = sampling_config(base)

    def program(self, name: str, base_cfg: Any) -> tuple[RLProgram, float]:
        """The RL program of objective ``name`` in this job, and its effective KL β."""
        obj_cfg, beta = objective_config(name, base_cfg, self.job.sweep.kl_beta)
        program = RLProgram(
            self.graphdef,
            self.task,
            get_objective(name),
            obj_cfg,
            self.job.experiment.trainer.rl,
            self.transform,
        )
        return program, beta

    def shift(self, eps: Array) -> RewardShift:
        """``r' = r + ε·δ`` with this job's δ."""
        return RewardShift(jnp.asarray(eps, jnp.float32), self.pert)

    def sweep_program(self, program: RLProgram, n_runs: int) -> Callable:
        """The compiled ``vmap(train)`` over ``n_runs`` (key, ε) pairs (cached per program).

        Call it as ``run(init_params, keys[n_runs], eps[n_runs]) -> (params, metrics)``, both
        with a leading run axis.
        """
        if (program, n_runs) not in self._programs:
            train = make_rl_train(program)

            def one(params, key, eps):
                final, metrics, _ = train(params, key, None, self.shift(eps))
                return final, metrics

            batched = jax.jit(jax.vmap(one, in_axes=(None, 0, 0)))
            keys = jnp.repeat(self.k_runs[None], n_runs, axis=0)
            eps = jnp.zeros((n_runs,), jnp.float32)
            self._programs[(program, n_runs)] = batched.lower(self.init_params, keys, eps).compile()
        return self._programs[(program, n_runs)]

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


def training_columns(curves: dict[str, np.ndarray], r: int) -> dict[str, float]:
    """``train_<metric>``: the mean over the last :data:`FINAL_WINDOW` steps of run ``r`` of
    every per-step training metric (rewards, entropy, loss, and the objective's aux metrics:
    clip fractions, ratio extremes, MHPO weights and hazard, DISPO regime fractions, ...)."""
    return {
        f"train_{k}": float(np.asarray(v)[r, -FINAL_WINDOW:].mean())
        for k, v in sorted(curves.items())
    }


# --------------------------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------------------------


def _common(setup: Setup, name: str, beta: float, label: str) -> dict[str, Any]:
    exp = setup.job.experiment
    return {
        "objective": name,
        "task": exp.task.name,
        "entropy_coef": exp.trainer.rl.entropy_coef,
        "kl_beta": beta,
        "perturbation": label,
    }


def run_sweep(job: CliffJobConfig, out_dir: Path, setup: Setup | None = None) -> dict[str, Any]:
    """Sweep mode: every seed × ε in one vmapped program; writes results and summary."""
    t_start = time.perf_counter()
    setup = setup or Setup(job, _warm_start_dir())
    exp, sw = job.experiment, job.sweep
    program, beta = setup.program(exp.algo.name, exp.algo.config)
    eps = list(sw.eps)
    n_e, n_s = len(eps), sw.n_seeds
    keys = jnp.repeat(seed_keys(setup, n_s), n_e, axis=0)  # run r = s * n_e + e
    eps_arr = jnp.tile(jnp.asarray(eps, jnp.float32), n_s)
    e0 = eps.index(0.0)
    base_of = np.asarray([(r // n_e) * n_e + e0 for r in range(n_s * n_e)])

    t0 = time.perf_counter()
    compiled = setup.sweep_program(program, n_s * n_e)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    params, curves = compiled(setup.init_params, keys, eps_arr)
    jax.block_until_ready(params)
    train_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    m = measure(setup, params, base_of, setup.k_eval)
    eval_s = time.perf_counter() - t0
    common = _common(setup, exp.algo.name, beta, sw.perturbation)
    curves = {k: np.asarray(v) for k, v in curves.items()}
    rows = []
    for r in range(n_s * n_e):
        row = _row(common, m, r, eps[r % n_e], r // n_e)
        row.update(training_columns(curves, r))
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


def record_rollouts(setup: Setup, program: RLProgram) -> RolloutRecord:
    """The rollouts of the recording run (seed 0, ε = 0), stacked ``[steps, B, ...]``."""
    train = make_rl_train(program, record=True)

    @jax.jit
    def record(params, key):
        return train(params, key, None, setup.shift(0.0))[2]

    return record(setup.init_params, seed_keys(setup, setup.job.sweep.n_seeds)[0])


def run_replay(
    job: CliffJobConfig,
    out_dir: Path,
    setup: Setup | None = None,
    rollouts: RolloutRecord | None = None,
    objectives: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Replay mode: identical rollouts, several objectives, every ε (vmapped over ε).

    ``rollouts``: already recorded rollouts (default: ``sweep.replay_from``, else record them
    with the job's ``algo``); ``objectives``: the objectives to replay (default
    ``sweep.replay_objectives``).
    """
    t_start = time.perf_counter()
    setup = setup or Setup(job, _warm_start_dir())
    exp, sw = job.experiment, job.sweep
    recording, _ = setup.program(exp.algo.name, exp.algo.config)
    t0 = time.perf_counter()
    if rollouts is None and sw.replay_from:
        rollouts, tp = load_rollouts(sw.replay_from, setup, recording)
        if tp.shape != setup.tp.shape or not np.array_equal(np.asarray(tp), np.asarray(setup.tp)):
            raise ConfigError(
                "sweep.replay_from: the recorded prompts differ from this job's prompt set"
            )
    elif rollouts is None:
        rollouts = record_rollouts(setup, recording)
        save_rollouts(out_dir / "rollouts", rollouts, setup.tp)
    record_s = time.perf_counter() - t0
    eps = list(sw.eps)
    e0 = eps.index(0.0)
    eps_arr = jnp.asarray(eps, jnp.float32)
    base_of = np.full(len(eps), e0)
    key = seed_keys(setup, sw.n_seeds)[0]
    rows, finals, timings, final_params = [], {}, {}, {}
    for name in sw.replay_objectives if objectives is None else objectives:
        t0 = time.perf_counter()
        base_cfg = exp.algo.config if name == exp.algo.name else None
        program, beta = setup.program(name, base_cfg)
        if ("replay", program) not in setup._programs:  # compiled once per objective setting
            train = make_rl_train(program)

            def one(params, rec, eps, train=train):
                final, metrics, _ = train(params, key, None, setup.shift(eps), rec)
                return final, metrics

            setup._programs[("replay", program)] = jax.jit(jax.vmap(one, in_axes=(None, None, 0)))
        params, curves = setup._programs[("replay", program)](setup.init_params, rollouts, eps_arr)
        m = measure(setup, params, base_of, setup.k_eval)
        common = _common(setup, name, beta, f"{sw.perturbation} (replay)")
        curves = {k: np.asarray(v) for k, v in curves.items()}
        for r, e in enumerate(eps):
            row = _row(common, m, r, e, 0)
            row.update(training_columns(curves, r))
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
    """Write recorded rollouts (``[steps, B, ...]`` per field) and the prompt set (orbax)."""
    save_tree(path, {"rollouts": rollouts._asdict(), "train_prompts": train_prompts})


def load_rollouts(
    path: str | Path, setup: Setup, program: RLProgram
) -> tuple[RolloutRecord, Array]:
    """Inverse of :func:`save_rollouts` for this job's shapes (those ``program`` records)."""
    like = jax.eval_shape(lambda: record_rollouts(setup, program))
    tree = restore_tree(path, {"rollouts": like._asdict(), "train_prompts": setup.tp})
    return RolloutRecord(**tree["rollouts"]), tree["train_prompts"]


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


def start_job(cfg: DictConfig, text_ok: bool = True) -> tuple[CliffJobConfig, Path]:
    """What every job app does first: quiet library logs, validate the config (exit 2 with
    one message if it is invalid; ``text_ok=False`` refuses text tasks), find the job
    directory, and in a multirun share compiled programs between the jobs through JAX's
    persistent cache (evaluation, and training when only data such as δ differs, compile
    identically)."""
    for name in ("absl", "jax", "orbax"):  # Hydra's job logging is INFO; keep the log clean
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        job = build_cliff_config(cfg, text_ok=text_ok)
    except ConfigError as e:
        print(f"invalid config: {e}", file=sys.stderr)
        sys.exit(2)
    ws = _warm_start_dir()
    if ws is not None:
        jax.config.update("jax_compilation_cache_dir", str(ws.parent / ".jax_cache"))
    return job, _job_dir()


register_cliff_configs()


@hydra_app("policy_cliff")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (``python -m cliffjax.experiments.policy_cliff``)."""
    job, out_dir = start_job(cfg)
    if job.text:
        from cliffjax.experiments import policy_cliff_text

        policy_cliff_text.main_text(job, out_dir, _warm_start_dir(), _overrides())
        return
    result = run_replay(job, out_dir) if job.sweep.mode == "replay" else run_sweep(job, out_dir)
    s = result["summary"]
    print(format_rows(result["rows"]))
    print(
        f"job wall {s['wall_s']:.1f} s (warm start {s['sft_s']:.1f} s, train {s['train_s']:.1f} s)"
    )
    print(f"results: {out_dir / 'results.jsonl'}")


if __name__ == "__main__":
    main()
