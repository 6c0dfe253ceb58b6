"""Configuration of the policy-cliff sweep job (``conf/policy_cliff.yaml``).

The job reuses the main job's groups and schema (``experiments/config.py``: ``algo``, ``task``,
``model``, ``trainer``, ``mesh``, generated from the frozen dataclasses of ``core/``) and adds
one node, ``sweep``, typed by :class:`CliffConfig` (group ``conf/sweep/``). The root schema
``policy_cliff_schema`` is the main job's schema plus that node, so an unknown key
(``sweep.epz=...``) or a wrong type (``sweep.n_seeds=abc``) fails when Hydra composes, and an
invalid value fails in :func:`build_cliff_config` with a :class:`ConfigError` naming the field
(``sweep.eps: ...``), before any compute. Text tasks (:data:`TEXT_TASKS`) are checked as text
sweeps (text perturbations, ``n_eval_samples >= 2``, an answer extractor); the others as exact
ones (ε = 0 in ``eps``, digit perturbations).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

import jax
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from cliffjax.analysis import PERTURBATIONS, TEXT_PERTURBATIONS
from cliffjax.analysis.sampled_answers import EXTRACTORS, VERIFIER_EXTRACTORS
from cliffjax.experiments.config import (
    ConfigError,
    ExperimentConfig,
    build_config,
    check_finite_numbers,
    experiment_schema,
    make_task,
    register_configs,
    schema_of,
    to_dataclass,
)
from cliffjax.models.transformer import TransformerConfig
from cliffjax.objectives import get_objective, list_objectives

MODES: Final = ("sweep", "replay")
#: How the runs of one job are driven: one vmapped program, or a Python loop over runs.
RUNS: Final = ("vmap", "sequential")


@dataclasses.dataclass(frozen=True)
class CliffConfig:
    """What one policy-cliff job trains and measures (all seeds and ε run in one program).

    Attributes:
      eps: perturbation sizes ε of ``r' = r + ε·δ``; must contain 0 (the baseline each run is
        compared with). Text sweeps may leave 0 out (one job per ε, e.g. ``sweep.eps=[0.1]``):
        the report then pairs each run with the ε = 0 run of the same seed in another job.
      n_seeds: rollout seeds; every seed is trained at every ε (``n_seeds × len(eps)`` runs).
      perturbation: δ. Digit tasks: "random" (U[-1,1] bonus per answer string), "ties" (bonus
        1 on one correct answer per prompt) or "reweight" (direction over the reward
        components). Text tasks (``task=jsonl``; ``cliffjax.analysis.text_perturbations``):
        "length" (δ = −length/N), "random_completion" (a fixed pseudo-random bonus per trace)
        or "random_answer" (a fixed pseudo-random bonus per extracted final answer).
      reweight: for "reweight", one weight per reward component in sorted name order.
      perturbation_seed: seed of the random draws of δ (bonus table, chosen tied answer).
      kl_beta: β of the KL to the warm-start policy, set as the KL coefficient of every
        objective the job trains (replay objectives included); null keeps each objective's
        own. The entropy bonus is ``trainer.rl.entropy_coef``.
      n_train_prompts: size of the fixed training prompt set (0 = every distinct training
        prompt the task enumerates, or 32 when it cannot).
      n_eval_prompts: held-out prompts used for distances (0 = the task's whole eval set).
      max_digits: L of the answer set (digit strings of 1..L digits + EOS) used for exact
        enumeration and δ (0 = the task's ``max_digits``/``n_digits`` + 1 for sums).
      n_eval_samples: completions per prompt for the sampled TV/KL estimates (text sweeps: per
        held-out prompt and policy for the sampled-answer distributions; >= 2).
      mode: "sweep" (train every seed × ε) or "replay" (record one run's rollouts, then train
        every objective in ``replay_objectives`` on exactly those rollouts at every ε).
      replay_objectives: objectives compared in replay mode.
      replay_from: rollouts file (npz) to replay; empty = record one in this job.
      answer_extractor: text sweeps: how a completion's final answer is read
        ("auto" = the extractor of the verifier of the task's "correct" reward component;
        or one of ``cliffjax.analysis.sampled_answers.EXTRACTORS``).
      length_bins: text sweeps: equal-width bins of the completion length (plus one outcome
        for an unfinished completion) for the length distance.
      runs: text sweeps: "vmap" (every run in one vmapped program) or "sequential" (a
        Python loop over runs in this process, one run's memory at a time).
      first_seed: text sweeps: index of the job's first rollout seed (seeds ``first_seed ..
        first_seed + n_seeds − 1``); a multirun of one seed per job pairs runs across jobs.
      n_boot: bootstrap resamples (over held-out prompts) of the sampled-answer intervals.
      sample_batch: text sweeps: at most this many completions per sampler call (whole
        prompts, ``n_eval_samples`` each; 0 = every held-out prompt in one call), to bound the
        KV cache of a large checkpoint.
    """

    eps: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.3)
    n_seeds: int = 3
    perturbation: str = "ties"
    reweight: tuple[float, ...] = ()
    perturbation_seed: int = 0
    kl_beta: float | None = None
    n_train_prompts: int = 0
    n_eval_prompts: int = 0
    max_digits: int = 0
    n_eval_samples: int = 64
    mode: str = "sweep"
    replay_objectives: tuple[str, ...] = ("grpo", "dapo", "cispo", "mhpo")
    replay_from: str = ""
    answer_extractor: str = "auto"
    length_bins: int = 4
    runs: str = "vmap"
    first_seed: int = 0
    n_boot: int = 1000
    sample_batch: int = 0

    def __post_init__(self) -> None:
        def check(cond: bool, field: str, expected: str, value: Any) -> None:
            if not cond:
                raise ValueError(f"{field} must be {expected}, got {value!r}")

        eps = tuple(self.eps)
        check(len(eps) >= 1, "eps", "a non-empty list", eps)
        check(all(e >= 0 for e in eps), "eps", "non-negative", eps)
        check(len(set(eps)) == len(eps), "eps", "distinct values", eps)
        check(self.n_seeds >= 1, "n_seeds", ">= 1", self.n_seeds)
        kinds = PERTURBATIONS + TEXT_PERTURBATIONS
        check(self.perturbation in kinds, "perturbation", f"one of {kinds}", self.perturbation)
        check(
            self.perturbation == "reweight" or not self.reweight,
            "reweight",
            "empty unless perturbation=reweight",
            self.reweight,
        )
        check(self.kl_beta is None or self.kl_beta >= 0, "kl_beta", "null or >= 0", self.kl_beta)
        check(self.n_train_prompts >= 0, "n_train_prompts", ">= 0", self.n_train_prompts)
        check(self.n_eval_prompts >= 0, "n_eval_prompts", ">= 0", self.n_eval_prompts)
        check(
            0 <= self.max_digits <= 3,
            "max_digits",
            "in [0, 3] (10^L answers are enumerated)",
            self.max_digits,
        )
        check(self.n_eval_samples >= 1, "n_eval_samples", ">= 1", self.n_eval_samples)
        check(self.mode in MODES, "mode", f"one of {MODES}", self.mode)
        extractors = ("auto", *sorted(EXTRACTORS))
        check(
            self.answer_extractor in extractors,
            "answer_extractor",
            f"one of {extractors}",
            self.answer_extractor,
        )
        check(self.length_bins >= 1, "length_bins", ">= 1", self.length_bins)
        check(self.runs in RUNS, "runs", f"one of {RUNS}", self.runs)
        check(self.first_seed >= 0, "first_seed", ">= 0", self.first_seed)
        check(self.n_boot >= 1, "n_boot", ">= 1", self.n_boot)
        check(self.sample_batch >= 0, "sample_batch", ">= 0", self.sample_batch)
        known = list_objectives()
        bad = [o for o in self.replay_objectives if o not in known]
        check(
            not bad,
            "replay_objectives",
            f"registered objectives {list(known)}",
            list(self.replay_objectives),
        )
        pref = [o for o in self.replay_objectives if get_objective(o).kind != "policy"]
        check(not pref, "replay_objectives", "policy objectives (not preference ones)", pref)


@dataclasses.dataclass(frozen=True)
class CliffJobConfig:
    """A validated policy-cliff job.

    Attributes:
      experiment: algo, task, model, trainer, mesh and seed, as in the main job.
      sweep: the sweep settings.
    """

    experiment: ExperimentConfig
    sweep: CliffConfig

    @property
    def text(self) -> bool:
        """Whether this is a text sweep (distances on sampled final answers)."""
        return self.experiment.task.name in TEXT_TASKS


def policy_cliff_schema() -> type:
    """The main job's schema plus a ``sweep`` node typed by :class:`CliffConfig`."""
    base = experiment_schema()
    sweep = schema_of(CliffConfig)
    return dataclasses.make_dataclass(
        "PolicyCliffSchema",
        [("sweep", sweep, dataclasses.field(default_factory=sweep))],
        bases=(base,),
    )


def register_cliff_configs() -> None:
    """Register the main job's schemas and ``policy_cliff_schema`` in the ConfigStore."""
    register_configs()
    ConfigStore.instance().store(name="policy_cliff_schema", node=policy_cliff_schema())


#: Tasks whose sweeps measure sampled final-answer distributions (no enumerable answer set).
TEXT_TASKS: Final = ("jsonl",)


def resolve_extractor(task: Any, name: str) -> str:
    """The answer extractor of a text sweep: ``name``, or for ``"auto"`` the one that reads the
    answer of the verifier of the task's ``"correct"`` reward component."""
    if name != "auto":
        return name
    verifier = next(c.verifier for c in task.config.rewards if c.name == "correct")
    if verifier not in VERIFIER_EXTRACTORS:
        raise ConfigError(
            f"sweep.answer_extractor: 'auto' knows no answer extractor for the verifier "
            f"{verifier!r} of the task's 'correct' reward (known: {sorted(VERIFIER_EXTRACTORS)}); "
            f"set sweep.answer_extractor to one of {sorted(EXTRACTORS)}"
        )
    return VERIFIER_EXTRACTORS[verifier]


def _check_text_sweep(sweep: CliffConfig, task: Any) -> CliffConfig:
    """The checks of a text sweep; returns the sweep with its extractor resolved."""
    if sweep.perturbation not in TEXT_PERTURBATIONS:
        raise ConfigError(
            f"sweep.perturbation: a text sweep perturbs the reward by one of "
            f"{TEXT_PERTURBATIONS} (conf/sweep/text.yaml), got {sweep.perturbation!r}"
        )
    if sweep.mode != "sweep":
        raise ConfigError(f"sweep.mode: text sweeps run mode 'sweep', got {sweep.mode!r}")
    if sweep.n_eval_samples < 2:
        raise ConfigError(
            "sweep.n_eval_samples: a text sweep estimates answer distributions from sampled "
            f"completions and needs >= 2 per prompt, got {sweep.n_eval_samples}"
        )
    if 0 < sweep.sample_batch < sweep.n_eval_samples:
        raise ConfigError(
            f"sweep.sample_batch: must be 0 or >= sweep.n_eval_samples = {sweep.n_eval_samples} "
            f"(whole prompts per sampler call), got {sweep.sample_batch}"
        )
    return dataclasses.replace(
        sweep, answer_extractor=resolve_extractor(task, sweep.answer_extractor)
    )


def _check_exact_sweep(sweep: CliffConfig) -> None:
    """The checks of a sweep with exact answer distributions (digit tasks)."""
    if 0.0 not in sweep.eps or len(sweep.eps) < 2:
        raise ConfigError(
            "sweep.eps must be a list containing 0.0 (the baseline) and at least one ε > 0, "
            f"got {list(sweep.eps)}"
        )
    if sweep.perturbation not in PERTURBATIONS:
        raise ConfigError(
            f"sweep.perturbation must be one of {PERTURBATIONS} on a digit task, got "
            f"{sweep.perturbation!r} (the text perturbations need task=jsonl)"
        )
    for field, value, default in (
        ("runs", sweep.runs, "vmap"),
        ("first_seed", sweep.first_seed, 0),
    ):
        if value != default:
            raise ConfigError(f"sweep.{field}: only text sweeps set it, got {value!r}")


def build_cliff_config(cfg: DictConfig | dict[str, Any], text_ok: bool = True) -> CliffJobConfig:
    """Validate a composed config; :class:`ConfigError` names the field of a bad value.

    ``text_ok=False`` (jobs that need exact distributions) refuses text tasks."""
    raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    sweep_raw = dict(raw.pop("sweep", {}) or {})
    check_finite_numbers(sweep_raw, "sweep")
    exp = build_config(raw)
    sweep = to_dataclass(CliffConfig, sweep_raw, "sweep")
    if get_objective(exp.algo.name).kind != "policy":
        raise ConfigError(
            f"algo.name: the policy-cliff job trains policy objectives; {exp.algo.name!r} is a "
            "preference objective"
        )
    rl = exp.trainer.rl
    task = make_task(exp.task)
    if exp.task.name in TEXT_TASKS and text_ok:
        sweep = _check_text_sweep(sweep, task)
    elif not task.answer_digits or not isinstance(exp.model, TransformerConfig):
        raise ConfigError(
            f"task.name: this job measures exact distributions over an enumerable answer set "
            f"(the digit tasks with the built-in transformer); task {exp.task.name!r} with "
            f"model {type(exp.model).__name__} has none. The policy-cliff job measures text "
            "tasks (task=jsonl, any model) on sampled final answers (docs/sweeps.md)"
        )
    else:
        _check_exact_sweep(sweep)
    n_set = int(task.train_prompt_set(jax.random.key(0), sweep.n_train_prompts)[0].shape[0])
    n_step = rl.prompts_per_step * (rl.oversample if rl.dynamic_sampling else 1)
    if n_step > n_set:
        raise ConfigError(
            "trainer.rl.prompts_per_step: the job samples "
            f"{n_step} distinct prompts per step (x oversample with dynamic sampling) from a "
            f"fixed set of {n_set} (sweep.n_train_prompts); lower it or enlarge the set"
        )
    return CliffJobConfig(exp, sweep)
