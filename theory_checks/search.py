"""Gradient-ascent searches for worst cases of the Lipschitz ratios (JAX + optax, float64).

Random sampling rarely finds the worst case of a Lipschitz bound (random MDP perturbations
reach ~0.87 of the soft-policy bound). These searches maximise the ratio
``measured / bound`` directly by Adam on the inputs, so a bound that is not tight, or a bug that
makes the measured value exceed it, shows up.

All computations run under ``jax.enable_x64(True)``; the ratios are compared to 1 at 1e-9.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax


def _tv(p: jax.Array, q: jax.Array) -> jax.Array:
    return 0.5 * jnp.sum(jnp.abs(p - q), axis=-1)


def softmax_ratio_ascent(
    num_actions: int, alpha: float, seed: int, steps: int = 400, lr: float = 0.05
) -> float:
    """Maximise ``TV(softmax(x/alpha), softmax((x+d)/alpha)) / (||d||_inf / (2 alpha))`` over
    ``x`` and ``d`` (Lemma C.2 of arXiv 2507.20150 says the ratio is <= 1). Returns the best ratio.

    ``d = 1e-3 * alpha * tanh(u)`` keeps the perturbation small (the supremum is approached in
    the small-perturbation limit, where TV/||d|| tends to the Jacobian operator norm)."""
    with jax.enable_x64(True):
        key = jax.random.PRNGKey(seed)
        kx, ku = jax.random.split(key)
        params = {
            "x": jax.random.normal(kx, (num_actions,), jnp.float64),
            "u": jax.random.normal(ku, (num_actions,), jnp.float64),
        }

        def ratio(p):
            d = 1e-3 * alpha * jnp.tanh(p["u"])
            tv = _tv(jax.nn.softmax(p["x"] / alpha), jax.nn.softmax((p["x"] + d) / alpha))
            return tv / (jnp.max(jnp.abs(d)) / (2 * alpha))

        opt = optax.adam(lr)
        state = opt.init(params)

        @jax.jit
        def step(p, s):
            r, g = jax.value_and_grad(ratio)(p)
            g = jax.tree.map(lambda v: -v, g)
            upd, s = opt.update(g, s, p)
            return optax.apply_updates(p, upd), s, r

        best = 0.0
        for _ in range(steps):
            params, state, r = step(params, state)
            best = max(best, float(r))
        return max(best, float(ratio(params)))


def soft_policy_ratio_ascent(
    P: np.ndarray,
    R: np.ndarray,
    gamma: float,
    alpha: float,
    seed: int,
    steps: int = 150,
    lr: float = 0.1,
    delta: float = 1e-4,
) -> float:
    """Maximise ``max_s TV(pi_{R,alpha}(.|s), pi_{R+d,alpha}(.|s)) / (||d||_inf/(2 alpha (1-gamma)))``
    over ``d = delta * tanh(u)`` for a fixed MDP ``P[S,K,S]`` and reward ``R[S,K]``
    (Prop. 4.7 of arXiv 2507.20150 says the ratio is <= 1). Soft value iteration runs for a fixed
    number of sweeps so that gamma^n < 1e-16. Returns the best ratio found."""
    n_iter = 1 if gamma == 0 else int(np.ceil(np.log(1e-16) / np.log(gamma))) + 5
    with jax.enable_x64(True):
        P_ = jnp.asarray(P, jnp.float64)
        R_ = jnp.asarray(R, jnp.float64)

        def soft_pi(Rx):
            def body(_, Q):
                V = alpha * jax.nn.logsumexp(Q / alpha, axis=-1)
                return Rx + gamma * jnp.einsum("sat,t->sa", P_, V)

            Q = jax.lax.fori_loop(0, n_iter, body, Rx)
            return jax.nn.softmax(Q / alpha, axis=-1)

        pi0 = soft_pi(R_)
        bound_per_unit = 1.0 / (2 * alpha * (1 - gamma))

        def ratio(u):
            d = delta * jnp.tanh(u)
            tv = jnp.max(_tv(soft_pi(R_ + d), pi0))
            return tv / (jnp.max(jnp.abs(d)) * bound_per_unit)

        u = jax.random.normal(jax.random.PRNGKey(seed), R.shape, jnp.float64)
        opt = optax.adam(lr)
        state = opt.init(u)

        @jax.jit
        def step(u, s):
            r, g = jax.value_and_grad(ratio)(u)
            upd, s = opt.update(-g, s, u)
            return optax.apply_updates(u, upd), s, r

        best = 0.0
        for _ in range(steps):
            u, state, r = step(u, state)
            best = max(best, float(r))
        return max(best, float(ratio(u)))
