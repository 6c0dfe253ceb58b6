"""Configuration of the policy-cliff sweep job (``conf/policy_cliff.yaml``).

The job reuses the main job's groups and schema (``experiments/config.py``: ``algo``, ``task``,
``model``, ``trainer``, ``mesh``, generated from the frozen dataclasses of ``core/``) and adds
one node, ``sweep``, typed by :class:`CliffConfig` (group ``conf/sweep/``). The root schema
``policy_cliff_schema`` is the main job's schema plus that node, so an unknown key
(``sweep.epz=...``) or a wrong type (``sweep.n_seeds=abc``) fails when Hydra composes, and an
invalid value fails in :func:`build_cliff_config` with a :class:`ConfigError` naming the field
(``sweep.eps: ...``), before any compute.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

import jax
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from cliffjax.analysis import PERTURBATIONS
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


@dataclasses.dataclass(frozen=True)
class CliffConfig:
    """What one policy-cliff job trains and measures (all seeds and ε run in one program).

    Attributes:
      eps: perturbation sizes ε of ``r' = r + ε·δ``; must contain 0 (the baseline each run is
        compared with).
      n_seeds: rollout seeds; every seed is trained at every ε (``n_seeds × len(eps)`` runs).
      perturbation: δ: "random" (U[-1,1] bonus per answer string), "ties" (bonus 1 on one
        correct answer per prompt) or "reweight" (direction over the reward components).
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
      n_eval_samples: completions per prompt for the sampled TV/KL estimates.
      mode: "sweep" (train every seed × ε) or "replay" (record one run's rollouts, then train
        every objective in ``replay_objectives`` on exactly those rollouts at every ε).
      replay_objectives: objectives compared in replay mode.
      replay_from: rollouts file (npz) to replay; empty = record one in this job.
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

    def __post_init__(self) -> None:
        def check(cond: bool, field: str, expected: str, value: Any) -> None:
            if not cond:
                raise ValueError(f"{field} must be {expected}, got {value!r}")

        eps = tuple(self.eps)
        check(len(eps) >= 2, "eps", "at least two values (0 and one ε > 0)", eps)
        check(all(e >= 0 for e in eps), "eps", "non-negative", eps)
        check(0.0 in eps, "eps", "a list containing 0.0 (the baseline)", eps)
        check(len(set(eps)) == len(eps), "eps", "distinct values", eps)
        check(self.n_seeds >= 1, "n_seeds", ">= 1", self.n_seeds)
        check(
            self.perturbation in PERTURBATIONS,
            "perturbation",
            f"one of {PERTURBATIONS}",
            self.perturbation,
        )
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


def build_cliff_config(cfg: DictConfig | dict[str, Any]) -> CliffJobConfig:
    """Validate a composed config; :class:`ConfigError` names the field of a bad value."""
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
    if not task.answer_digits or not isinstance(exp.model, TransformerConfig):
        raise ConfigError(
            f"task.name: the policy-cliff and sensitivity jobs measure exact distributions over "
            f"an enumerable answer set (the digit tasks with the built-in transformer); "
            f"task {exp.task.name!r} with model {type(exp.model).__name__} has none. Text "
            "tasks and checkpoints train with the main job (docs/rlvr.md)"
        )
    n_set = int(task.train_prompt_set(jax.random.key(0), sweep.n_train_prompts)[0].shape[0])
    n_step = rl.prompts_per_step * (rl.oversample if rl.dynamic_sampling else 1)
    if n_step > n_set:
        raise ConfigError(
            "trainer.rl.prompts_per_step: the job samples "
            f"{n_step} distinct prompts per step (x oversample with dynamic sampling) from a "
            f"fixed set of {n_set} (sweep.n_train_prompts); lower it or enlarge the set"
        )
    return CliffJobConfig(exp, sweep)
