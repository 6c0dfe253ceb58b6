"""Checks that train with the project's own objectives and optax (so they test the code too).

* TR-1: entropy-regularized policy gradient, built from the project's PPO-clip objective on an
  enumerated (exact-expectation) batch plus an explicit entropy bonus, converges to the
  soft-optimal policy softmax(r/alpha) of Sec. 4.4 of arXiv 2507.20150, and the trained map is
  Lipschitz with the Prop. 4.7 constant.
* CL-1: clipping lowers policy entropy under random rewards (arXiv 2512.16912, abstract; Park et
  al. arXiv 2509.26114), simulated with the project's DAPO/PPO-clip loss and group advantages in
  the regime the team notes fix (a peaked policy over many actions).

The entropy bonus is NOT part of ``cliffjax.objectives``; it is added here explicitly as
``loss_total = loss_sum/denominator - alpha * mean_s H(pi(.|s))``.
All JAX code runs under ``jax.enable_x64(True)``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cliffjax.objectives import AdvantageConfig, PolicyBatch, compute_advantages, get_objective
from cliffjax.theory_checks import maps
from cliffjax.theory_checks.cliff_checks import PAPER, _n
from cliffjax.theory_checks.record import CheckRecord, verdict_of

CLIP_PAPER = "arXiv 2512.16912"

# ---------------------------------------------------------------------------------------------
# TR-1  entropy-regularized gradient ascent -> softmax(r/alpha)
# ---------------------------------------------------------------------------------------------


def _exact_pg_loss(theta: jax.Array, rewards: jax.Array, alpha: float, spec, cfg) -> jax.Array:
    """Entropy-regularized loss of a contextual bandit with logits ``theta[S, K]``.

    The batch enumerates every (context, action) pair once (B = S*K sequences of one token);
    advantages ``K * pi_old(a|s) * (r(s,a) - E_pi_old r(s))`` make the token-mean PPO surrogate
    equal to the exact expected return at ratio 1, so its gradient is the exact policy gradient
    (on-policy, ``logp_old = stop_gradient(logp)``: clipping is inactive)."""
    S, K = rewards.shape
    logp = jax.nn.log_softmax(theta, axis=-1)
    p_old = jax.lax.stop_gradient(jnp.exp(logp))
    adv = K * p_old * (rewards - jnp.sum(p_old * rewards, axis=-1, keepdims=True))
    batch = PolicyBatch(
        logp=logp.reshape(S * K, 1),
        logp_old=jax.lax.stop_gradient(logp).reshape(S * K, 1),
        mask=jnp.ones((S * K, 1)),
        advantages=adv.reshape(S * K),
    )
    loss_sum, denom, _ = spec.loss(batch, cfg)
    entropy = -jnp.sum(jnp.exp(logp) * logp, axis=-1)  # explicit entropy bonus (not in core)
    return loss_sum / denom - alpha * jnp.mean(entropy)


def train_entropy_regularized(
    rewards: np.ndarray, alpha: float, steps: int, lr: float
) -> np.ndarray:
    """Adam (cosine-decayed step size ``lr -> lr*1e-2``) on :func:`_exact_pg_loss` from uniform
    logits; returns the policy ``[S, K]``. The decay matters: at a constant step Adam hovers
    ~1e-3 (TV) around the optimum, with the decay it lands at float64 precision."""
    spec = get_objective("dapo")
    cfg = dataclasses.replace(spec.default_config, beta=0.0, aggregation="token-mean")
    with jax.enable_x64(True):
        r = jnp.asarray(rewards, jnp.float64)
        opt = optax.adam(optax.cosine_decay_schedule(lr, steps, 1e-2))

        def body(carry, _):
            th, st = carry
            g = jax.grad(_exact_pg_loss)(th, r, alpha, spec, cfg)
            u, st = opt.update(g, st, th)
            return (optax.apply_updates(th, u), st), None

        @jax.jit
        def run(th0):
            (th, _), _ = jax.lax.scan(body, (th0, opt.init(th0)), None, length=steps)
            return jax.nn.softmax(th, axis=-1)

        return np.asarray(run(jnp.zeros_like(r)))


def check_entropy_gradient_ascent(size: str = "full", seed: int = 0) -> CheckRecord:
    """Gradient ascent on E_pi r + alpha H(pi) (project PPO-clip loss + explicit entropy, Adam)
    converges to softmax(r/alpha) (contexts with ties included), and the trained policies for r
    and r + d differ by at most ||d||/(2 alpha) in TV (Prop. 4.7 with gamma = 0)."""
    rng = np.random.default_rng(seed)
    S, K, alpha = 4, 6, 0.2
    steps = 20000
    R = rng.normal(size=(S, K))
    R[0, :3] = R[0].max() + 0.3  # a three-way tie in context 0
    R[1] = np.round(R[1])  # integer-valued rewards: ties likely
    R[2, :2] = R[2].max() + 1.5  # a two-way tie, the other arms >= 7.5 nats below at alpha=0.2
    pi = train_entropy_regularized(R, alpha, steps, 0.1)
    err = float(np.max(maps.tv_distance(pi, maps.softmax(R, alpha))))
    # trained-map Lipschitz: move the two tied arms of context 2 apart (the worst direction)
    delta = 1e-4
    d = np.zeros_like(R)
    d[2, :2] = (delta, -delta)
    pi_d = train_entropy_regularized(R + d, alpha, steps, 0.1)
    ratio = float(np.max(maps.tv_distance(pi, pi_d))) / (delta / (2 * alpha))
    hard = maps.tv_distance(maps.hard_policy(R, "uniform"), maps.hard_policy(R + d, "uniform"))
    ok = err < 1e-8 and ratio <= 1 + 1e-6 and ratio >= 0.99
    return CheckRecord(
        "TR-1",
        "Entropy-regularized policy gradient with the project's PPO-clip loss converges to "
        "softmax(r/alpha), and the trained reward->policy map is Lipschitz with constant 1/(2 alpha)",
        f"{PAPER} Sec. 4.4 (soft-optimal policy), Prop. 4.7",
        {
            "contexts": S,
            "actions": K,
            "alpha": alpha,
            "steps": steps,
            "optimizer": "adam, cosine decay 0.1 -> 1e-3",
        },
        seed,
        1.0,
        ratio,
        "<=",
        ratio,
        verdict_of(ok),
        f"Max TV between the trained and the exact soft-optimal policy: {err:.1e} (tolerance "
        f"1e-8). measured = TV between policies trained on r and r+d (||d|| = {delta}) divided "
        f"by ||d||/(2 alpha): {ratio:.4f}; the hard uniform-tie policy jumps by TV "
        f"{float(hard[2]):.4f} on the same perturbation.",
        {"tv_to_softmax": err, "trained_lipschitz_ratio": ratio, "hard_tv": float(hard[2])},
    )


# ---------------------------------------------------------------------------------------------
# CL-1  clipping lowers entropy under random rewards
# ---------------------------------------------------------------------------------------------

CLIP_SCHEMES = {
    "no-clip": (1e6, 1e6),
    "sym": (0.2, 0.2),
    "hi-only": (1e6, 0.2),
    "lo-only": (0.2, 1e6),
    "dapo": (0.2, 0.28),
}


def _entropy(th: jax.Array) -> jax.Array:
    lp = jax.nn.log_softmax(th)
    return -jnp.sum(jnp.exp(lp) * lp)


@functools.partial(jax.jit, static_argnames=("lr",))
def _clipped_updates(th0, actions, rewards, n_epochs, lr):
    """Entropy after ``n_epochs`` SGD steps on the project's PPO-clip loss, for every draw and
    every clip scheme: ``{scheme: [draws]}``. ``actions, rewards: [draws, G]``; ``n_epochs`` is
    data, and all schemes share one compilation (compiling them separately cost ~3 s each)."""
    return {
        name: _clipped_updates_one(th0, actions, rewards, n_epochs, lo, hi, lr)
        for name, (lo, hi) in CLIP_SCHEMES.items()
    }


def _clipped_updates_one(th0, actions, rewards, n_epochs, eps_low, eps_high, lr):
    spec = get_objective("dapo")
    cfg = dataclasses.replace(
        spec.default_config, beta=0.0, aggregation="token-mean", eps_low=eps_low, eps_high=eps_high
    )
    G = actions.shape[1]
    opt = optax.sgd(lr)

    def one(a, r):
        adv, _ = compute_advantages(r, G, AdvantageConfig("group_std"))
        logp_old = jax.nn.log_softmax(th0)[a][:, None]

        def loss(th):
            batch = PolicyBatch(
                logp=jax.nn.log_softmax(th)[a][:, None],
                logp_old=logp_old,
                mask=jnp.ones((G, 1)),
                advantages=adv,
            )
            s, n, _ = spec.loss(batch, cfg)
            return s / n

        def body(_, carry):
            th, st = carry
            u, st = opt.update(jax.grad(loss)(th), st, th)
            return optax.apply_updates(th, u), st

        th, _ = jax.lax.fori_loop(0, n_epochs, body, (th0, opt.init(th0)))
        return _entropy(th)

    return jax.vmap(one)(actions, rewards)


def clipping_entropy_biases(
    draws: int, seed: int, epochs: int = 4, lr: float = 0.5, K: int = 50, G: int = 8
) -> dict[str, tuple[float, float]]:
    """Paired Monte Carlo of ``b_scheme = E[H(theta+_scheme)] - E[H(theta+_noclip)]``.

    One draw: sample G actions from ``pi_0`` (logits ``theta_0[0] = 5``, others N(0, 0.5^2)),
    rewards i.i.d. Bernoulli(1/2) independent of the action, group-standardised advantages
    (project ``compute_advantages``), then ``epochs`` SGD steps of size ``lr`` on the project's
    PPO-clip loss (token-mean, beta = 0) with clip range ``(eps_low, eps_high)``. Every scheme
    sees the same draws. Returns ``{scheme: (mean bias, standard error)}`` and the no-clip
    entropy change under ``"dH_noclip"``."""
    rng = np.random.default_rng(seed)
    theta0 = rng.normal(0, 0.5, K)
    theta0[0] = 5.0
    with jax.enable_x64(True):
        th0 = jnp.asarray(theta0)
        ka, kr = jax.random.split(jax.random.PRNGKey(seed))
        actions = jax.random.categorical(ka, th0, shape=(draws, G))
        rewards = jax.random.bernoulli(kr, 0.5, (draws, G)).astype(jnp.float64)
        out = {
            k: np.asarray(v) for k, v in _clipped_updates(th0, actions, rewards, epochs, lr).items()
        }
        h0 = float(_entropy(th0))
    res = {}
    for name in CLIP_SCHEMES:
        diff = out[name] - out["no-clip"]
        res[name] = (float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(draws)))
    res["dH_noclip"] = (
        float(out["no-clip"].mean() - h0),
        float(out["no-clip"].std(ddof=1) / np.sqrt(draws)),
    )
    return res


def check_clipping_entropy(size: str = "full", seed: int = 0) -> CheckRecord:
    """Under action-independent Bernoulli(1/2) rewards, PPO-clip with symmetric eps = 0.2 lowers
    the entropy relative to no clipping in a peaked many-action policy; the upper clip lowers it,
    the lower clip raises it, DAPO's wider upper clip (0.28) removes part of the bias; with one
    epoch (ratio = 1) clipping is inactive and all schemes coincide."""
    draws = _n(size, 600, 4000)
    z_min = 3.0 if size == "small" else 5.0
    res = clipping_entropy_biases(draws, seed)
    one = clipping_entropy_biases(draws, seed, epochs=1)  # same shapes: no recompilation
    same_at_one = max(abs(one[k][0]) for k in CLIP_SCHEMES) < 1e-12
    z = {k: res[k][0] / res[k][1] for k in CLIP_SCHEMES if k != "no-clip"}
    ok = z["sym"] < -z_min and z["hi-only"] < -z_min and z["lo-only"] > z_min
    ok &= res["sym"][0] < res["dapo"][0] < 0 and same_at_one
    b, se = res["sym"]
    return CheckRecord(
        "CL-1",
        "Clipping bias lowers policy entropy under random (spurious) rewards: symmetric PPO-clip "
        "ends with lower entropy than the unclipped update (peaked policy, many actions)",
        f"{CLIP_PAPER} (abstract; theorem text not read); arXiv 2509.26114 (abstract)",
        {
            "actions": 50,
            "group": 8,
            "epochs": 4,
            "lr": 0.5,
            "draws": draws,
            "schemes": {k: list(v) for k, v in CLIP_SCHEMES.items()},
        },
        seed,
        0.0,
        b,
        "<=",
        None,
        verdict_of(ok),
        f"measured = b_sym = E[H_sym] - E[H_noclip] = {b:.4f} +- {se:.4f} (z = {z['sym']:.1f}); "
        f"hi-only {res['hi-only'][0]:.4f} +- {res['hi-only'][1]:.4f}, lo-only "
        f"{res['lo-only'][0]:+.4f} +- {res['lo-only'][1]:.4f}, DAPO (0.2, 0.28) "
        f"{res['dapo'][0]:.4f} +- {res['dapo'][1]:.4f}; unclipped entropy change "
        f"{res['dH_noclip'][0]:+.4f}. One epoch: all schemes identical ({same_at_one}). "
        "Regime from our notes (theta0[0]=5, others N(0,0.5^2), SGD lr 0.5, 4 epochs); at tiny "
        "near-uniform policies the symmetric sign is not robust, so the regime is fixed.",
        {k: list(v) for k, v in res.items()},
    )
