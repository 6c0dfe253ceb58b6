"""SAPO (contrast objective): TRL golden values and the on-policy PG reduction."""

import dataclasses

import numpy as np
import pytest

from cliffjax.objectives import get_objective


@pytest.mark.parametrize(
    ("key", "beta", "est"),
    [
        ("sapo/token/beta0.0/eps0.2_0.2", 0.0, "k3"),
        ("sapo/token/beta0.04_biascorrFalse/eps0.2_0.2", 0.04, "k3"),
        ("sapo/token/beta0.04_biascorrTrue/eps0.2_0.2", 0.04, "k3_ratio"),
    ],
)
def test_matches_trl(key, beta, est, trl, golden_inputs, h, x64):
    """TRL's ``sapo_temperature_neg = 1.05`` enters its float64 computation as float32(1.05);
    with that τ_neg the match is exact (with 1.05 itself the loss differs by 3.8e-8)."""
    spec = get_objective("sapo")
    cfg = dataclasses.replace(
        spec.default_config, beta=beta, kl_estimator=est, tau_neg=float(np.float32(1.05))
    )
    e = trl["grpo_compute_loss"][key]
    v, g, _ = h.loss_value_and_grad(spec.loss, h.golden_batch(golden_inputs), cfg)
    assert abs(float(v) - e["loss"]) < 1e-12
    assert h.max_abs(g, e["grad_wrt_logp_new"]) < 1e-12


def test_on_policy_gradient_is_vanilla_pg(golden_inputs, h, x64):
    spec = get_objective("sapo")
    b = h.golden_batch(golden_inputs, with_ref=False)
    b = b._replace(logp_old=b.logp)
    _, g, _ = h.loss_value_and_grad(spec.loss, b, spec.default_config)
    m = np.asarray(b.mask, np.float64)
    w = m / m.sum(1, keepdims=True) / m.shape[0]
    np.testing.assert_allclose(np.asarray(g), -np.asarray(b.advantages)[:, None] * w, rtol=1e-12)
