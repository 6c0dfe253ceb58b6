"""Cross-objective properties: finite differences (float64), invariances (hypothesis),
micro-batch additivity, on-policy reductions, robustness in float32/bfloat16.

All policy batches here have one shape (B=8 in 2 groups of 4, T=5; padded variant T=8), and
every (objective, config) is jitted once, so the file stays fast.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cliffjax.objectives import (
    AGGREGATION_MODES,
    AdvantageConfig,
    PolicyBatch,
    PreferenceBatch,
    compute_advantages,
    finalize_loss,
    get_objective,
)

B, T, G = 8, 5, 4
POLICY = ["grpo", "dapo", "dr_grpo", "ppo_clip", "gspo", "cispo", "dispo", "mhpo", "sapo"]


def _cfg(name, **kw):
    spec = get_objective(name)
    cfg = spec.default_config
    if name == "dr_grpo":  # a fixed C, so padding the width does not change the constant
        kw.setdefault("norm_constant", 5.0)
    if name == "ppo_clip":
        kw.setdefault("clip_ratio_c", 3.0)
        kw.setdefault("beta", 0.02)
        kw.setdefault("kl_estimator", "k3_ratio")
    return dataclasses.replace(cfg, **kw)


def policy_batch(seed, dtype=np.float64, t=T, spread=0.6, empty_row=True) -> PolicyBatch:
    rng = np.random.default_rng(seed)
    logp = -np.abs(rng.normal(size=(B, t))) - 0.05
    old = logp + spread * rng.normal(size=(B, t))
    ref = logp + 0.5 * rng.normal(size=(B, t))
    lengths = rng.integers(1, t + 1, size=B)
    if empty_row:
        lengths[rng.integers(B)] = 0
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.int32)
    rewards = rng.integers(0, 2, size=B).astype(dtype)
    adv = rng.normal(size=B)
    return PolicyBatch(
        jnp.asarray(logp, dtype),
        jnp.asarray(old, dtype),
        jnp.asarray(mask),
        jnp.asarray(adv, dtype),
        jnp.asarray(ref, dtype),
        jnp.asarray(rewards, dtype),
    )


@functools.cache
def parts_fn(name, cfg):
    """Jitted ``batch -> (loss_sum, denominator, d loss_sum / d logp)``."""
    loss = get_objective(name).loss

    def run(batch):
        def f(lp):
            s, d, _ = loss(batch._replace(logp=lp), cfg)
            return s, d

        (s, d), g = jax.value_and_grad(f, has_aux=True)(batch.logp)
        return s, d, g

    return jax.jit(run)


@functools.cache
def value_fn(name, cfg):
    loss = get_objective(name).loss
    return jax.jit(lambda batch: finalize_loss(*loss(batch, cfg)[:2]))


# ---------------------------------------------------------------- finite differences (float64)

FD_CASES = [
    ("grpo", {}),
    ("dapo", {}),
    ("dr_grpo", {}),
    ("ppo_clip", {}),
    ("gspo", {"eps_low": 0.2, "eps_high": 0.28}),
    ("mhpo", {"hazard_stop_gradient": False}),
    ("mhpo", {"hazard_split": "relu", "hazard_stop_gradient": False}),
]


@pytest.mark.parametrize(("name", "kw"), FD_CASES)
def test_gradient_matches_finite_differences(name, kw):
    """Objectives whose gradient is the derivative of their value: directional central
    differences (h = 1e-6) against autodiff, float64."""
    with jax.enable_x64(True):
        cfg = _cfg(name, **kw)
        b = policy_batch(1)
        f = value_fn(name, cfg)
        _, d, g = parts_fn(name, cfg)(b)
        g = g / d
        rng = np.random.default_rng(2)
        for _ in range(3):
            v = jnp.asarray(rng.normal(size=(B, T)))
            eps = 1e-6
            fd = (f(b._replace(logp=b.logp + eps * v)) - f(b._replace(logp=b.logp - eps * v))) / (
                2 * eps
            )
            assert float(fd) == pytest.approx(float(jnp.sum(g * v)), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize(
    ("name", "kw"), [("cispo", {}), ("dispo", {}), ("cispo", {"cap": "absolute"})]
)
def test_reinforce_gradient_matches_finite_differences_at_frozen_weight(name, kw):
    """CISPO/DISPO: the gradient is that of −sg(w)·Â·log π. Moving logp and logp_old together
    keeps r (hence w) fixed, so finite differences of the value then give the gradient."""
    with jax.enable_x64(True):
        cfg = _cfg(name, **kw)
        b = policy_batch(3)
        f = value_fn(name, cfg)
        _, d, g = parts_fn(name, cfg)(b)
        v = jnp.asarray(np.random.default_rng(4).normal(size=(B, T)))
        eps = 1e-6

        def moved(sign):
            return b._replace(logp=b.logp + sign * eps * v, logp_old=b.logp_old + sign * eps * v)

        fd = (f(moved(1)) - f(moved(-1))) / (2 * eps)
        assert float(fd) == pytest.approx(float(jnp.sum(g / d * v)), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name", ["dpo", "rpo"])
def test_preference_gradient_matches_finite_differences(name):
    with jax.enable_x64(True):
        pb = preference_batch(5)
        spec = get_objective(name)
        cfg = spec.default_config
        if name == "rpo":
            cfg = dataclasses.replace(cfg, eta=0.3, beta=0.2)

        def f(lc, lr):
            return finalize_loss(*spec.loss(pb._replace(logp_chosen=lc, logp_rejected=lr), cfg)[:2])

        gc, gr = jax.grad(f, argnums=(0, 1))(pb.logp_chosen, pb.logp_rejected)
        rng = np.random.default_rng(6)
        vc, vr = (jnp.asarray(rng.normal(size=pb.logp_chosen.shape)) for _ in range(2))
        eps = 1e-6
        fd = (
            f(pb.logp_chosen + eps * vc, pb.logp_rejected + eps * vr)
            - f(pb.logp_chosen - eps * vc, pb.logp_rejected - eps * vr)
        ) / (2 * eps)
        assert float(fd) == pytest.approx(float(jnp.sum(gc * vc) + jnp.sum(gr * vr)), rel=1e-6)


def preference_batch(seed, dtype=np.float64) -> PreferenceBatch:
    rng = np.random.default_rng(seed)
    shape = (6, 4)

    def lp():
        return jnp.asarray(-np.abs(rng.normal(size=shape)), dtype)

    def mask():
        lengths = rng.integers(1, shape[1] + 1, size=shape[0])
        return jnp.asarray((np.arange(shape[1])[None, :] < lengths[:, None]).astype(np.int32))

    return PreferenceBatch(lp(), lp(), lp(), lp(), mask(), mask())


# ------------------------------------------------------------------ on-policy reductions


@pytest.mark.parametrize("name", ["gspo", "cispo", "dispo", "ppo_clip"])
def test_on_policy_gradient_is_vanilla_pg(name):
    """r ≡ 1, β = 0: gradient = −w·Â (w the aggregation weight; constant 1). MHPO's constant
    e^{−ζ(1)} and GRPO/DAPO/Dr. GRPO are pinned in their own files."""
    with jax.enable_x64(True):
        cfg = _cfg(name, beta=0.0)
        b = policy_batch(7)
        b = b._replace(logp_old=b.logp)
        _, _, g = parts_fn(name, cfg)(b)
        m = np.asarray(b.mask, np.float64)
        lengths = m.sum(1, keepdims=True)
        w = m / np.maximum(lengths, 1) if cfg.aggregation == "seq-mean-token-mean" else m
        expect = -np.asarray(b.advantages)[:, None] * w
        np.testing.assert_allclose(np.asarray(g), expect, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------- invariances


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    name=st.sampled_from(POLICY),
    junk=st.sampled_from([1e4, -1e4, 0.0]),
)
def test_masked_positions_change_nothing(seed, name, junk):
    """Junk (±1e4) written into every masked position: same loss and gradient, and exactly zero
    gradient there (same shape as the other property tests, so no extra compile)."""
    with jax.enable_x64(True):
        cfg = _cfg(name)
        b = policy_batch(seed)
        valid = b.mask != 0
        put = lambda x, v: jnp.where(valid, x, v)
        bj = b._replace(
            logp=put(b.logp, junk), logp_old=put(b.logp_old, -junk), logp_ref=put(b.logp_ref, junk)
        )
        s1, d1, g1 = parts_fn(name, cfg)(b)
        s2, d2, g2 = parts_fn(name, cfg)(bj)
        assert float(d1) == float(d2)
        assert float(s2) == pytest.approx(float(s1), rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(np.asarray(g2), np.asarray(g1), rtol=1e-12, atol=1e-14)
        assert np.all(np.asarray(g2)[~np.asarray(valid)] == 0.0)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), name=st.sampled_from(["grpo", "gspo", "mhpo"]))
def test_extra_padding_columns_change_nothing(seed, name):
    """Three extra masked columns of junk (width 5 → 8): same loss, same gradient, zero gradient
    there. (Token-level objectives share the masking code, so three representatives keep the
    compile count down; the value-junk test above covers every objective.)"""
    with jax.enable_x64(True):
        cfg = _cfg(name)
        b = policy_batch(seed)
        pad = lambda x, v: jnp.concatenate([x, jnp.full((B, 3), v, x.dtype)], axis=1)
        bp = PolicyBatch(
            pad(b.logp, 1e4),
            pad(b.logp_old, -1e4),
            pad(b.mask, 0),
            b.advantages,
            pad(b.logp_ref, 1e4),
            b.rewards,
        )
        s1, d1, g1 = parts_fn(name, cfg)(b)
        s2, d2, g2 = parts_fn(name, cfg)(bp)
        assert float(d1) == float(d2)
        assert float(s2) == pytest.approx(float(s1), rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(np.asarray(g2[:, :T]), np.asarray(g1), rtol=1e-12, atol=1e-14)
        assert np.all(np.asarray(g2[:, T:]) == 0.0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), name=st.sampled_from(POLICY))
def test_permuting_sequences_changes_nothing(seed, name):
    with jax.enable_x64(True):
        cfg = _cfg(name)
        b = policy_batch(seed)
        perm = np.random.default_rng(seed + 1).permutation(B)
        bp = jax.tree.map(lambda x: x[perm], b)
        s1, d1, g1 = parts_fn(name, cfg)(b)
        s2, d2, g2 = parts_fn(name, cfg)(bp)
        assert float(d1) == float(d2)
        assert float(s2) == pytest.approx(float(s1), rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(np.asarray(g2), np.asarray(g1)[perm], rtol=1e-12, atol=1e-14)


def _split(b: PolicyBatch, rows):
    """Micro-batch = the rows in ``rows``, other rows fully masked (static shape)."""
    keep = jnp.asarray(rows)
    return b._replace(mask=b.mask * keep[:, None])


MICRO_CASES = [(n, None) for n in POLICY] + [("grpo", m) for m in AGGREGATION_MODES]


@pytest.mark.parametrize(("name", "mode"), MICRO_CASES)
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), cut=st.integers(1, B - 1))
def test_micro_batches_equal_whole_batch(name, mode, seed, cut):
    """Sums and denominators of two micro-batches (and their gradients) add up to the whole
    batch, for every objective at its default mode and for every mode (GRPO)."""
    with jax.enable_x64(True):
        cfg = _cfg(name) if mode is None else _cfg(name, aggregation=mode, norm_constant=5.0)
        b = policy_batch(seed)
        rows = np.arange(B) < cut
        s, d, g = parts_fn(name, cfg)(b)
        s1, d1, g1 = parts_fn(name, cfg)(_split(b, rows))
        s2, d2, g2 = parts_fn(name, cfg)(_split(b, ~rows))
        assert float(d1 + d2) == float(d)
        assert float(s1 + s2) == pytest.approx(float(s), rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(np.asarray(g1 + g2), np.asarray(g), rtol=1e-12, atol=1e-15)
        total = finalize_loss(s1 + s2, d1 + d2)
        assert float(total) == pytest.approx(float(finalize_loss(s, d)), rel=1e-12, abs=1e-12)


# ----------------------------------------------------------------------- robustness


def _extreme_batch(dtype):
    """Log-ratios of ±50, log-probs of −1e4, all-equal rewards in one group, a fully masked row."""
    b = policy_batch(11, dtype=np.float32, spread=0.1)
    logp = np.array(b.logp, np.float32)
    old = np.array(b.logp_old, np.float32)
    logp[0, 0], old[0, 0] = -1.0, -51.0  # log r = +50
    logp[1, 0], old[1, 0] = -51.0, -1.0  # log r = −50
    logp[2, 0] = -1e4
    mask = np.array(b.mask)
    mask[:, 0] = 1
    mask[5] = 0  # fully masked row
    rewards = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0], np.float32)  # 2nd group constant
    adv, aux = compute_advantages(jnp.asarray(rewards), G, AdvantageConfig())
    assert float(aux["zero_variance_frac"]) == 0.5
    return PolicyBatch(
        jnp.asarray(logp, dtype),
        jnp.asarray(old, dtype),
        jnp.asarray(mask),
        adv.astype(dtype),
        jnp.asarray(np.array(b.logp_ref), dtype),
        jnp.asarray(rewards, dtype),
    )


ROBUST_CASES = [(n, {}) for n in POLICY] + [("grpo", {"kl_estimator": e}) for e in ("k1", "k2")]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize(("base", "kw"), ROBUST_CASES)
def test_extreme_inputs_give_finite_values_and_gradients(base, kw, dtype):
    cfg = _cfg(base, **kw)
    b = _extreme_batch(dtype)
    s, d, g = parts_fn(base, cfg)(b)
    _, _, aux = get_objective(base).loss(b, cfg)
    assert np.isfinite(float(s)) and float(d) > 0
    assert np.all(np.isfinite(np.asarray(g, np.float32)))
    assert g.dtype == dtype
    assert all(np.isfinite(np.asarray(v, np.float32)).all() for v in aux.values())
    assert np.all(np.asarray(g[5], np.float32) == 0.0)  # fully masked row


@pytest.mark.parametrize("name", POLICY)
def test_fully_masked_batch(name):
    cfg = _cfg(name)
    b = policy_batch(12, dtype=np.float32)
    b = b._replace(mask=jnp.zeros_like(b.mask))
    s, d, g = parts_fn(name, cfg)(b)
    assert float(s) == 0.0 and float(d) == 0.0 and float(finalize_loss(s, d)) == 0.0
    assert np.all(np.asarray(g) == 0.0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("name", ["dpo", "rpo"])
def test_preference_extremes_are_finite(name, dtype):
    pb = preference_batch(13, dtype=np.float32)
    pb = jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, pb)
    pb = pb._replace(
        logp_chosen=pb.logp_chosen.at[0, 0].set(-1e4),
        logp_rejected=pb.logp_rejected.at[1, 0].set(-1e4),
        mask_chosen=pb.mask_chosen.at[2].set(0),
    )
    spec = get_objective(name)
    f = lambda lc: spec.loss(pb._replace(logp_chosen=lc), spec.default_config)[0]
    v, g = jax.value_and_grad(f)(pb.logp_chosen)
    assert np.isfinite(float(v)) and np.all(np.isfinite(np.asarray(g, np.float32)))
    assert np.all(np.asarray(g[2], np.float32) == 0.0)  # empty pair skipped


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_gradient_regions_on_random_batches(seed):
    """PPO-clip (DAPO ε): token gradient is exactly 0 iff the clip binds in Â's direction;
    CISPO/DISPO: every valid token with Â ≠ 0 gets a non-zero gradient (log-ratio spread 0.6)."""
    with jax.enable_x64(True):
        b = policy_batch(seed)
        valid = np.asarray(b.mask) != 0
        r = np.exp(np.asarray(b.logp - b.logp_old))
        a = np.broadcast_to(np.asarray(b.advantages)[:, None], r.shape)
        cfg = _cfg("dapo")
        _, _, g = parts_fn("dapo", cfg)(b)
        binds = ((a > 0) & (r > 1 + cfg.eps_high)) | ((a < 0) & (r < 1 - cfg.eps_low))
        zero = np.asarray(g) == 0.0
        assert np.array_equal(zero & valid, (binds | (a == 0)) & valid)
        for name in ("cispo", "dispo"):
            _, _, g = parts_fn(name, _cfg(name))(b)
            assert np.all(np.asarray(g)[valid & (a != 0)] != 0.0)
