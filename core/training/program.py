"""What one RL step computes, as one static (hashable) value: :class:`RLProgram`.

The rollout phase, the update phase and both drivers (the main job's Python loop and the
sweeps' ``lax.scan``) read every setting from here, so an option exists once::

    program = RLProgram(graphdef, task, spec, obj_cfg, rl)             # main job
    program = RLProgram(graphdef, FixedPrompts(task, ...), spec, obj_cfg, rl,
                        transform=PerturbedReward(...))                # policy-cliff sweep

Equal programs hash equal, so jit'd phases that take the program as a static argument compile
once per process for equal settings.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import optax

from cliffjax.objectives import AdvantageConfig
from cliffjax.objectives.registry import ObjectiveSpec
from cliffjax.sampling import SamplingConfig
from cliffjax.tasks.base import sampling_config
from cliffjax.training.config import RLConfig
from cliffjax.training.state import make_optimizer


@dataclasses.dataclass(frozen=True)
class RLProgram:
    """The static inputs of an RL step.

    Attributes:
      graphdef: the policy's structure (``cliffjax.models.policy.Policy.graphdef``).
      task: a task (``cliffjax.tasks.Task``): prompts, reward, generation budget.
      spec: the registered policy objective (``get_objective(name)``).
      obj_cfg: its config; its KL coefficient (``spec.kl_field``) turns the reference on.
      rl: the RL settings (batch geometry, sampling, shaping, entropy bonus, optimizer).
      transform: optional reward transform with a method
        ``delta(perturbation, completions, meta, components) -> [B]``: the rollout adds
        ``shift.eps · delta`` to the reward when a ``RewardShift`` is passed to the step (the
        policy-cliff ``r + ε·δ``); ``None`` = the task's reward only.
    """

    graphdef: Any
    task: Any
    spec: ObjectiveSpec
    obj_cfg: Any
    rl: RLConfig
    transform: Any = None

    def __post_init__(self) -> None:
        if self.spec.kind != "policy":
            raise ValueError(
                f"RLProgram.spec must be a policy objective; {self.spec.name!r} is a "
                f"{self.spec.kind} objective"
            )
        if not isinstance(self.obj_cfg, self.spec.config_cls):
            raise ValueError(
                f"RLProgram.obj_cfg must be a {self.spec.config_cls.__name__} for "
                f"{self.spec.name!r}, got {type(self.obj_cfg).__name__}"
            )

    @property
    def sampling(self) -> SamplingConfig:
        """Rollout sampler settings: ``group_size`` completions per prompt, groups contiguous."""
        rl = self.rl
        return sampling_config(
            self.task,
            temperature=rl.temperature,
            top_k=rl.top_k,
            top_p=rl.top_p,
            group_size=rl.group_size,
        )

    @property
    def samples_policy(self) -> bool:
        """Whether the sampling distribution is the policy itself (temperature 1, no
        filtering): then the sampler's log-probs are ``logp_old`` without re-scoring."""
        rl = self.rl
        return rl.temperature == 1.0 and rl.top_k == 0 and rl.top_p == 1.0

    @property
    def adv_cfg(self) -> AdvantageConfig:
        """The advantage estimator: ``rl.advantage`` or the objective's default."""
        return AdvantageConfig(estimator=self.rl.advantage or self.spec.advantage)

    @property
    def kl_coef(self) -> float:
        """The objective's KL coefficient (0 when it has none or it is off)."""
        return self.spec.kl_coef(self.obj_cfg)

    @property
    def needs_reference(self) -> bool:
        """Whether the update needs the reference policy's log-probs (KL term on)."""
        return self.kl_coef > 0

    @property
    def n_prompts(self) -> int:
        """Prompts sampled per step (``prompts_per_step × oversample`` with dynamic sampling)."""
        rl = self.rl
        return rl.prompts_per_step * (rl.oversample if rl.dynamic_sampling else 1)

    @property
    def batch_size(self) -> int:
        """``B = prompts_per_step × group_size`` sequences per update."""
        return self.rl.prompts_per_step * self.rl.group_size

    @property
    def total_updates(self) -> int:
        """Optimizer updates of the whole RL phase (the learning-rate schedule's length)."""
        rl = self.rl
        return max(rl.steps * rl.epochs * rl.minibatches, 1)

    def optimizer(self) -> optax.GradientTransformation:
        """The optimizer of the update phase (build the initial state with it)."""
        return make_optimizer(self.rl.optim, self.total_updates)

    def update_tokens(self) -> int:
        """Sequence tokens through the update's forward + backward passes per step:
        ``B × (prompt + N) × epochs`` (padding included: it is computed)."""
        task = self.task
        return self.batch_size * (task.prompt_len + task.max_new_tokens) * self.rl.epochs
