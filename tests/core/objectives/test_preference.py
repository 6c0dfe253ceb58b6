"""DPO and RPO: TRL/tunix golden values, hand values, η = 0 reduction, SFT normalizations."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.objectives import PreferenceBatch, finalize_loss, get_objective


def _spread(golden, dtype=jnp.float64):
    """Sequence log-probs spread evenly over each response's tokens (as the golden runs did)."""
    d = golden["dpo"]
    t = max(max(d["chosen_lengths"]), max(d["rejected_lengths"]))

    def tok(seq, lengths):
        lengths = np.asarray(lengths)
        m = (np.arange(t)[None, :] < lengths[:, None]).astype(np.int32)
        return jnp.asarray(np.asarray(seq)[:, None] / lengths[:, None] * m, dtype), jnp.asarray(m)

    pc, mc = tok(d["policy_chosen_logps"], d["chosen_lengths"])
    pr, mr = tok(d["policy_rejected_logps"], d["rejected_lengths"])
    rc, _ = tok(d["ref_chosen_logps"], d["chosen_lengths"])
    rr, _ = tok(d["ref_rejected_logps"], d["rejected_lengths"])
    return (
        PreferenceBatch(pc, pr, rc, rr, mc, mr),
        np.asarray(d["chosen_lengths"]),
        np.asarray(d["rejected_lengths"]),
    )


def _value_and_seq_grads(spec, cfg, batch, len_c, len_r):
    """Loss and its gradient w.r.t. the *sequence* log-probs (what the golden files record)."""
    mc = batch.mask_chosen.astype(jnp.float64)
    mr = batch.mask_rejected.astype(jnp.float64)

    def f(seq_c, seq_r):
        b = batch._replace(
            logp_chosen=(seq_c / len_c)[:, None] * mc, logp_rejected=(seq_r / len_r)[:, None] * mr
        )
        s, d, _ = spec.loss(b, cfg)
        return finalize_loss(s, d)

    seq_c = jnp.sum(batch.logp_chosen, axis=1)
    seq_r = jnp.sum(batch.logp_rejected, axis=1)
    v, (gc, gr) = jax.value_and_grad(f, argnums=(0, 1))(seq_c, seq_r)
    return v, gc, gr


def test_dpo_matches_trl_and_tunix(trl, tunix, golden_inputs, h, x64):
    spec = get_objective("dpo")
    batch, lc, lr = _spread(golden_inputs)
    v, gc, gr = _value_and_seq_grads(spec, spec.default_config, batch, lc, lr)
    e = trl["dpo_compute_loss"]["sigmoid"]
    assert abs(float(v) - e["loss"]) < 1e-12
    assert h.max_abs(gc, e["grad_wrt_chosen_logps"]) < 1e-12
    assert h.max_abs(gr, e["grad_wrt_rejected_logps"]) < 1e-12
    t = tunix["dpo"]["dpo"]
    assert abs(float(v) - t["loss"]) < 1e-7
    assert h.max_abs(gc, t["grad_wrt_chosen_logps"]) < 1e-8
    _, _, aux = spec.loss(batch, spec.default_config)
    assert abs(float(aux["reward_margin"]) - e["metrics"]["rewards/margins"]) < 1e-12
    assert float(aux["reward_accuracy"]) == e["metrics"]["rewards/accuracies"]


def test_rpo_batch_token_mean_matches_trl_sigmoid_sft(trl, golden_inputs, h, x64):
    """TRL ``loss_type=["sigmoid","sft"]``, weights [1, 1], β = 0.1 = our RPO with
    ``sft_normalization="batch_token_mean"``, η = 1, coefficient not multiplied by β."""
    spec = get_objective("rpo")
    cfg = dataclasses.replace(
        spec.default_config,
        beta=0.1,
        eta=1.0,
        sft_normalization="batch_token_mean",
        sft_coef_times_beta=False,
    )
    batch, lc, lr = _spread(golden_inputs)
    v, gc, gr = _value_and_seq_grads(spec, cfg, batch, lc, lr)
    e = trl["dpo_compute_loss"]["sigmoid+sft"]
    assert abs(float(v) - e["loss"]) < 1e-12
    assert h.max_abs(gc, e["grad_wrt_chosen_logps"]) < 1e-12
    assert h.max_abs(gr, e["grad_wrt_rejected_logps"]) < 1e-12


def _tiny():
    return PreferenceBatch(
        logp_chosen=jnp.array([[-1.0, -2.0, 0.0], [-0.5, 0.0, 0.0]]),
        logp_rejected=jnp.array([[-3.0, 0.0, 0.0], [-1.0, -1.0, -1.0]]),
        ref_chosen=jnp.array([[-1.5, -2.0, 0.0], [-0.5, 0.0, 0.0]]),
        ref_rejected=jnp.array([[-2.0, 0.0, 0.0], [-1.0, -1.0, -0.5]]),
        mask_chosen=jnp.array([[1, 1, 0], [1, 0, 0]]),
        mask_rejected=jnp.array([[1, 0, 0], [1, 1, 1]]),
    )


@pytest.mark.parametrize(
    ("norm", "times_beta", "nll"),
    [
        ("sum", True, [3.0, 0.5]),  # −Σ_t log π(y_w)
        ("seq_mean", False, [1.5, 0.5]),  # −Σ_t log π(y_w) / |y_w|
        ("batch_token_mean", False, [3.5 / 3, 3.5 / 3]),  # one batch scalar per pair
    ],
)
def test_rpo_hand_values(norm, times_beta, nll, x64):
    spec = get_objective("rpo")
    cfg = dataclasses.replace(
        spec.default_config,
        beta=0.5,
        eta=0.2,
        sft_normalization=norm,
        sft_coef_times_beta=times_beta,
    )
    h_pair = 0.5 * np.array([(0.5) - (-1.0), 0.0 - (-0.5)])
    dpo = np.log1p(np.exp(-h_pair))
    coef = 0.2 * 0.5 if times_beta else 0.2
    s, d, aux = spec.loss(_tiny(), cfg)
    assert float(d) == 2
    assert float(s) == pytest.approx(np.sum(dpo + coef * np.asarray(nll)), rel=1e-12)
    assert float(aux["dpo_loss"]) == pytest.approx(dpo.mean(), rel=1e-12)


def test_rpo_eta_zero_is_dpo(x64):
    rpo, dpo = get_objective("rpo"), get_objective("dpo")
    b = _tiny()
    for norm in ("sum", "seq_mean", "batch_token_mean"):
        cfg = dataclasses.replace(rpo.default_config, eta=0.0, beta=0.3, sft_normalization=norm)
        g1 = jax.grad(lambda x, cfg=cfg: rpo.loss(b._replace(logp_chosen=x), cfg)[0])(b.logp_chosen)
        g2 = jax.grad(
            lambda x: dpo.loss(b._replace(logp_chosen=x), dpo.default_config.__class__(0.3))[0]
        )(b.logp_chosen)
        assert float(rpo.loss(b, cfg)[0]) == float(dpo.loss(b, dpo.config_cls(beta=0.3))[0])
        assert np.array_equal(np.asarray(g1), np.asarray(g2))


def test_dpo_at_reference_is_log2_and_gradient_half_beta(x64):
    b = _tiny()
    b = b._replace(logp_chosen=b.ref_chosen, logp_rejected=b.ref_rejected)
    spec = get_objective("dpo")
    s, d, _ = spec.loss(b, spec.default_config)
    assert float(s / d) == pytest.approx(np.log(2), rel=1e-12)
    g = jax.grad(lambda x: spec.loss(b._replace(logp_chosen=x), spec.default_config)[0])(
        b.logp_chosen
    )
    np.testing.assert_allclose(np.asarray(g), -0.05 * np.asarray(b.mask_chosen), rtol=1e-12)


def test_empty_pairs_are_skipped(x64):
    spec = get_objective("dpo")
    b = _tiny()
    pad = jax.tree.map(lambda x: jnp.concatenate([x, jnp.zeros_like(x[:1])], axis=0), b)
    s1, d1, _ = spec.loss(b, spec.default_config)
    s2, d2, _ = spec.loss(pad, spec.default_config)
    assert float(s1) == float(s2) and float(d1) == float(d2) == 2


def test_dpo_swap_and_shift_properties(x64):
    """Swapping chosen/rejected maps h → −h; adding the same constant to ℓ_θ(y_w) and ℓ_θ(y_l)
    changes nothing."""
    spec = get_objective("dpo")
    b = _tiny()
    swapped = PreferenceBatch(
        b.logp_rejected, b.logp_chosen, b.ref_rejected, b.ref_chosen, b.mask_rejected, b.mask_chosen
    )
    _, _, a1 = spec.loss(b, spec.default_config)
    s2, _, a2 = spec.loss(swapped, spec.default_config)
    assert float(a2["reward_margin"]) == pytest.approx(-float(a1["reward_margin"]), rel=1e-12)
    h = 0.1 * np.array([1.5, 0.5])
    assert float(s2) == pytest.approx(np.sum(np.log1p(np.exp(h))), rel=1e-12)
    shifted = b._replace(
        logp_chosen=b.logp_chosen.at[:, 0].add(0.7), logp_rejected=b.logp_rejected.at[:, 0].add(0.7)
    )
    assert float(spec.loss(shifted, spec.default_config)[0]) == pytest.approx(
        float(spec.loss(b, spec.default_config)[0]), rel=1e-12
    )
