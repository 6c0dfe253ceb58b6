"""The policy-cliff sweep on a text task: distances between *sampled final answers*.

    python -m cliffjax.experiments.policy_cliff sweep=text model=hf model.path=CKPT \\
        task=jsonl task.path=gsm8k/train.jsonl task.eval_path=gsm8k/test.jsonl

With a real vocabulary the completions of a prompt cannot be enumerated (the digit tasks'
exact distributions over ``A_L``), so a text job compares policies through the distribution
of a statistic of their sampled completions (``cliffjax.analysis.sampled_answers``):

1. warm start (SFT on the reference solutions), a fixed training prompt set, the text
   perturbation δ (``cliffjax.analysis.text_perturbations``: length, per-trace or per-answer
   bonus);
2. train ``n_seeds × len(eps)`` RL runs with ``cliffjax.training.rl.make_rl_train``: one
   vmapped program (``sweep.runs=vmap``; the host verifiers run once per run inside it) or a
   Python loop over runs (``sweep.runs=sequential``); rollout seed ``s`` is
   ``fold_in(k_runs, s)`` for ``s = first_seed ..``, so a job of one seed and one ε trains the
   same run as the matching run of a bigger job;
3. sample ``n_eval_samples`` completions (temperature 1) per held-out prompt from every final
   policy — two independent sets from each ε = 0 policy — decode them, and record per
   completion the extracted final answer, a length bin, and the task's reward components;
4. pair each run with the ε = 0 run of the same seed (:func:`sampled_rows`): per-prompt TV of
   the answer and length distributions, their means over held-out prompts with bootstrap
   intervals, the noise floor (the same TV between the two sample sets of the ε = 0 policy),
   the paired excess over it, and the change in accuracy.

Files in the job directory: ``samples.json`` (every sample set: what the report pairs across
jobs), ``sampled_answers.jsonl`` (this job's rows), ``summary.json`` (job facts, timings) and
``curves.npz`` (per-step training metrics).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import jax
import jax.numpy as jnp
import numpy as np

from cliffjax.analysis import RewardShift
from cliffjax.analysis.sampled_answers import (
    bootstrap_ci,
    extracted_answers,
    length_bins,
    per_prompt_l2sq,
    per_prompt_tv,
)
from cliffjax.analysis.text_perturbations import (
    TextPerturbation,
    TextPerturbedReward,
    first_eos_length,
)
from cliffjax.experiments.cliff_config import CliffJobConfig
from cliffjax.experiments.config import make_task
from cliffjax.experiments.policy_cliff import (
    objective_config,
    training_columns,
    warm_start,
)
from cliffjax.models.build import build_policy
from cliffjax.objectives import get_objective
from cliffjax.sampling import sample
from cliffjax.tasks.base import prompt_mask_of, sampling_config
from cliffjax.tasks.wrappers import FixedPrompts
from cliffjax.training.program import RLProgram
from cliffjax.training.rl import make_rl_train

Array = jax.Array
PyTree = Any

SAMPLES_FILE: Final = "samples.json"
ROWS_FILE: Final = "sampled_answers.jsonl"
#: Sweep fields that say which runs a job trains, not which experiment they belong to.
RUN_FIELDS: Final = ("eps", "n_seeds", "first_seed", "runs")


def pair_key(job: CliffJobConfig) -> str:
    """A hash of everything but the run selection (:data:`RUN_FIELDS`): runs of jobs with equal
    keys share the warm start, the prompts and δ, so they may be paired."""
    sweep = {
        f.name: getattr(job.sweep, f.name)
        for f in dataclasses.fields(job.sweep)
        if f.name not in RUN_FIELDS
    }
    return hashlib.sha256(repr((job.experiment, sorted(sweep.items()))).encode()).hexdigest()[:16]


def sample_key(k_eval: Array, seed: int, eps: float, which: str) -> Array:
    """The sampling key of one sample set: set ``"a"`` and ``"b"`` of the ε = 0 policy of seed
    ``seed``, and the one set of an ε > 0 policy (keyed by ε, so each set is independent of
    the ε = 0 sets it is compared with)."""
    k = jax.random.fold_in(k_eval, seed)
    if eps == 0.0:
        return jax.random.fold_in(k, {"a": 0, "b": 1}[which])
    return jax.random.fold_in(k, 2 + zlib.crc32(repr(float(eps)).encode()) % (1 << 30))


class TextSetup:
    """What a text job computes before training: policy, warm start, prompts, δ, samplers."""

    def __init__(self, job: CliffJobConfig, warm_start_dir: str | Path | None = None) -> None:
        exp, sw = job.experiment, job.sweep
        self.job = job
        self._programs: dict[Any, Any] = {}
        base = make_task(exp.task)
        self.base = base
        tok = base.tokenizer
        k_model, k_sft, k_prompts, _, self.k_runs, self.k_eval = jax.random.split(
            jax.random.key(exp.seed), 6
        )
        t0 = time.perf_counter()
        self.graphdef, params = build_policy(exp.model, k_model)
        self.init_params, self.sft_loss, self.warm_start_cached = warm_start(
            exp, self.graphdef, params, base, k_sft, warm_start_dir
        )
        self.sft_s = time.perf_counter() - t0
        tp, tm = base.train_prompt_set(k_prompts, sw.n_train_prompts)
        self.tp = tp
        self.task = FixedPrompts(base, tp, dict(tm))
        ep, em = base.eval_set()
        if sw.n_eval_prompts and sw.n_eval_prompts < ep.shape[0]:
            n = sw.n_eval_prompts
            ep, em = ep[:n], {k: v[:n] for k, v in em.items()}
        self.ep, self.em = ep, dict(em)
        self.eval_mask = prompt_mask_of(base, ep)
        self.references = [base.references[int(i)] for i in np.asarray(em["ref_idx"])]
        self.eos_ids = tuple(tok.eos_ids)
        self.transform = TextPerturbedReward(
            sw.perturbation, base.max_new_tokens, self.eos_ids, tok, sw.answer_extractor
        )
        self.salt = jnp.uint32(sw.perturbation_seed)
        # Distances are measured on the policy itself: temperature 1, no filtering.
        self.sampling = sampling_config(base, group_size=sw.n_eval_samples)

    def program(self) -> tuple[RLProgram, float]:
        """The job's RL program and its effective KL β."""
        exp = self.job.experiment
        obj_cfg, beta = objective_config(exp.algo.name, exp.algo.config, self.job.sweep.kl_beta)
        program = RLProgram(
            self.graphdef,
            self.task,
            get_objective(exp.algo.name),
            obj_cfg,
            exp.trainer.rl,
            self.transform,
        )
        return program, beta

    def shift(self, eps: Array) -> RewardShift:
        """``r' = r + ε·δ`` with this job's δ."""
        return RewardShift(jnp.asarray(eps, jnp.float32), TextPerturbation(self.salt))

    def run_key(self, seed: int) -> Array:
        """The rollout key of seed ``seed`` (the same in every job)."""
        return jax.random.fold_in(self.k_runs, seed)

    def train(self, program: RLProgram, seeds: Sequence[int], eps: Sequence[float]):
        """Train runs ``(seeds[r], eps[r])``: ``(params, curves)`` stacked over runs."""
        keys = jnp.stack([self.run_key(s) for s in seeds])
        eps_arr = jnp.asarray(eps, jnp.float32)
        train = make_rl_train(program)

        def one(params, key, e):  # a new closure per call: the cache below keys on program
            final, metrics, _ = train(params, key, None, self.shift(e))
            return final, metrics

        runs = self.job.sweep.runs
        if (program, runs) not in self._programs:  # compiled once per program and mode
            fn = jax.vmap(one, in_axes=(None, 0, 0)) if runs == "vmap" else one
            self._programs[(program, runs)] = jax.jit(fn)
        fn = self._programs[(program, runs)]
        if runs == "vmap":
            return fn(self.init_params, keys, eps_arr)
        outs = [fn(self.init_params, keys[r], eps_arr[r]) for r in range(len(seeds))]
        return jax.tree.map(lambda *x: jnp.stack(x), *outs)

    def sample_completions(self, params: PyTree, key: Array) -> np.ndarray:
        """``[E · n, N]`` completions of one policy, ``n`` per held-out prompt (contiguous).

        With ``sweep.sample_batch`` the prompts go through the sampler in chunks of
        ``sample_batch // n`` prompts (chunk ``c`` with ``fold_in(key, c)``; the last chunk
        padded with copies of its first prompt and cut, so one program serves every chunk).
        """
        e, n = self.ep.shape[0], self.job.sweep.n_eval_samples
        per = self.job.sweep.sample_batch // n if self.job.sweep.sample_batch else e
        per = max(1, min(per, e))
        if "sample" not in self._programs:

            def fn(p, prompts, mask, k):
                return sample(self.graphdef, p, prompts, k, self.sampling, mask).completion

            self._programs["sample"] = jax.jit(fn)
        if per == e:
            return np.asarray(self._programs["sample"](params, self.ep, self.eval_mask, key))
        out = []
        for c, start in enumerate(range(0, e, per)):
            idx = np.arange(start, start + per)
            idx = np.where(idx < e, idx, start)  # pad the last chunk with its first prompt
            comp = self._programs["sample"](
                params, self.ep[idx], self.eval_mask[idx], jax.random.fold_in(key, c)
            )
            out.append(np.asarray(comp)[: min(per, e - start) * n])
        return np.concatenate(out)

    def describe_samples(self, completions: np.ndarray) -> dict[str, Any]:
        """A sample set as host data: per prompt, each completion's extracted answer, length
        bin, and the task's reward components (lists ``[E][n]``)."""
        sw = self.job.sweep
        e, n = self.ep.shape[0], sw.n_eval_samples
        tok = self.base.tokenizer
        texts = tok.decode_batch(completions)
        lengths = np.asarray(first_eos_length(jnp.asarray(completions), self.eos_ids))
        finished = lengths < completions.shape[1]
        answers = extracted_answers(texts, sw.answer_extractor)
        bins = length_bins(lengths, finished, self.base.max_new_tokens, sw.length_bins)
        refs = [r for r in self.references for _ in range(n)]
        comps = self.base.reward_fn(texts, finished, refs)

        def split(xs):
            xs = list(xs)
            return [xs[i * n : (i + 1) * n] for i in range(e)]

        return {
            "answers": split(answers),
            "length_bins": split(bins),
            "length": split(int(x) for x in lengths),
            "components": {k: split(float(x) for x in v) for k, v in comps.items()},
            "texts_head": texts[:2],
        }


# --------------------------------------------------------------------------------------------
# Pairing sample sets into rows (used by the job and by the report, across jobs)
# --------------------------------------------------------------------------------------------


def _means(rows: list[list[float]]) -> np.ndarray:
    return np.asarray([float(np.mean(r)) for r in rows], np.float64)


def _ci(prefix: str, values: np.ndarray, n_boot: int) -> dict[str, float]:
    mean, lo, hi = bootstrap_ci(values, n_boot)
    return {prefix: mean, f"{prefix}_lo": lo, f"{prefix}_hi": hi}


def sampled_rows(sets: Sequence[dict[str, Any]], n_boot: int = 1000) -> list[dict[str, Any]]:
    """One row per trained run: its sampled-answer distances to the ε = 0 run of its seed.

    ``sets``: sample-set records (``samples.json`` entries: ``pair_key``, ``seed``, ``eps``,
    ``set`` ("a"/"b"), the described samples and the run's columns). Run ``(k, s, ε)`` is
    compared with set "a" of run ``(k, s, 0)``; its noise floor is set "b" of ``(k, s, 0)`` vs
    set "a" (two independent sample sets of one policy, compared exactly as a run is). The row
    of an ε = 0 run therefore *is* the floor. Per prompt ``x`` (held out):

    * ``tv_answer = TV(p̂_ε(a|x), p̂_0(a|x))`` over extracted answers (unparsable = "none"),
    * ``l2sq_answer``: the unbiased estimate of ``‖p_ε − p_0‖₂²`` over answers (mean 0 when
      the policies agree, so no floor is needed; ``cliffjax.analysis.l2sq_unbiased``),
    * ``tv_length`` the same TV over length bins,
    * ``excess_answer = tv_answer − floor_answer`` (paired per prompt),
    * ``d_correct`` the change in the accuracy of the sampled completions (any component
      ``c``: ``d_<c>``),

    each averaged over prompts with a percentile bootstrap interval over prompts (``*_lo``,
    ``*_hi``). Runs without their ε = 0 run (in no job) are skipped.
    """
    # The ε = 0 sets of each (key, seed); a run in the same job as its ε = 0 run uses that one
    # (a run trained twice, in two jobs, is one run: same keys, same samples).
    bases: dict[tuple, dict[str, dict]] = {}
    for s in sets:
        if s["eps"] == 0.0:
            job = s["columns"].get("job", "")
            bases.setdefault((s["pair_key"], s["seed"]), {}).setdefault(job, {})[s["set"]] = s
    rows = []
    for s in sets:
        if s["set"] != "a":
            continue
        by_job = bases.get((s["pair_key"], s["seed"]), {})
        job = s["columns"].get("job", "")
        pair = by_job.get(job) or next(
            (v for _, v in sorted(by_job.items()) if "a" in v and "b" in v), {}
        )
        base, other = pair.get("a"), pair.get("b")
        if base is None or other is None:
            continue
        run = other if s["eps"] == 0.0 else s
        tv_a = per_prompt_tv(run["answers"], base["answers"])
        floor_a = per_prompt_tv(other["answers"], base["answers"])
        tv_l = per_prompt_tv(run["length_bins"], base["length_bins"])
        floor_l = per_prompt_tv(other["length_bins"], base["length_bins"])
        row = {**s["columns"], "seed": s["seed"], "eps": s["eps"], "pair_key": s["pair_key"]}
        row.update(n_prompts=len(tv_a), n_samples=len(run["answers"][0]))
        row.update(_ci("tv_answer", tv_a, n_boot))
        row.update(_ci("floor_answer", floor_a, n_boot))
        row.update(_ci("excess_answer", tv_a - floor_a, n_boot))
        row.update(_ci("l2sq_answer", per_prompt_l2sq(run["answers"], base["answers"]), n_boot))
        row.update(_ci("tv_length", tv_l, n_boot))
        row.update(_ci("floor_length", floor_l, n_boot))
        row["none_frac"] = float(np.mean([a == "none" for x in run["answers"] for a in x]))
        for name, vals in run["components"].items():
            row[name] = float(_means(vals).mean())
            diff = _means(vals) - _means(base["components"][name])
            row.update(_ci(f"d_{name}", diff, n_boot))
        row["mean_length"] = float(_means(run["length"]).mean())
        row["d_mean_length"] = row["mean_length"] - float(_means(base["length"]).mean())
        row["sens_tv_answer"] = row["excess_answer"] / s["eps"] if s["eps"] > 0 else None
        rows.append(row)
    rows.sort(key=lambda r: (r["pair_key"], r["seed"], r["eps"], r.get("job", "")))
    return rows


def format_sampled_rows(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table of sampled-answer rows (one per run), intervals in brackets."""

    def ci(r: dict, k: str) -> str:
        if k not in r:
            return "–"
        return f"{r[k]:.3f} [{r[k + '_lo']:.3f}, {r[k + '_hi']:.3f}]"

    lines = [
        "| objective | perturbation | seed | ε | TV answers | noise floor | excess over floor "
        "| ‖Δ‖₂² answers (unbiased) | TV length bins | length floor | Δ accuracy | unparsable |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.get('objective', '')} | {r.get('perturbation', '')} | {r['seed']} | "
            f"{r['eps']:g} | {ci(r, 'tv_answer')} | {ci(r, 'floor_answer')} | "
            f"{ci(r, 'excess_answer')} | {ci(r, 'l2sq_answer')} | {ci(r, 'tv_length')} | "
            f"{ci(r, 'floor_length')} | "
            f"{ci(r, 'd_correct')} | {r['none_frac']:.2f} |"
        )
    return "\n".join(lines)


def load_sample_sets(root: str | Path) -> list[dict[str, Any]]:
    """Every sample set of every ``samples.json`` below ``root`` (``job`` = its directory)."""
    root = Path(root)
    sets = []
    for f in sorted(root.rglob(SAMPLES_FILE)):
        job = str(f.parent.relative_to(root)) or "."
        for s in json.loads(f.read_text())["sets"]:
            sets.append({**s, "columns": {**s["columns"], "job": job}})
    return sets


# --------------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------------


def run_text_sweep(
    job: CliffJobConfig,
    out_dir: Path,
    setup: TextSetup | None = None,
    overrides: str = "",
    warm_start_dir: str | Path | None = None,
    keep_params: bool = False,
) -> dict[str, Any]:
    """Train the job's runs, sample every final policy, write the files (module docstring).

    Returns ``rows``, ``sets`` (the sample sets), ``summary`` and, with ``keep_params``, the
    final ``params`` stacked over runs (else ``None``)."""
    t_start = time.perf_counter()
    setup = setup or TextSetup(job, warm_start_dir)
    exp, sw = job.experiment, job.sweep
    program, beta = setup.program()
    seeds = [sw.first_seed + i for i in range(sw.n_seeds) for _ in sw.eps]
    eps = [float(e) for _ in range(sw.n_seeds) for e in sw.eps]
    key = pair_key(job)
    common = {
        "objective": exp.algo.name,
        "task": exp.task.name,
        "model": Path(getattr(exp.model, "path", "transformer")).name,
        "entropy_coef": exp.trainer.rl.entropy_coef,
        "kl_beta": beta,
        "perturbation": sw.perturbation,
        "extractor": sw.answer_extractor,
    }
    runs = list(range(len(seeds)))
    # vmap: one program trains every run; sequential: one run at a time, sampled right after
    # training, so only one run's parameters and optimizer state are alive at once.
    groups = [runs] if sw.runs == "vmap" else [[r] for r in runs]
    sets, kept, curve_parts = [], [], []
    train_s = sample_s = 0.0
    for group in groups:
        t0 = time.perf_counter()
        params, curves = setup.train(program, [seeds[r] for r in group], [eps[r] for r in group])
        jax.block_until_ready(params)
        train_s += time.perf_counter() - t0
        curves = {k: np.asarray(v) for k, v in curves.items()}
        curve_parts.append(curves)
        t0 = time.perf_counter()
        for i, r in enumerate(group):
            s, e = seeds[r], eps[r]
            p = jax.tree.map(lambda x, i=i: x[i], params)
            columns = {**common, **training_columns(curves, i)}
            for which in ("a", "b") if e == 0.0 else ("a",):
                comp = setup.sample_completions(p, sample_key(setup.k_eval, s, e, which))
                sets.append(
                    {"pair_key": key, "seed": s, "eps": e, "set": which, "columns": columns}
                    | setup.describe_samples(comp)
                )
        sample_s += time.perf_counter() - t0
        if keep_params:
            kept.append(params)
        del params
    curves = {k: np.concatenate([c[k] for c in curve_parts]) for k in curve_parts[0]}
    params = jax.tree.map(lambda *x: jnp.concatenate(x), *kept) if kept else None
    rows = sampled_rows(sets, sw.n_boot)
    summary = {
        "mode": "text",
        "overrides": overrides,
        "pair_key": key,
        "objective": exp.algo.name,
        "n_runs": len(seeds),
        "n_train_prompts": int(setup.tp.shape[0]),
        "n_eval_prompts": int(setup.ep.shape[0]),
        "n_eval_samples": sw.n_eval_samples,
        "extractor": sw.answer_extractor,
        "runs": sw.runs,
        "warm_start_cached": setup.warm_start_cached,
        "sft_loss": setup.sft_loss,
        "sft_s": setup.sft_s,
        "train_s": train_s,
        "eval_s": sample_s,
        "wall_s": time.perf_counter() - t_start,
        "rl_steps": exp.trainer.rl.steps,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SAMPLES_FILE).write_text(json.dumps({"sets": sets}))
    with (out_dir / ROWS_FILE).open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    np.savez(out_dir / "curves.npz", eps=np.asarray(eps), seeds=np.asarray(seeds), **curves)
    return {"rows": rows, "sets": sets, "summary": summary, "params": params}


def main_text(
    job: CliffJobConfig, out_dir: Path, warm_start_dir: Path | None, overrides: str
) -> None:
    """The text job of ``python -m cliffjax.experiments.policy_cliff`` (prints its table)."""
    print(make_task(job.experiment.task).describe())
    result = run_text_sweep(job, out_dir, overrides=overrides, warm_start_dir=warm_start_dir)
    s = result["summary"]
    if result["rows"]:
        print("sampled-answer distances to the ε = 0 run of the same seed (held-out prompts):")
        print(format_sampled_rows(result["rows"]))
    else:
        print("no ε = 0 run in this job: the report pairs these runs with other jobs' ε = 0 runs")
    print(
        f"job wall {s['wall_s']:.1f} s (warm start {s['sft_s']:.1f} s, train {s['train_s']:.1f} "
        f"s, sampling {s['eval_s']:.1f} s)"
    )
    print(f"samples: {out_dir / SAMPLES_FILE}")
