"""KL estimators: tunix golden values, test vector, gradients, usage table."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.objectives import KL_ESTIMATORS, KL_USAGE, kl_divergence


@pytest.mark.parametrize(
    ("tunix_name", "ours"), [("kl", "k1"), ("mse_kl", "k2"), ("low_var_kl", "k3")]
)
def test_matches_tunix(tunix_name, ours, tunix, golden_inputs, h, x64):
    """tunix ``compute_kl_divergence`` (float32): kl = k1, mse_kl = k2, low_var_kl = k3 (no
    value clamp in ours; tunix's ±10 clamp does not bind here)."""
    lp = jnp.asarray(golden_inputs["logp_new"])
    ref = jnp.asarray(golden_inputs["logp_ref"])
    out = kl_divergence(lp, ref, ours)
    assert h.max_abs(out, tunix["kl"][tunix_name]["value"]) < 1e-6


def test_k3_test_vector_and_gradient(x64):
    lp, ref = jnp.array([[-1.0]]), jnp.array([[-2.0]])
    v = kl_divergence(lp, ref, "k3")
    g = jax.grad(lambda x: kl_divergence(x, ref, "k3").sum())(lp)
    assert float(v[0, 0]) == pytest.approx(np.exp(-1.0), rel=1e-12)
    assert float(g[0, 0]) == pytest.approx(1 - np.exp(-1.0), rel=1e-12)


def test_gradients_match_their_documented_use(x64):
    """k2 and k3_ratio gradients: (log π − log π_ref)·(r) ∇log π; k3: (1 − π_ref/π); k1: 1."""
    lp = jnp.array([[-0.3, -2.0, -1.0]])
    ref = jnp.array([[-1.0, -0.5, -1.0]])
    old = jnp.array([[-0.5, -1.5, -1.2]])
    d = np.asarray(lp - ref)
    r = np.exp(np.asarray(lp - old))
    grads = {
        e: np.asarray(jax.grad(lambda x, e=e: kl_divergence(x, ref, e, old).sum())(lp))
        for e in KL_ESTIMATORS
    }
    np.testing.assert_allclose(grads["k1"], 1.0)
    np.testing.assert_allclose(grads["k2"], d, rtol=1e-12)
    np.testing.assert_allclose(grads["k3"], 1 - np.exp(-d), rtol=1e-12)
    np.testing.assert_allclose(grads["k3_ratio"], r * d, rtol=1e-12)
    assert set(KL_USAGE) == set(KL_ESTIMATORS)


def test_nonnegative_and_zero_at_equality(x64):
    lp = jnp.linspace(-5, 0, 11)[None, :]
    for est in ("k2", "k3"):
        assert np.all(np.asarray(kl_divergence(lp, lp[:, ::-1], est)) >= 0)
        assert np.all(np.asarray(kl_divergence(lp, lp, est)) == 0)


def test_k3_ratio_needs_old():
    with pytest.raises(ValueError, match="logp_old"):
        kl_divergence(jnp.zeros((1, 1)), jnp.zeros((1, 1)), "k3_ratio")


def test_extreme_log_ratio_is_finite():
    lp = jnp.array([[0.0, -1e4]], jnp.float32)
    ref = jnp.array([[-1e4, 0.0]], jnp.float32)
    for est in KL_ESTIMATORS:
        v = kl_divergence(lp, ref, est, lp)
        assert np.all(np.isfinite(np.asarray(v))), est


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
@pytest.mark.parametrize("estimator", KL_ESTIMATORS)
def test_half_precision_inputs_compute_in_float32(dtype, estimator):
    """f16/bf16 inputs: finite float32 output equal to the float32 computation on the same
    (rounded) values; k3 of d = 12 overflows in float16 without the upcast."""
    lp = jnp.array([[0.0, -1.5, -3.0, 2.0]], dtype)
    ref = jnp.array([[12.0, -0.5, -13.0, 2.5]], dtype)
    old = jnp.array([[-0.5, -1.0, -2.0, 1.0]], dtype)
    out = kl_divergence(lp, ref, estimator, old)
    want = kl_divergence(
        lp.astype(jnp.float32), ref.astype(jnp.float32), estimator, old.astype(jnp.float32)
    )
    assert out.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(out)))
    assert bool(jnp.array_equal(out, want))


def test_k3_float16_large_gap_is_finite():
    out = kl_divergence(jnp.zeros((1, 1), jnp.float16), jnp.full((1, 1), 12.0, jnp.float16), "k3")
    assert out.dtype == jnp.float32
    assert float(out[0, 0]) == pytest.approx(np.expm1(12.0) - 12.0, rel=1e-6)
