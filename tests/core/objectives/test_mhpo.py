"""MHPO: hand values, reported constants, multiplier bound, stop-gradient, limits."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.objectives import PolicyBatch, get_objective
from cliffjax.objectives.mhpo import hazard, mhpo_weight

SPEC = get_objective("mhpo")


def _grid_batch(log_ratio, adv=1.0):
    """One row per log-ratio value (one token each), constant advantage."""
    n = log_ratio.shape[0]
    return PolicyBatch(
        logp=log_ratio[:, None],
        logp_old=jnp.zeros((n, 1), log_ratio.dtype),
        mask=jnp.ones((n, 1)),
        advantages=jnp.full((n,), adv, log_ratio.dtype),
    )


def test_reported_constants_at_defaults(x64):
    """ζ(1) = (ln2/λ₊)^{k₊} + (ln2/λ₋)^{k₋} ≈ 1.32779, e^{−ζ(1)} ≈ 0.26506 (softplus split);
    spot values from the notes: w(0.5) ≈ 0.0669, w(2) ≈ 0.4802."""
    cfg = SPEC.default_config
    z1 = float(hazard(jnp.array(0.0), cfg))
    assert z1 == pytest.approx((np.log(2) / 1.0) ** 1.5 + (np.log(2) / 0.8) ** 2.0, rel=1e-12)
    assert z1 == pytest.approx(1.32779, abs=1e-5)
    w, _, _ = mhpo_weight(jnp.log(jnp.array([1.0, 0.5, 2.0])), cfg)
    np.testing.assert_allclose(np.asarray(w), [0.26506, 0.0669, 0.4802], atol=1e-4)


def test_relu_split_is_zero_at_one(x64):
    cfg = dataclasses.replace(SPEC.default_config, hazard_split="relu")
    assert float(hazard(jnp.array(0.0), cfg)) == 0.0
    w, _, _ = mhpo_weight(jnp.array([0.0]), cfg)
    assert float(w[0]) == 1.0


def test_hand_value(x64):
    """Two tokens, log r = ±0.4, Â = (1, −1): ℓ = −Σ Â·exp(ψ − ζ), seq-mean over 2 rows."""
    cfg = SPEC.default_config
    u = np.array([0.4, -0.4])
    psi = 1.5 * np.tanh(u / 1.5)
    sp = np.log1p(np.exp(psi))
    sn = np.log1p(np.exp(-psi))
    zeta = sp**1.5 + (sn / 0.8) ** 2
    w = np.exp(psi - zeta)
    b = _grid_batch(jnp.asarray(u))._replace(advantages=jnp.array([1.0, -1.0]))
    s, d, aux = SPEC.loss(b, cfg)
    assert float(s / d) == pytest.approx((-w[0] + w[1]) / 2, rel=1e-12)
    assert float(aux["hazard_max"]) == pytest.approx(zeta.max(), rel=1e-12)


@pytest.mark.parametrize("split", ["softplus", "relu"])
def test_gradient_multiplier_within_bound(split, x64):
    """|∂ℓ/∂logp| / |Â| = M(r) ∈ (0, e^c] for log r over [−25, 25] (beyond the ±20 clamp of the
    other objectives; past |log r| ≈ 18·c, tanh' = 1 − tanh² rounds to 0 in float64); equals
    the analytic M."""
    cfg = dataclasses.replace(SPEC.default_config, hazard_split=split)
    u = jnp.linspace(-25.0, 25.0, 2001)
    b = _grid_batch(u)
    g = jax.grad(lambda lp: SPEC.loss(b._replace(logp=lp), cfg)[0])(b.logp)[:, 0]
    mult = -np.asarray(g)  # token-sum of −w·Â with Â = 1 (loss_sum, one token per row)
    assert np.all(mult > 0) and np.all(mult <= np.exp(cfg.c))
    w, _, _ = mhpo_weight(u, cfg)
    analytic = np.asarray(w) / np.cosh(np.asarray(u) / cfg.c) ** 2
    np.testing.assert_allclose(mult, analytic, rtol=1e-9, atol=1e-15)  # 1 − tanh² cancels
    if split == "relu":
        # no DHP below/above: the LFM-only bound max e^{cs}(1−s²) ≈ 1.5925 at c = 1.5 is an upper
        # bound of M as well, since ζ ≥ 0
        assert mult.max() <= 1.5926


@pytest.mark.parametrize(
    ("split", "peak", "at_ratio", "up_to"),
    [("softplus", 0.3958, 1.783, 3.654), ("relu", 1.1018, 1.298, 1.773)],
)
def test_gradient_multiplier_peaks_above_ratio_one(split, peak, at_ratio, up_to, x64):
    """At the defaults the multiplier's real maximum is far below the e^c bound, and it sits at
    r > 1: a token whose ratio has grown gets a larger gradient than at r = 1 (1.49x with the
    softplus split, 1.10x with relu) at r ≈ 1.78 / 1.30, and at least the on-policy gradient up
    to r ≈ 3.65 / 1.77, where a clip at 1 + ε would have stopped it."""
    cfg = dataclasses.replace(SPEC.default_config, hazard_split=split)
    u = jnp.linspace(-5.0, 5.0, 200001)
    w, _, _ = mhpo_weight(u, cfg)
    m = np.asarray(w) / np.cosh(np.asarray(u) / cfg.c) ** 2
    i = int(np.argmax(m))
    assert m[i] == pytest.approx(peak, abs=1e-4)
    assert np.exp(float(u[i])) == pytest.approx(at_ratio, abs=2e-3)
    assert m[i] > m[100000] and m[i] < np.exp(cfg.c) / 4  # M(1) is at index 100000
    last = int(np.nonzero(m >= m[100000])[0][-1])
    assert np.exp(float(u[last])) == pytest.approx(up_to, abs=2e-3)


def test_on_policy_gradient_is_pg_times_exp_minus_zeta1(golden_inputs, h, x64):
    b = h.golden_batch(golden_inputs, with_ref=False)
    b = b._replace(logp_old=b.logp)
    _, g, _ = h.loss_value_and_grad(SPEC.loss, b, SPEC.default_config)
    m = np.asarray(b.mask, np.float64)
    a = np.asarray(b.advantages)[:, None]
    w_agg = m / m.sum(1, keepdims=True) / m.shape[0]
    const = np.exp(-float(hazard(jnp.array(0.0), SPEC.default_config)))
    np.testing.assert_allclose(np.asarray(g), -a * w_agg * const, rtol=1e-12, atol=1e-16)


def test_stop_gradient_on_hazard_matters(golden_inputs, h, x64):
    """Gradient equals Â·M with a detached ζ; letting it flow through ζ changes it."""
    b = h.golden_batch(golden_inputs, with_ref=False)
    _, g1, _ = h.loss_value_and_grad(SPEC.loss, b, SPEC.default_config)
    cfg2 = dataclasses.replace(SPEC.default_config, hazard_stop_gradient=False)
    _, g2, _ = h.loss_value_and_grad(SPEC.loss, b, cfg2)
    assert h.max_abs(g1, g2) > 1e-3


def test_large_c_large_lambda_is_unclipped_is_surrogate(golden_inputs, h, x64):
    """c, λ± → ∞: w → r, loss → −r·Â (PPO without clipping) in value and gradient."""
    cfg = dataclasses.replace(SPEC.default_config, c=1e6, lam_pos=1e12, lam_neg=1e12)
    b = h.golden_batch(golden_inputs, with_ref=False)
    v, g, _ = h.loss_value_and_grad(SPEC.loss, b, cfg)
    ppo = get_objective("ppo_clip")
    cfg_p = dataclasses.replace(
        ppo.default_config, eps_low=1.0, eps_high=1e9, aggregation="seq-mean-token-mean"
    )
    v2, g2, _ = h.loss_value_and_grad(ppo.loss, b, cfg_p)
    assert abs(float(v) - float(v2)) < 1e-9
    assert h.max_abs(g, g2) < 1e-9


def test_negative_side_penalised_harder(x64):
    """Asymmetry at defaults: ζ(0.5) ≈ 2.057 > ζ(2) ≈ 1.381."""
    cfg = SPEC.default_config
    psi = 1.5 * jnp.tanh(jnp.log(jnp.array([0.5, 2.0])) / 1.5)
    z = np.asarray(hazard(psi, cfg))
    np.testing.assert_allclose(z, [2.057, 1.381], atol=2e-3)
