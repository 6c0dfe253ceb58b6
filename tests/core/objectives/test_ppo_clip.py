"""PPO-clip family (GRPO, DAPO, Dr. GRPO): golden values, hand values, reductions, clip zeros."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.objectives import PolicyBatch, finalize_loss, get_objective

TUNIX_AGG = {
    "token-mean": ("token-mean", None),
    "sequence-mean-token-mean": ("seq-mean-token-mean", None),
    "sequence-mean-token-scale": ("constant-normalized-sum", None),
    "seq-mean-token-sum": ("seq-mean-token-sum", None),
    # tunix/verl "token-sum-norm" divides the token sum by a constant only (no 1/B); its default
    # constant here is B, so it equals our seq-mean-token-sum (see test_aggregation for norm=10).
    "sequence-mean-token-sum-norm": ("seq-mean-token-sum", None),
}
TUNIX_KL = {"kl": "k1", "mse_kl": "k2", "low_var_kl": "k3"}
TRL_AGG = {
    "grpo": "seq-mean-token-mean",
    "bnpo": "token-mean",
    "dapo": "token-mean",
    "dr_grpo": "constant-normalized-sum",
}


def _parse(key):
    algo, agg, kl, eps = key.split("/")
    beta_s, kl_mode = kl.split("_", 1)
    lo, hi = eps[3:].split("_")
    return algo, agg, float(beta_s[4:]), kl_mode, float(lo), float(hi)


def test_grpo_matches_tunix_all_modes(tunix, golden_inputs, h, x64):
    """tunix grpo_loss_fn (float32 inside) for every aggregation/KL mode it shares with us.

    Name mapping: tunix ``sequence-mean-token-scale`` = our ``constant-normalized-sum`` (C = T);
    ``sequence-mean-token-sum-norm`` (default norm) = our ``seq-mean-token-sum``;
    ``kl``/``mse_kl``/``low_var_kl`` = k1/k2/k3.
    """
    spec = get_objective("grpo")
    batch = h.golden_batch(golden_inputs)
    worst_v = worst_g = 0.0
    n = 0
    for key, e in tunix["policy_loss"].items():
        algo, agg, beta, kl_mode, lo, hi = _parse(key) if key.startswith("grpo/") else (None,) * 6
        if algo != "grpo" or agg not in TUNIX_AGG:
            continue
        mode, c = TUNIX_AGG[agg]
        cfg = dataclasses.replace(
            spec.default_config,
            eps_low=lo,
            eps_high=hi,
            beta=beta,
            kl_estimator=TUNIX_KL[kl_mode],
            aggregation=mode,
            norm_constant=c,
        )
        v, g, aux = h.loss_value_and_grad(spec.loss, batch, cfg)
        worst_v = max(worst_v, abs(float(v) - e["loss"]))
        worst_g = max(worst_g, h.max_abs(g, e["grad_wrt_logp_new"]))
        assert abs(float(aux["ratio_max"]) - e["aux"]["is_ratio/max"]) < 1e-6
        n += 1
    assert n == 40
    assert worst_v < 2e-7, worst_v
    assert worst_g < 1e-7, worst_g


def test_ppo_clip_matches_tunix_ppo(tunix, golden_inputs, h, x64):
    """tunix PPO loss (token-mean, [B,T] advantages), including the dual clip c = 3."""
    spec = get_objective("ppo_clip")
    batch = h.golden_batch(golden_inputs, with_ref=False)
    batch = batch._replace(advantages=jnp.broadcast_to(batch.advantages[:, None], batch.logp.shape))
    for key, kw in [
        ("ppo/default", {}),
        ("ppo/epsilon_high0.28", {"eps_high": 0.28}),
        ("ppo/epsilon_c3.0", {"clip_ratio_c": 3.0}),
    ]:
        e = tunix["policy_loss"][key]
        cfg = dataclasses.replace(spec.default_config, **kw)
        v, g, _ = h.loss_value_and_grad(spec.loss, batch, cfg)
        assert abs(float(v) - e["loss"]) < 2e-7, key
        assert h.max_abs(g, e["grad_wrt_logp_new"]) < 1e-7, key


def test_matches_trl(trl, golden_inputs, h, x64):
    """TRL 1.16 ``_compute_loss`` (float64) for loss_type grpo/bnpo/dapo/dr_grpo at token level.

    ``biascorrFalse`` = k3; ``biascorrTrue`` = our ``k3_ratio`` (ratio not detached).
    TRL ``dr_grpo`` divides by B·max_completion_length = our constant-normalized-sum, C = T = 6.
    TRL ``grpo`` divides by all rows; ours by non-empty rows (all rows non-empty here).
    """
    spec = get_objective("grpo")
    batch = h.golden_batch(golden_inputs)
    worst_v = worst_g = 0.0
    n = 0
    for key, e in trl["grpo_compute_loss"].items():
        algo, level, kl, eps = key.split("/")
        if algo not in TRL_AGG or level != "token":
            continue
        beta = 0.0 if kl == "beta0.0" else 0.04
        est = "k3_ratio" if kl.endswith("biascorrTrue") else "k3"
        lo, hi = (float(x) for x in eps[3:].split("_"))
        cfg = dataclasses.replace(
            spec.default_config,
            eps_low=lo,
            eps_high=hi,
            beta=beta,
            kl_estimator=est,
            aggregation=TRL_AGG[algo],
        )
        v, g, aux = h.loss_value_and_grad(spec.loss, batch, cfg)
        worst_v = max(worst_v, abs(float(v) - e["loss"]))
        worst_g = max(worst_g, h.max_abs(g, e["grad_wrt_logp_new"]))
        assert abs(float(aux["clip_frac_low"]) - e["metrics"]["clip_ratio/low_mean"]) < 1e-6
        assert abs(float(aux["clip_frac_high"]) - e["metrics"]["clip_ratio/high_mean"]) < 1e-6
        n += 1
    assert n == 24
    assert worst_v < 1e-12, worst_v
    assert worst_g < 1e-12, worst_g


def _tiny_batch():
    # Hand-computable: ratios e^{0.5}, e^{-0.5}, 1 ; advantages +1, -1.
    logp = jnp.array([[0.5, -0.5, 0.0], [0.5, -0.5, 0.0]])
    return PolicyBatch(
        logp=logp,
        logp_old=jnp.zeros((2, 3)),
        mask=jnp.array([[1, 1, 1], [1, 1, 0]]),
        advantages=jnp.array([1.0, -1.0]),
    )


def test_hand_computed_grpo_value(x64):
    """ε = 0.2: row 0 (Â=+1): −min(r, clip r) = −[1.2, e^{-.5}, 1]; row 1 (Â=−1):
    max(r, clip r) = [e^{.5}, 0.8]. seq-mean-token-mean over 2 rows."""
    cfg = dataclasses.replace(get_objective("grpo").default_config, beta=0.0)
    s, d, aux = get_objective("grpo").loss(_tiny_batch(), cfg)
    row0 = -(1.2 + np.exp(-0.5) + 1.0) / 3
    row1 = (np.exp(0.5) + 0.8) / 2
    assert float(d) == 2.0
    np.testing.assert_allclose(float(s), row0 + row1, rtol=1e-12)
    assert float(aux["clip_frac_high"]) == pytest.approx(1 / 5)
    assert float(aux["clip_frac_low"]) == pytest.approx(1 / 5)


@pytest.mark.parametrize(
    ("name", "row0_high", "denom"),
    [("dapo", 1.28, 5.0), ("dr_grpo", 1.2, 6.0)],  # token-mean: 5 tokens; Dr. GRPO: B·C = 2·3
)
def test_hand_computed_dapo_and_dr_grpo_values(name, row0_high, denom, x64):
    """Same tokens as GRPO's hand test: DAPO clips Â>0 at 1.28 and divides by the token count;
    Dr. GRPO clips at 1.2 and divides by B·T."""
    spec = get_objective(name)
    s, d, _ = spec.loss(_tiny_batch(), spec.default_config)
    expect = -(row0_high + np.exp(-0.5) + 1.0) + (np.exp(0.5) + 0.8)
    assert float(d) == denom
    np.testing.assert_allclose(float(s), expect, rtol=1e-12)


def test_clip_binding_gives_exact_zero_gradient(x64):
    """Â>0 with r>1+ε_high and Â<0 with r<1−ε_low: gradient exactly 0; else −w·Â·r."""
    spec = get_objective("dapo")
    cfg = spec.default_config
    batch = _tiny_batch()
    g = jax.grad(lambda lp: finalize_loss(*spec.loss(batch._replace(logp=lp), cfg)[:2]))(batch.logp)
    assert float(g[0, 0]) == 0.0  # Â=+1, r=e^.5 > 1.28
    assert float(g[1, 1]) == 0.0  # Â=−1, r=e^-.5 < 0.8
    n = 5.0
    np.testing.assert_allclose(float(g[0, 1]), -np.exp(-0.5) / n, rtol=1e-12)
    np.testing.assert_allclose(float(g[1, 0]), np.exp(0.5) / n, rtol=1e-12)  # unclipped branch
    assert float(g[1, 2]) == 0.0  # masked


def test_dual_clip_zero_gradient_above_c(x64):
    """Â = −1, r = 4 > c = 3: loss capped at c·|Â| = 3 with zero gradient; r = 2: unclipped."""
    spec = get_objective("ppo_clip")
    cfg = dataclasses.replace(spec.default_config, clip_ratio_c=3.0)
    batch = _tiny_batch()._replace(  # same (2, 3) shape as the other hand tests
        logp=jnp.array([[np.log(4.0), np.log(2.0), 0.0], [0.0, 0.0, 0.0]]),
        mask=jnp.array([[1, 1, 0], [0, 0, 0]]),
        advantages=jnp.array([-1.0, 1.0]),
    )
    (s, _, aux), g = (
        spec.loss(batch, cfg),
        jax.grad(lambda lp: spec.loss(batch._replace(logp=lp), cfg)[0])(batch.logp),
    )
    np.testing.assert_allclose(float(s), 3.0 + 2.0, rtol=1e-12)
    assert float(g[0, 0]) == 0.0 and float(g[0, 1]) == pytest.approx(2.0)
    assert float(aux["clip_frac_dual"]) == 0.5


@pytest.mark.parametrize("name", ["grpo", "dapo", "dr_grpo"])
def test_on_policy_gradient_is_vanilla_pg(name, golden_inputs, h, x64):
    """r ≡ 1, β = 0: d loss / d logp = −w_it·Â_i, w the aggregation weight (documented const)."""
    spec = get_objective(name)
    cfg = dataclasses.replace(spec.default_config, beta=0.0)
    b = h.golden_batch(golden_inputs, with_ref=False)
    b = b._replace(logp_old=b.logp)
    _, g, _ = h.loss_value_and_grad(spec.loss, b, cfg)
    m = np.asarray(b.mask, np.float64)
    a = np.asarray(b.advantages)[:, None]
    lengths = m.sum(1, keepdims=True)
    w = {
        "grpo": m / lengths / m.shape[0],
        "dapo": m / m.sum(),
        "dr_grpo": m / (m.shape[0] * m.shape[1]),
    }[name]
    np.testing.assert_allclose(np.asarray(g), -a * w, rtol=1e-12, atol=1e-15)


def test_dapo_equal_eps_equals_grpo_clip(golden_inputs, h, x64):
    """DAPO with ε_low = ε_high, GRPO's aggregation and β equals GRPO."""
    b = h.golden_batch(golden_inputs)
    grpo = get_objective("grpo")
    dapo = get_objective("dapo")
    cfg_d = dataclasses.replace(
        dapo.default_config,
        eps_high=0.2,
        aggregation="seq-mean-token-mean",
        beta=0.04,
        kl_estimator="k3",
    )
    v1, g1, _ = h.loss_value_and_grad(grpo.loss, b, grpo.default_config)
    v2, g2, _ = h.loss_value_and_grad(dapo.loss, b, cfg_d)
    assert float(v1) == float(v2)
    assert h.max_abs(g1, g2) == 0.0


def test_beta_without_ref_is_a_clear_error(golden_inputs, h, x64):
    b = h.golden_batch(golden_inputs, with_ref=False)
    with pytest.raises(ValueError, match="logp_ref"):
        get_objective("grpo").loss(b, get_objective("grpo").default_config)
