"""CISPO and DISPO: TRL golden, hand values, DISPO→CISPO, no token dropped, mask vs PPO."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.objectives import PolicyBatch, get_objective


@pytest.mark.parametrize(
    "key",
    [
        "cispo/token/beta0.0/eps0.2_5.0",
        "cispo/token/beta0.0/eps0.2_1.2",
        "cispo/token/beta0.04_biascorrFalse/eps0.2_5.0",
        "cispo/token/beta0.04_biascorrFalse/eps0.2_1.2",
    ],
)
def test_cispo_absolute_cap_matches_trl(key, trl, golden_inputs, h, x64):
    """TRL ``cispo``: weight min(r, epsilon_high) = our ``cap="absolute"``, abs_cap = TRL ε_high."""
    spec = get_objective("cispo")
    e = trl["grpo_compute_loss"][key]
    cap = float(key.split("_")[-1])
    beta = 0.04 if "beta0.04" in key else 0.0
    cfg = dataclasses.replace(spec.default_config, cap="absolute", abs_cap=cap, beta=beta)
    b = h.golden_batch(golden_inputs)
    v, g, aux = h.loss_value_and_grad(spec.loss, b, cfg)
    assert abs(float(v) - e["loss"]) < 1e-12
    assert h.max_abs(g, e["grad_wrt_logp_new"]) < 1e-12
    assert abs(float(aux["clip_frac_high"]) - e["metrics"]["cispo_clip_ratio"]) < 1e-6


def _batch():
    # ratios e^{1}, e^{-1}, 1 ; Â = +2 (row 0), −1 (row 1)
    return PolicyBatch(
        logp=jnp.array([[-1.0, -3.0, -2.0], [-1.0, -3.0, -2.0]]),
        logp_old=jnp.array([[-2.0, -2.0, -2.0], [-2.0, -2.0, -2.0]]),
        mask=jnp.ones((2, 3)),
        advantages=jnp.array([2.0, -1.0]),
        rewards=jnp.array([1.0, 0.0]),
    )


def test_cispo_relative_hand_value(x64):
    """eps_low = 1 (no lower bound), eps_high = 0.28: weights [1.28, e^-1, 1] both rows."""
    spec = get_objective("cispo")
    s, d, _ = spec.loss(_batch(), spec.default_config)
    w = np.array([1.28, np.exp(-1), 1.0])
    lp = np.array([-1.0, -3.0, -2.0])
    expect = -(2.0 * w * lp).sum() - (-1.0 * w * lp).sum()
    assert float(d) == 6
    assert float(s) == pytest.approx(expect, rel=1e-12)


def test_dispo_hand_value_and_regimes(x64):
    """Defaults: correct (Â>0) w ∈ [0.8, 11]; incorrect w ∈ [0, 101]."""
    spec = get_objective("dispo")
    cfg = dataclasses.replace(spec.default_config, eps_high_pos=0.5)
    s, _, aux = spec.loss(_batch(), cfg)
    lp = np.array([-1.0, -3.0, -2.0])
    w_pos = np.array([1.5, 0.8, 1.0])
    w_neg = np.array([np.e, np.exp(-1), 1.0])
    expect = -(2.0 * w_pos * lp).sum() + (w_neg * lp).sum()
    assert float(s) == pytest.approx(expect, rel=1e-12)
    assert float(aux["frac_pos_up"]) == pytest.approx(2 / 6)  # r = e and r = 1 count as up
    assert float(aux["frac_pos_down"]) == pytest.approx(1 / 6)
    assert float(aux["frac_neg_up"]) == pytest.approx(2 / 6)
    assert float(aux["frac_neg_down"]) == pytest.approx(1 / 6)
    assert float(aux["clip_frac_pos_high"]) == pytest.approx(1 / 6)
    assert float(aux["clip_frac_pos_low"]) == pytest.approx(1 / 6)
    assert float(aux["clip_frac_neg_high"]) == 0.0


def test_dispo_correct_by_reward(x64):
    """With a shaped reward, "correct by reward" and "by advantage" pick different bounds."""
    spec = get_objective("dispo")
    b = _batch()._replace(rewards=jnp.array([0.0, 1.0]))  # row 0: Â>0 but reward says wrong
    s_adv, _, _ = spec.loss(b, spec.default_config)
    s_rew, _, aux = spec.loss(b, dataclasses.replace(spec.default_config, correct_by="reward"))
    assert float(s_adv) != float(s_rew)
    assert float(aux["frac_neg_up"]) == pytest.approx(2 / 6)  # row 0 now "incorrect"
    with pytest.raises(ValueError, match="rewards"):
        spec.loss(
            b._replace(rewards=None), dataclasses.replace(spec.default_config, correct_by="reward")
        )


def test_dispo_equal_bounds_is_cispo(golden_inputs, h, x64):
    cispo, dispo = get_objective("cispo"), get_objective("dispo")
    b = h.golden_batch(golden_inputs, with_ref=False)
    for lo, hi in [(0.2, 0.28), (1.0, 4.0), (0.5, 0.1)]:
        c = dataclasses.replace(cispo.default_config, eps_low=lo, eps_high=hi)
        d = dataclasses.replace(
            dispo.default_config, eps_low_pos=lo, eps_high_pos=hi, eps_low_neg=lo, eps_high_neg=hi
        )
        v1, g1, _ = h.loss_value_and_grad(cispo.loss, b, c)
        v2, g2, _ = h.loss_value_and_grad(dispo.loss, b, d)
        assert float(v1) == float(v2)
        assert h.max_abs(g1, g2) == 0.0


@pytest.mark.parametrize("name", ["cispo", "dispo"])
def test_never_drops_a_token_with_nonzero_advantage(name, x64):
    """Extreme ratios (e^{±8}) in every sign combination: the gradient is −w·Â/N ≠ 0."""
    spec = get_objective(name)
    lr = jnp.array([[8.0, -8.0, 0.3], [8.0, -8.0, -0.3]])
    b = PolicyBatch(
        logp=lr - 1.0,
        logp_old=-jnp.ones((2, 3)),
        mask=jnp.ones((2, 3)),
        advantages=jnp.array([1.0, -1.0]),
    )
    g = jax.grad(lambda lp: spec.loss(b._replace(logp=lp), spec.default_config)[0])(b.logp)
    assert np.all(np.asarray(g) != 0.0)
    # sign: descending the loss raises log π for Â > 0 and lowers it for Â < 0
    assert np.all(np.asarray(g[0]) < 0) and np.all(np.asarray(g[1]) > 0)


def test_cispo_mask_with_unclipped_weight_equals_ppo_gradient(golden_inputs, h, x64):
    """Unified form (eq. 6-7): sg(r)·M·Â·log π with a huge cap has PPO-clip's gradient."""
    cispo, ppo = get_objective("cispo"), get_objective("dapo")
    b = h.golden_batch(golden_inputs, with_ref=False)
    c = dataclasses.replace(
        cispo.default_config, eps_low=1.0, eps_high=1e9, mask_eps_low=0.2, mask_eps_high=0.28
    )
    _, g1, aux = h.loss_value_and_grad(cispo.loss, b, c)
    _, g2, _ = h.loss_value_and_grad(ppo.loss, b, ppo.default_config)
    assert h.max_abs(g1, g2) < 1e-14
    assert float(aux["mask_frac"]) > 0  # the mask does bind on this batch
