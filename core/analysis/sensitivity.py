"""Reward→policy sensitivity by forward-mode differentiation through a whole training run.

The policy-cliff sweeps measure how far training moves the policy when the reward moves by
``ε·δ`` with finite differences: many runs per point, noisy, blind between grid points. Here
the tangent of ``ε`` is carried through every RL step (rollout, advantages, the objective's
loss and gradient, the optimizer), so one run gives the primal and the directional derivative

    θ_T(ε),  dθ_T/dε          (jax.jvp of the lax.scan over steps, tangent 1 on ε)

at a cost of a small multiple of a plain run (measured in docs/sensitivity.md).

What the derivative is conditioned on. Sampling is discrete: tokens have no tangent, so the
derivative holds the sampled completions fixed. With replayed rollouts the data are fixed by
construction and ``dθ_T/dε`` is the exact derivative of the replayed run; with fresh
sampling it is the *pathwise* derivative given the samples the run drew, which omits how a
change of the policy would change what is sampled later. Finite differences with common
random numbers (the sweeps) include that effect once the change is large enough to flip a
sample, so they agree with the pathwise slope only while ``ε`` is small enough that the runs
at ``±ε`` draw the same tokens.

Non-smooth objectives get the derivative JAX defines at their kinks: the min of PPO-clip and
the hard clips of DAPO, DISPO and CISPO's weights are piecewise in the log-ratio (a clipped
token contributes no ratio derivative, and at a tie JAX picks one branch); MHPO's log-fidelity
modulator is smooth in the log-ratio, so its slope is the ordinary derivative. Derived
quantities of the final policy (on the enumerable answer sets of the digit tasks):

* ``tv_slope = ½ Σ_a |dπ(a|x)/dε|``: the first-order slope of ``TV(π_ε, π_0)`` at ε = 0;
* ``kl_curvature = ½ Σ_a (dπ/dε)² / π``: KL(π_ε ‖ π_0) ≈ curvature·ε² (its first-order slope
  is 0);
* ``reward_slope = Σ_a r(a) dπ/dε`` and ``delta_slope = Σ_a δ(a) dπ/dε`` (the tie-breaker
  shift rate: how fast probability moves onto what δ rewards);
* ``logp_slope``: ``d log π(y_t | x, y_<t)/dε`` of given completions (per token).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from cliffjax.analysis.answers import answer_distribution
from cliffjax.analysis.perturbations import Perturbation, RewardShift
from cliffjax.sampling import score

Array = jax.Array
PyTree = Any


class Sensitivity(NamedTuple):
    """Primal and tangent of one training run with respect to ``ε``.

    Attributes:
      params: final parameters ``θ_T(ε)``.
      tangent: ``dθ_T/dε`` (same tree).
      metrics: per-step training metrics ``[steps]``.
      metrics_tangent: their derivatives ``d/dε`` ``[steps]`` (e.g. of ``reward_mean``).
    """

    params: PyTree
    tangent: PyTree
    metrics: dict[str, Array]
    metrics_tangent: dict[str, Array]


def make_sensitivity(train: Any) -> Any:
    """``sens(params, key, eps, perturbation, reference=None, replays=None) -> Sensitivity``.

    ``train`` is the in-graph driver of a program with a reward transform
    (``cliffjax.training.rl.make_rl_train(program)``). The returned function is pure: jit it,
    and ``jax.vmap`` it over seeds (keys) or ε.
    """

    def sens(
        params: PyTree,
        key: Array,
        eps: Array,
        perturbation: Perturbation,
        reference: PyTree | None = None,
        replays: Any = None,
    ) -> Sensitivity:
        if reference is None:
            reference = params  # fixed: the derivative is with respect to ε only

        def run(e):
            final, metrics, _ = train(params, key, reference, RewardShift(e, perturbation), replays)
            return final, metrics

        eps = jnp.asarray(eps, jnp.float32)
        (final, metrics), (d_final, d_metrics) = jax.jvp(run, (eps,), (jnp.ones_like(eps),))
        return Sensitivity(final, d_final, metrics, d_metrics)

    return sens


class DistributionSlopes(NamedTuple):
    """First-order response of the answer distribution on ``E`` prompts.

    Attributes:
      dist: ``[E, A + 1]`` the distribution (last column: "other").
      d_dist: ``[E, A + 1]`` its derivative ``dπ/dε``.
      tv_slope: ``[E]`` ``½ Σ |dπ/dε|``.
      kl_curvature: ``[E]`` ``½ Σ (dπ/dε)² / π`` over outcomes with ``π > 0``.
    """

    dist: Array
    d_dist: Array
    tv_slope: Array
    kl_curvature: Array


def distribution_slopes(
    graphdef: Any,
    params: PyTree,
    tangent: PyTree,
    prompts: Array,
    candidates: Array,
    cand_mask: Array,
    floor: float = 1e-30,
) -> DistributionSlopes:
    """The exact answer distribution and its directional derivative along ``tangent``."""

    def dist_of(p):
        return answer_distribution(graphdef, p, prompts, candidates, cand_mask)

    dist, d_dist = jax.jvp(dist_of, (params,), (tangent,))
    tv = 0.5 * jnp.sum(jnp.abs(d_dist), axis=-1)
    kl2 = 0.5 * jnp.sum(jnp.where(dist > floor, d_dist**2 / jnp.maximum(dist, floor), 0.0), -1)
    return DistributionSlopes(dist, d_dist, tv, kl2)


def logp_slope(
    graphdef: Any, params: PyTree, tangent: PyTree, prompts: Array, completions: Array
) -> tuple[Array, Array]:
    """``(logp [B, N], d logp/dε [B, N])`` of given completions under ``θ_T`` along the
    tangent."""
    return jax.jvp(lambda p: score(graphdef, p, prompts, completions), (params,), (tangent,))
