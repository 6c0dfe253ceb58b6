"""GSPO: TRL/tunix golden values, hand value, GSPO-token equivalence, one-token reduction."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.objectives import PolicyBatch, get_objective
from cliffjax.objectives.gspo import gspo_token_loss


def test_matches_trl_sequence_level(trl, golden_inputs, h, x64):
    """TRL ``loss_type="grpo", importance_sampling_level="sequence"`` is GSPO (seq-mean)."""
    spec = get_objective("gspo")
    b = h.golden_batch(golden_inputs, with_ref=False)
    for hi in (0.2, 0.28):
        e = trl["grpo_compute_loss"][f"grpo/sequence/beta0.0/eps0.2_{hi}"]
        cfg = dataclasses.replace(spec.default_config, eps_low=0.2, eps_high=hi)
        v, g, _ = h.loss_value_and_grad(spec.loss, b, cfg)
        assert abs(float(v) - e["loss"]) < 1e-12
        assert h.max_abs(g, e["grad_wrt_logp_new"]) < 1e-12


@pytest.mark.parametrize(
    ("agg", "ours"),
    [("sequence-mean-token-mean", "seq-mean-token-mean"), ("token-mean", "token-mean")],
)
def test_matches_tunix_gspo_token(agg, ours, tunix, golden_inputs, h, x64):
    """tunix ``gspo-token`` (float32); with token-mean both weight sequences by length."""
    spec = get_objective("gspo")
    b = h.golden_batch(golden_inputs, with_ref=False)
    for hi in (0.2, 0.28):
        e = tunix["policy_loss"][f"gspo-token/{agg}/beta0.0_kl/eps0.2_{hi}"]
        cfg = dataclasses.replace(spec.default_config, eps_low=0.2, eps_high=hi, aggregation=ours)
        v, g, _ = h.loss_value_and_grad(spec.loss, b, cfg)
        assert abs(float(v) - e["loss"]) < 2e-7
        assert h.max_abs(g, e["grad_wrt_logp_new"]) < 1e-7


def test_test_vector_and_hand_value(x64):
    """Token log-ratios [0.1, −0.1, 0.3] give s = e^{0.1}; Â = 1, ε_high = 0.2: loss = −s."""
    spec = get_objective("gspo")
    b = PolicyBatch(  # second row fully masked (skipped); (2, 3) like the other hand tests
        logp=jnp.array([[0.1, -0.1, 0.3], [5.0, 5.0, 5.0]]),
        logp_old=jnp.zeros((2, 3)),
        mask=jnp.array([[1, 1, 1], [0, 0, 0]]),
        advantages=jnp.array([1.0, 1.0]),
    )
    cfg = dataclasses.replace(spec.default_config, eps_low=0.2, eps_high=0.2)
    s, d, aux = spec.loss(b, cfg)
    assert float(aux["seq_ratio_mean"]) == pytest.approx(np.exp(0.1), rel=1e-12)
    assert float(s / d) == pytest.approx(-np.exp(0.1), rel=1e-12)


def test_gspo_token_equals_gspo(golden_inputs, h, x64):
    spec = get_objective("gspo")
    b = h.golden_batch(golden_inputs, with_ref=False)
    cfg = dataclasses.replace(spec.default_config, eps_low=0.2, eps_high=0.28)
    v1, g1, _ = h.loss_value_and_grad(spec.loss, b, cfg)
    v2, g2, _ = h.loss_value_and_grad(gspo_token_loss, b, cfg)
    assert abs(float(v1) - float(v2)) < 1e-14
    assert h.max_abs(g1, g2) < 1e-14


def test_one_token_responses_equal_token_level_clip(h, x64):
    """|o_i| = 1: the sequence ratio is the token ratio, so GSPO = GRPO's token clip."""
    rng = np.random.default_rng(0)
    b = PolicyBatch(  # the golden (8, 6) shape, one valid token per row at varying positions
        logp=jnp.asarray(rng.normal(size=(8, 6)) * 0.3),
        logp_old=jnp.zeros((8, 6)),
        mask=jnp.asarray(np.eye(8, 6, dtype=np.int32)[np.arange(8) % 6]),
        advantages=jnp.asarray(rng.normal(size=8)),
    )
    cfg = dataclasses.replace(get_objective("gspo").default_config, eps_low=0.2, eps_high=0.28)
    grpo = get_objective("grpo")
    cfg_g = dataclasses.replace(grpo.default_config, eps_low=0.2, eps_high=0.28, beta=0.0)
    v1, g1, _ = h.loss_value_and_grad(get_objective("gspo").loss, b, cfg)
    v2, g2, _ = h.loss_value_and_grad(grpo.loss, b, cfg_g)
    assert abs(float(v1) - float(v2)) < 1e-14
    assert h.max_abs(g1, g2) < 1e-14


def test_clipped_sequence_has_zero_gradient(x64):
    import jax

    spec = get_objective("gspo")
    b = PolicyBatch(
        logp=jnp.array([[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]),
        logp_old=jnp.zeros((2, 3)),
        mask=jnp.array([[1, 1, 0], [1, 1, 0]]),
        advantages=jnp.array([1.0, 1.0]),
    )
    g = jax.grad(lambda lp: spec.loss(b._replace(logp=lp), spec.default_config)[0])(b.logp)
    assert np.all(np.asarray(g[0]) == 0.0)
    np.testing.assert_allclose(np.asarray(g[1, :2]), -0.5)  # −Â·s/|o| with s = 1
