"""Reward perturbations ``r' = r + ε·δ`` of the policy-cliff experiments.

``δ`` is a :class:`Perturbation` (a per-(prompt, answer) bonus table and a direction over the
reward components). Inside training, a :class:`RewardShift` ``(ε, δ)`` is a traced argument of
the RL step (so ``jax.vmap`` runs many ε in one program) and :class:`PerturbedReward` is the
static reward transform that evaluates ``δ`` on sampled completions.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from cliffjax.analysis.answers import answer_index

Array = jax.Array


PERTURBATIONS = ("random", "ties", "reweight")


class Perturbation(NamedTuple):
    """``δ(x, y) = table[x, answer(y)] · 1[y ∈ A_L] + Σ_k weights[k] · c_k(x, y)``.

    Attributes:
      table: ``[n_prompts, A]`` float32 per-(training prompt, answer) bonus (zeros for
        ``reweight``).
      weights: ``[K]`` float32 direction over the task's reward components, in the sorted order
        of their names (zeros unless ``reweight``).
    """

    table: Array
    weights: Array


def perturbation_value(
    pert: Perturbation,
    prompt_idx: Array,
    answer_idx: Array,
    components: dict[str, Array],
) -> Array:
    """``δ[B]`` for completions with answer indices ``answer_idx[B]`` (−1: not an answer)."""
    bonus = pert.table[prompt_idx, jnp.maximum(answer_idx, 0)]
    delta = jnp.where(answer_idx >= 0, bonus, 0.0)
    names = sorted(components)
    if pert.weights.shape[0]:
        comps = jnp.stack([components[n].astype(jnp.float32) for n in names], axis=1)
        delta = delta + comps @ pert.weights
    return delta.astype(jnp.float32)


def make_perturbation(
    kind: str,
    key: Array,
    answer_rewards: Array,
    component_names: tuple[str, ...],
    reweight: tuple[float, ...] = (),
) -> Perturbation:
    """Build δ for ``n_prompts`` training prompts from their exact answer rewards ``[n, A]``.

    * ``random``: one bonus ``u_a ~ U[−1, 1]`` per answer string, the same for every prompt
      (``‖δ‖∞ ≤ 1``).
    * ``ties``: for each prompt, bonus 1 on one correct answer (drawn uniformly among the
      answers of maximal reward with ``key``) and 0 elsewhere — the tie-breaker of Prop. 2.9 /
      3.2; with ``m`` tied optima the unregularised optimum jumps from the tie set to that one
      answer for any ε > 0.
    * ``reweight``: ``δ = Σ_k d_k c_k`` over the reward components with direction ``d`` =
      ``reweight`` (one weight per component, in sorted name order): the multi-reward weight
      change ``w → w + ε d`` of Prop. 4.6 / the weight cliff.
    """
    n, a = answer_rewards.shape
    zeros_w = jnp.zeros((0,), jnp.float32)
    if kind == "random":
        table = jnp.broadcast_to(jax.random.uniform(key, (a,), minval=-1.0, maxval=1.0), (n, a))
        return Perturbation(jnp.asarray(table, jnp.float32), zeros_w)
    if kind == "ties":
        best = answer_rewards >= jnp.max(answer_rewards, axis=1, keepdims=True) - 1e-6
        # Uniform choice among the maximisers: the argmax of masked Gumbel noise.
        g = jax.random.gumbel(key, (n, a))
        chosen = jnp.argmax(jnp.where(best, g, -jnp.inf), axis=1)
        return Perturbation(jax.nn.one_hot(chosen, a, dtype=jnp.float32), zeros_w)
    if kind == "reweight":
        if len(reweight) != len(component_names):
            raise ValueError(
                f"sweep.reweight must give one weight per reward component {list(component_names)} "
                f"(sorted), got {list(reweight)}"
            )
        return Perturbation(jnp.zeros((n, a), jnp.float32), jnp.asarray(reweight, jnp.float32))
    raise ValueError(f"perturbation must be one of {PERTURBATIONS}, got {kind!r}")


class RewardShift(NamedTuple):
    """``(ε, δ)`` of ``r' = r + ε·δ``: a pytree argument of the RL step (vmap over ``eps``).

    Attributes:
      eps: float32 scalar ε.
      perturbation: the direction δ.
    """

    eps: Array
    perturbation: Perturbation


@dataclasses.dataclass(frozen=True)
class PerturbedReward:
    """The reward transform of the policy-cliff runs: ``δ`` of sampled completions.

    Static (hashable) part of the transform; ``δ`` itself comes in as a traced
    :class:`RewardShift`. Needs ``meta["prompt_idx"]`` (the index of each row's prompt in the
    fixed training set, see ``cliffjax.tasks.FixedPrompts``).

    Attributes:
      max_digits: L of the answer set.
      digit0_id: token id of ``"0"``.
      eos_id: end-of-sequence id.
    """

    max_digits: int
    digit0_id: int
    eos_id: int

    def delta(
        self,
        perturbation: Perturbation,
        completions: Array,
        meta: dict[str, Array],
        components: dict[str, Array],
    ) -> Array:
        """``δ[B]`` float32 of completions ``[B, N]`` (rows' prompts in ``meta["prompt_idx"]``)."""
        aidx = answer_index(completions, self.max_digits, self.digit0_id, self.eos_id)
        return perturbation_value(perturbation, meta["prompt_idx"], aidx, components)
