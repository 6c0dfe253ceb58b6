"""Frozen configuration dataclasses of the trainers.

One dataclass per concern: the optimizer (:class:`OptimConfig`), the supervised warm start
(:class:`SFTConfig`), the RL loop (:class:`RLConfig`), the preference loop
(:class:`PreferenceConfig`), checkpoints (:class:`CheckpointConfig`) and the driver options that
tie them together (:class:`TrainerConfig`). Every field has a one-line doc; ``__post_init__``
rejects bad values with a ``ValueError`` naming the field. The Hydra schema
(``experiments/config.py``) is generated from these classes, so the defaults live here only.

Defaults were calibrated on a 2-core CPU: a 600-step SFT warm start with a
flawed teacher, then 600 GRPO steps of 32 prompts x 8 completions.
"""

from __future__ import annotations

import dataclasses
from typing import Final

SCHEDULES: Final = ("constant", "cosine")
OPTIMIZERS: Final = ("adamw", "sgd")
PAIR_SOURCES: Final = ("self", "dataset")


def _check(cond: bool, field: str, expected: str, value: object) -> None:
    """Raise ``ValueError("<field> must be <expected>, got <value>")`` unless ``cond``."""
    if not cond:
        raise ValueError(f"{field} must be {expected}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up, an optional cosine decay and global-norm clipping.

    Attributes:
      lr: peak learning rate (reached after ``warmup_steps``).
      warmup_steps: linear warm-up steps from 0 to ``lr``.
      schedule: ``"constant"`` (stay at ``lr``) or ``"cosine"`` (decay to ``final_lr``).
      final_lr: learning rate at the last step of a cosine schedule.
      weight_decay: decoupled weight decay (0 gives plain Adam).
      b1: Adam first-moment decay.
      b2: Adam second-moment decay.
      eps: Adam epsilon.
      eps_root: added to Adam's second moment inside the square root. The default 1e-16 keeps
        forward-mode tangents finite where a gradient is exactly 0 (unused embedding rows:
        sqrt'(0) is infinite) and rounds away in float32 wherever the moment is above ~1e-9.
      max_grad_norm: clip the global gradient norm to this value (0 disables clipping).
      name: ``"adamw"`` (default) or ``"sgd"`` (plain gradient descent on the same schedule,
        ``b1``/``b2``/``eps``/``weight_decay`` unused: for closed-form checks and theory).
    """

    lr: float = 1e-4
    warmup_steps: int = 10
    schedule: str = "constant"
    final_lr: float = 0.0
    weight_decay: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    eps_root: float = 1e-16
    max_grad_norm: float = 1.0
    name: str = "adamw"

    def __post_init__(self) -> None:
        _check(self.name in OPTIMIZERS, "name", f"one of {OPTIMIZERS}", self.name)
        _check(self.lr > 0, "lr", "> 0", self.lr)
        _check(self.warmup_steps >= 0, "warmup_steps", ">= 0", self.warmup_steps)
        _check(self.schedule in SCHEDULES, "schedule", f"one of {SCHEDULES}", self.schedule)
        _check(self.final_lr >= 0, "final_lr", ">= 0", self.final_lr)
        _check(self.weight_decay >= 0, "weight_decay", ">= 0", self.weight_decay)
        _check(0 <= self.b1 < 1, "b1", "in [0, 1)", self.b1)
        _check(0 <= self.b2 < 1, "b2", "in [0, 1)", self.b2)
        _check(self.eps > 0, "eps", "> 0", self.eps)
        _check(self.eps_root >= 0, "eps_root", ">= 0", self.eps_root)
        _check(self.max_grad_norm >= 0, "max_grad_norm", ">= 0", self.max_grad_norm)


@dataclasses.dataclass(frozen=True)
class SFTConfig:
    """Supervised warm start (next-token cross-entropy on the task's teacher data).

    Attributes:
      steps: optimizer steps (0 skips the warm start).
      batch_size: sequences per step.
      optim: optimizer of the warm start.
    """

    steps: int = 600
    batch_size: int = 128
    optim: OptimConfig = OptimConfig(
        lr=1e-3,
        warmup_steps=50,
        schedule="cosine",
        final_lr=1e-4,
        weight_decay=0.01,
        max_grad_norm=1.0,
    )

    def __post_init__(self) -> None:
        _check(self.steps >= 0, "steps", ">= 0", self.steps)
        _check(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)


@dataclasses.dataclass(frozen=True)
class RLConfig:
    """Online RL with a policy-gradient objective (GRPO family, GSPO, CISPO, DISPO, MHPO).

    Each step samples ``group_size`` completions for each of ``prompts_per_step`` prompts, scores
    them, computes group advantages, then runs ``epochs`` passes over ``minibatches`` shuffled
    minibatches (one optimizer step each), so importance ratios move away from 1.

    Attributes:
      steps: RL steps (rollout + update).
      prompts_per_step: prompts sampled per step (P); the batch is B = P x group_size.
      group_size: completions per prompt (G).
      temperature: sampling temperature of the rollouts.
      top_k: sample from the k most likely tokens (0 = all).
      top_p: nucleus sampling mass (1 = off).
      epochs: optimization epochs over each rollout batch (mu).
      minibatches: minibatches per epoch (each one optimizer step); must divide P x G.
      micro_batches: gradient-accumulation chunks per minibatch (exact: sums and denominators).
      advantage: advantage estimator (``group_std``, ``group_mean``, ``rloo``); empty = the
        objective's default.
      dynamic_sampling: over-sample prompts and keep groups with mixed rewards (DAPO).
      oversample: prompt over-sampling factor when ``dynamic_sampling`` is on.
      overlong_buffer: soft overlong punishment buffer L_cache in tokens (0 = off; DAPO eq. 13).
      overlong_factor: scale of the soft overlong punishment.
      entropy_coef: c_H, weight of the mean token entropy bonus subtracted from the loss
        (``L - c_H · H̄``; 0 = off).
      aux_metrics: compute the objective's aux metrics (ratio statistics, clip and regime
        fractions, KL, ...) on every optimizer step and log their means. False skips them: the
        loss and the gradient are bitwise the same and the step saves their reductions (a
        small share of a training step, 0.01-0.02% measured on the default model; see
        docs/benchmarks.md). The update's own ``loss``, ``entropy`` and ``grad_norm`` metrics
        are always logged.
      optim: optimizer of the RL phase.
    """

    steps: int = 600
    prompts_per_step: int = 32
    group_size: int = 8
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    epochs: int = 2
    minibatches: int = 1
    micro_batches: int = 1
    advantage: str = ""
    dynamic_sampling: bool = False
    oversample: int = 2
    overlong_buffer: int = 0
    overlong_factor: float = 1.0
    entropy_coef: float = 0.0
    aux_metrics: bool = True
    optim: OptimConfig = OptimConfig(
        lr=1e-4, warmup_steps=10, schedule="constant", weight_decay=0.0, max_grad_norm=1.0
    )

    def __post_init__(self) -> None:
        _check(self.steps >= 0, "steps", ">= 0", self.steps)
        _check(self.entropy_coef >= 0, "entropy_coef", ">= 0", self.entropy_coef)
        _check(self.prompts_per_step >= 1, "prompts_per_step", ">= 1", self.prompts_per_step)
        _check(self.group_size >= 1, "group_size", ">= 1", self.group_size)
        _check(self.temperature > 0, "temperature", "> 0", self.temperature)
        _check(self.top_k >= 0, "top_k", ">= 0", self.top_k)
        _check(0 < self.top_p <= 1, "top_p", "in (0, 1]", self.top_p)
        _check(self.epochs >= 1, "epochs", ">= 1", self.epochs)
        batch = self.prompts_per_step * self.group_size
        _check(
            self.minibatches >= 1 and batch % self.minibatches == 0,
            "minibatches",
            f">= 1 and a divisor of prompts_per_step x group_size = {batch}",
            self.minibatches,
        )
        mb = batch // self.minibatches
        _check(
            self.micro_batches >= 1 and mb % self.micro_batches == 0,
            "micro_batches",
            f">= 1 and a divisor of the minibatch size {mb}",
            self.micro_batches,
        )
        estimators = ("", "group_std", "group_mean", "rloo")
        _check(self.advantage in estimators, "advantage", f"one of {estimators}", self.advantage)
        _check(self.oversample >= 1, "oversample", ">= 1", self.oversample)
        _check(self.overlong_buffer >= 0, "overlong_buffer", ">= 0", self.overlong_buffer)
        _check(self.overlong_factor >= 0, "overlong_factor", ">= 0", self.overlong_factor)


@dataclasses.dataclass(frozen=True)
class PreferenceConfig:
    """Offline-style preference optimization (DPO, RPO) on pairs.

    With ``source="self"`` each step samples ``group_size`` completions per prompt from the
    current policy, ranks them with the task's verifier and pairs the best (chosen) with the
    worst (rejected); prompts whose completions all score the same are masked out. With
    ``source="dataset"`` pairs come from the task's fixed pair set (correct answer vs. the flawed
    teacher's answer).

    Attributes:
      steps: preference steps.
      prompts_per_step: prompts (pairs) per step.
      group_size: completions sampled per prompt to build a pair (``source="self"``).
      temperature: sampling temperature when building pairs.
      source: ``"self"`` (policy samples ranked by the verifier) or ``"dataset"``.
      optim: optimizer of the preference phase.
    """

    steps: int = 300
    prompts_per_step: int = 32
    group_size: int = 8
    temperature: float = 1.0
    source: str = "self"
    optim: OptimConfig = OptimConfig(
        lr=1e-4, warmup_steps=10, schedule="constant", weight_decay=0.0, max_grad_norm=1.0
    )

    def __post_init__(self) -> None:
        _check(self.steps >= 0, "steps", ">= 0", self.steps)
        _check(self.prompts_per_step >= 1, "prompts_per_step", ">= 1", self.prompts_per_step)
        _check(self.group_size >= 2, "group_size", ">= 2", self.group_size)
        _check(self.temperature > 0, "temperature", "> 0", self.temperature)
        _check(self.source in PAIR_SOURCES, "source", f"one of {PAIR_SOURCES}", self.source)


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """Orbax checkpoints in ``<run_dir>/checkpoints``.

    Attributes:
      every: save every this many steps of a phase (0 = only at phase ends).
      keep: keep the last ``keep`` checkpoints.
    """

    every: int = 100
    keep: int = 3

    def __post_init__(self) -> None:
        _check(self.every >= 0, "every", ">= 0", self.every)
        _check(self.keep >= 1, "keep", ">= 1", self.keep)


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Sampled evaluation on the held-out set, next to greedy accuracy (every ``eval_every``).

    Attributes:
      n_samples: completions per held-out prompt for pass@k / mean@n (0 = greedy only).
      ks: the k of pass@k (each in ``[1, n_samples]``).
      temperature: sampling temperature (> 0).
      top_p: nucleus mass in (0, 1].
      batch_size: prompts per sampler call.
    """

    n_samples: int = 0
    ks: tuple[int, ...] = (1,)
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 64

    def __post_init__(self) -> None:
        _check(self.n_samples >= 0, "n_samples", ">= 0", self.n_samples)
        if self.n_samples:
            bad = [k for k in self.ks if not 1 <= k <= self.n_samples]
            _check(not bad, "ks", f"in [1, n_samples={self.n_samples}]", self.ks)
        _check(self.temperature > 0, "temperature", "> 0", self.temperature)
        _check(0 < self.top_p <= 1, "top_p", "in (0, 1]", self.top_p)
        _check(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)


BACKENDS = ("tensorboard", "wandb")
WANDB_MODES = ("offline", "online", "disabled")


@dataclasses.dataclass(frozen=True)
class LoggingConfig:
    """Logging backends beyond ``metrics.jsonl``.

    Attributes:
      backends: any of ``"tensorboard"``, ``"wandb"``.
      wandb_project: the W&B project.
      wandb_mode: ``"offline"`` (default: no network), ``"online"`` or ``"disabled"``.
      wandb_entity: the W&B entity (team/user), or ``None`` for the default.
      samples: completions of held-out prompts logged as a table at every evaluation
        (0 = none).
    """

    backends: tuple[str, ...] = ()
    wandb_project: str = "cliffjax"
    wandb_mode: str = "offline"
    wandb_entity: str | None = None
    samples: int = 4

    def __post_init__(self) -> None:
        bad = [b for b in self.backends if b not in BACKENDS]
        if bad:
            raise ValueError(f"backends: unknown backend {bad[0]!r}; expected some of {BACKENDS}")
        if self.wandb_mode not in WANDB_MODES:
            raise ValueError(f"wandb_mode must be one of {WANDB_MODES}, got {self.wandb_mode!r}")
        if not isinstance(self.samples, int) or self.samples < 0:
            raise ValueError(f"samples must be an int >= 0, got {self.samples!r}")


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """What the main job runs: warm start, then RL or preference optimization.

    Attributes:
      sft: the supervised warm start.
      rl: the RL loop (policy objectives).
      preference: the preference loop (DPO, RPO).
      checkpoint: checkpointing.
      eval_every: evaluate held-out greedy accuracy every this many steps (0 = start/end only).
      kl_every: score the reference policy for the KL metric every this many steps when the
        objective has no KL term (0 = never; with a KL term it is scored every step).
      resume: resume from the latest checkpoint in ``run_dir`` (the directory must hold a run).
      overwrite: on a fresh start, delete what a non-empty ``run_dir`` holds first.
      resume_allow: dotted config fields (or prefixes) a resume may change on purpose, e.g.
        ``[trainer.rl.steps]``; each change is recorded in ``manifest.json``.
      progress: show a tqdm progress bar.
      nan_at_step: test hook: poison the advantages with NaN at this RL step (-1 = off).
      eval: sampled held-out evaluation (pass@k, mean@n) at every evaluation.
      logging: logging backends (TensorBoard, W&B) and completion tables.
      export_hf: at the end, write the final policy as a Hugging Face checkpoint
        (``model.safetensors`` + ``config.json``, LoRA adapters merged; plus the checkpoint's
        tokenizer files) to ``<run_dir>/hf_export`` (``model=hf`` only).
    """

    sft: SFTConfig = SFTConfig()
    rl: RLConfig = RLConfig()
    preference: PreferenceConfig = PreferenceConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    eval_every: int = 100
    kl_every: int = 25
    resume: bool = False
    overwrite: bool = False
    resume_allow: tuple[str, ...] = ()
    progress: bool = True
    nan_at_step: int = -1
    eval: EvalConfig = EvalConfig()
    logging: LoggingConfig = LoggingConfig()
    export_hf: bool = False

    def __post_init__(self) -> None:
        _check(self.eval_every >= 0, "eval_every", ">= 0", self.eval_every)
        _check(self.kl_every >= 0, "kl_every", ">= 0", self.kl_every)
        _check(self.nan_at_step >= -1, "nan_at_step", ">= -1", self.nan_at_step)
