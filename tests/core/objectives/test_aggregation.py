"""Aggregation modes: tunix golden values, formulas, length bias, micro-batch additivity,
padding."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cliffjax.objectives import AGGREGATION_MODES, aggregate, finalize_loss

TUNIX = {
    "token-mean": ("token-mean", None),
    "sequence-mean-token-mean": ("seq-mean-token-mean", None),
    "sequence-mean-token-scale": ("constant-normalized-sum", None),
    "sequence-mean-token-scale/norm4.0": ("constant-normalized-sum", 4.0),
    "seq-mean-token-sum": ("seq-mean-token-sum", None),
}


@pytest.mark.parametrize("variant", ["mask", "mask_row3_empty"])
def test_matches_tunix_aggregate_loss(variant, tunix, golden_inputs, h, x64):
    """tunix ``aggregate_loss`` (float32 inside), incl. a fully masked row (tunix also skips it).

    tunix/verl ``sequence-mean-token-sum-norm`` (norm=C) is Σℓm / C with no 1/rows: it equals
    our ``constant-normalized-sum`` times the number of non-empty rows.
    """
    loss = jnp.asarray(golden_inputs["per_token_loss"], jnp.float64)
    mask = np.asarray(golden_inputs["mask"])
    if variant == "mask_row3_empty":
        mask = mask.copy()
        mask[3] = 0
    mask = jnp.asarray(mask)
    for key, (mode, c) in TUNIX.items():
        s, d = aggregate(loss, mask, mode, c)
        ref = tunix["aggregate_loss"][f"{variant}/{key}"]["value"]
        assert abs(float(finalize_loss(s, d)) - ref) < 1e-7, key
    rows = float(jnp.sum(jnp.any(mask != 0, axis=1)))
    s, d = aggregate(loss, mask, "constant-normalized-sum", 10.0)
    ref = tunix["aggregate_loss"][f"{variant}/sequence-mean-token-sum-norm/norm10.0"]["value"]
    assert abs(float(s / d) * rows - ref) < 1e-7


def test_formulas_by_hand(x64):
    loss = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = jnp.array([[1, 1, 0], [1, 1, 1]])
    expect = {
        "token-mean": (3 + 15, 5),
        "seq-mean-token-mean": (1.5 + 5.0, 2),
        "seq-mean-token-sum": (18, 2),
        "constant-normalized-sum": (18, 2 * 3),
    }
    for mode, (s_ref, d_ref) in expect.items():
        s, d = aggregate(loss, mask, mode)
        assert float(s) == pytest.approx(s_ref) and float(d) == d_ref, mode


@pytest.mark.parametrize(
    ("mode", "long_over_short"),
    [("seq-mean-token-mean", 1.0), ("constant-normalized-sum", 4.0), ("token-mean", 4.0)],
)
def test_length_bias_of_the_modes(mode, long_over_short, x64):
    """Dr. GRPO's length bias (arXiv 2503.20783 §3.2) on the GRPO loss at r = 1: two wrong
    answers with the same advantage, of 2 and 8 tokens. Under ``seq-mean-token-mean`` each
    response's whole push-down is the same, so the long one is pushed down 4x less per token;
    a constant or token-level normaliser pushes every token equally (the long one 4x more in
    all)."""
    from cliffjax.objectives import PolicyBatch, get_objective

    spec = get_objective("grpo")
    cfg = dataclasses.replace(spec.default_config, beta=0.0, aggregation=mode)
    mask = jnp.array([[1.0] * 2 + [0.0] * 6, [1.0] * 8])
    lp = jnp.full((2, 8), -1.0)
    batch = PolicyBatch(logp=lp, logp_old=lp, mask=mask, advantages=jnp.array([-1.0, -1.0]))
    g = jax.grad(lambda x: finalize_loss(*spec.loss(batch._replace(logp=x), cfg)[:2]))(lp)
    per_token = np.asarray(g)  # > 0: the loss falls as log π falls, i.e. a push down
    assert np.all(per_token[mask == 0] == 0) and np.all(per_token[mask == 1] > 0)
    short_total, long_total = per_token[0].sum(), per_token[1].sum()
    assert long_total / short_total == pytest.approx(long_over_short, rel=1e-12)
    assert per_token[1, 0] / per_token[0, 0] == pytest.approx(long_over_short / 4, rel=1e-12)


def test_masked_inf_contributes_nothing(x64):
    loss = jnp.array([[1.0, jnp.inf], [2.0, jnp.nan]])
    mask = jnp.array([[1, 0], [1, 0]])
    for mode in AGGREGATION_MODES:
        s, _ = aggregate(loss, mask, mode, 2.0)
        assert np.isfinite(float(s)), mode


def test_fully_masked_batch_gives_zero_over_zero():
    s, d = aggregate(jnp.ones((2, 3)), jnp.zeros((2, 3)), "token-mean")
    assert float(s) == 0.0 and float(d) == 0.0 and float(finalize_loss(s, d)) == 0.0


def test_bad_mode_names_field():
    with pytest.raises(ValueError, match="aggregation"):
        aggregate(jnp.ones((1, 2)), jnp.ones((1, 2)), "mean")


_agg = jax.jit(aggregate, static_argnums=(2, 3))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    split=st.integers(1, 5),
    mode=st.sampled_from(AGGREGATION_MODES),
)
def test_micro_batches_add_up_to_whole_batch(seed, split, mode):
    """Summing (sum, denominator) over row splits equals the whole batch.

    Each micro-batch is padded back to the full 6 x 5 shape with fully masked rows (what a
    trainer with static shapes does), so this also checks that padding rows change nothing.
    """
    rng = np.random.default_rng(seed)
    loss = rng.normal(size=(6, 5)).astype(np.float32)
    lengths = rng.integers(0, 6, size=6)
    mask = (np.arange(5)[None, :] < lengths[:, None]).astype(np.int32)
    s, d = _agg(jnp.asarray(loss), jnp.asarray(mask), mode, 5.0)
    rows = np.arange(6) < split
    s_parts = d_parts = 0.0
    for part in (rows, ~rows):
        garbage = np.where(part[:, None], loss, 1e30).astype(np.float32)  # padding holds junk
        si, di = _agg(jnp.asarray(garbage), jnp.asarray(mask * part[:, None]), mode, 5.0)
        s_parts += float(si)
        d_parts += float(di)
    assert d_parts == pytest.approx(float(d))
    assert s_parts == pytest.approx(float(s), rel=1e-5, abs=1e-5)
