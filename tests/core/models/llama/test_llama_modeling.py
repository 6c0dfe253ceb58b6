"""Logits parity with transformers (float32), left padding, cache decoding, greedy sampling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.models.llama import load_hf
from cliffjax.models.policy import apply
from cliffjax.sampling.sampler import SamplingConfig, sample
from cliffjax.sampling.scoring import score

torch = pytest.importorskip("torch")

VOCAB = 300  # the conftest checkpoints' vocabulary
NAMES = ["llama3_gqa_untied", "llama_tied_sharded", "qwen2_bias_sharded", "qwen3_qknorm_tied"]
LENGTHS = (12, 7, 3)  # mixed prompt lengths, left-padded to 12

# One compiled forward per (model, shape) instead of op-by-op dispatch.
forward = jax.jit(apply, static_argnums=0)
score_jit = jax.jit(score, static_argnums=0)


@pytest.fixture(scope="module")
def policies(hf_checkpoints):
    return {name: load_hf(path) for name, (path, _) in hf_checkpoints.items()}


def _hf_logits(model, tokens, mask=None, position_ids=None):
    with torch.no_grad():
        out = model(
            torch.tensor(np.asarray(tokens)),
            attention_mask=None if mask is None else torch.tensor(mask),
            position_ids=None if position_ids is None else torch.tensor(position_ids),
        )
    return out.logits.float().numpy()


def _padded_batch(seed: int = 0):
    rng = np.random.RandomState(seed)
    width = max(LENGTHS)
    tokens = np.zeros((len(LENGTHS), width), np.int32)
    positions = np.full((len(LENGTHS), width), -1, np.int32)
    rows = []
    for b, n in enumerate(LENGTHS):
        row = rng.randint(2, VOCAB, size=n).astype(np.int32)
        rows.append(row)
        tokens[b, width - n :] = row
        positions[b, width - n :] = np.arange(n)
    return tokens, positions, rows


@pytest.mark.parametrize("name", NAMES)
def test_logits_match_transformers(name, hf_checkpoints, policies):
    _, model = hf_checkpoints[name]
    pol = policies[name]
    tokens = np.random.RandomState(1).randint(0, VOCAB, size=(2, 20)).astype(np.int32)
    positions = np.broadcast_to(np.arange(20, dtype=np.int32), tokens.shape)
    ours, _ = forward(pol.graphdef, pol.params, jnp.asarray(tokens), jnp.asarray(positions))
    assert ours.dtype == jnp.float32 and ours.shape == (2, 20, VOCAB)
    np.testing.assert_allclose(np.asarray(ours), _hf_logits(model, tokens), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_left_padded_batch_matches_rows_alone_and_transformers(name, hf_checkpoints, policies):
    _, model = hf_checkpoints[name]
    pol = policies[name]
    tokens, positions, rows = _padded_batch()
    ours, _ = forward(pol.graphdef, pol.params, jnp.asarray(tokens), jnp.asarray(positions))
    ours = np.asarray(ours)
    mask = (positions >= 0).astype(np.int64)
    theirs = _hf_logits(model, tokens, mask, np.maximum(positions, 0).astype(np.int64))
    width = tokens.shape[1]
    for b, row in enumerate(rows):
        n = len(row)
        alone, _ = forward(
            pol.graphdef, pol.params, jnp.asarray(row[None]), jnp.arange(n, dtype=jnp.int32)[None]
        )
        np.testing.assert_allclose(ours[b, width - n :], np.asarray(alone[0]), atol=1e-5, rtol=0)
        np.testing.assert_allclose(ours[b, width - n :], theirs[b, width - n :], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["qwen3_qknorm_tied"])
def test_cached_decoding_of_padded_prompts_matches_full_forward(name, policies):
    pol = policies[name]
    model_tokens, positions, rows = _padded_batch(seed=2)
    b, width = model_tokens.shape
    steps = 4
    nxt = np.random.RandomState(3).randint(2, VOCAB, size=(b, steps)).astype(np.int32)

    @jax.jit
    def run(params, tokens, positions, nxt):
        from flax import nnx

        model = nnx.merge(pol.graphdef, params)
        cache = model.init_cache(b, width + steps)
        logits, cache = model(tokens, positions, cache)
        outs = [logits[:, -1]]
        pos = positions[:, -1]
        for t in range(steps):
            pos = pos + 1
            logits, cache = model(nxt[:, t : t + 1], pos[:, None], cache)
            outs.append(logits[:, 0])
        return jnp.stack(outs, axis=1), cache

    out, cache = run(pol.params, jnp.asarray(model_tokens), jnp.asarray(positions), nxt)
    assert int(cache.index) == width + steps
    assert cache.pos.shape == (b, width + steps)
    for i, row in enumerate(rows):
        full = np.concatenate([row, nxt[i]])[None]
        ref, _ = forward(
            pol.graphdef, pol.params, jnp.asarray(full), jnp.arange(full.shape[1])[None]
        )
        np.testing.assert_allclose(
            np.asarray(out[i]), np.asarray(ref[0, len(row) - 1 :]), atol=1e-5, rtol=0
        )


@pytest.mark.parametrize("name", ["llama3_gqa_untied", "qwen3_qknorm_tied"])
def test_greedy_sampler_equals_transformers_generate(name, hf_checkpoints, policies):
    _, model = hf_checkpoints[name]
    pol = policies[name]
    prompts = np.random.RandomState(4).randint(2, VOCAB, size=(2, 6)).astype(np.int32)
    cfg = SamplingConfig(max_new_tokens=32, temperature=0.0, eos_id=VOCAB - 1, pad_id=0)
    out = sample(pol.graphdef, pol.params, jnp.asarray(prompts), jax.random.key(0), cfg)
    with torch.no_grad():
        ref = model.generate(
            torch.tensor(prompts, dtype=torch.long),
            attention_mask=torch.ones(prompts.shape, dtype=torch.long),
            max_new_tokens=32,
            min_new_tokens=32,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
        ).numpy()[:, prompts.shape[1] :]
    mask = np.asarray(out.completion_mask).astype(bool)
    assert mask[:, :8].all()
    np.testing.assert_array_equal(np.asarray(out.completion)[mask], ref[mask])
    logp = score(pol.graphdef, pol.params, jnp.asarray(prompts), out.completion)
    np.testing.assert_allclose(
        np.asarray(out.logp)[mask], np.asarray(logp)[mask], atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("name", ["qwen2_bias_sharded"])
def test_sampler_on_left_padded_prompts_matches_rows_alone(name, policies):
    """Greedy tokens of a left-padded batch equal each row alone, for two padding widths;
    log-probs to 1e-5; scoring with the same mask equals the sampler's log-probs."""
    pol = policies[name]
    _, _, rows = _padded_batch(seed=6)
    cfg = SamplingConfig(max_new_tokens=8, temperature=0.0, eos_id=VOCAB - 1, pad_id=0)
    outs = []
    for width in (max(LENGTHS), max(LENGTHS) + 4):
        tokens = np.zeros((len(rows), width), np.int32)
        mask = np.zeros((len(rows), width), np.int32)
        for b, row in enumerate(rows):
            tokens[b, width - len(row) :], mask[b, width - len(row) :] = row, 1
        out = sample(
            pol.graphdef, pol.params, jnp.asarray(tokens), jax.random.key(0), cfg, jnp.asarray(mask)
        )
        outs.append(out)
        logp = score_jit(pol.graphdef, pol.params, jnp.asarray(tokens), out.completion, mask)
        cmask = np.asarray(out.completion_mask)
        np.testing.assert_allclose(np.asarray(out.logp), np.asarray(logp) * cmask, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(outs[0].completion), np.asarray(outs[1].completion))
    for b, row in enumerate(rows):
        alone = sample(pol.graphdef, pol.params, jnp.asarray(row[None]), jax.random.key(0), cfg)
        for out in outs:
            np.testing.assert_array_equal(
                np.asarray(out.completion[b]), np.asarray(alone.completion[0])
            )
            np.testing.assert_allclose(
                np.asarray(out.logp[b]), np.asarray(alone.logp[0]), atol=1e-5, rtol=0
            )


def test_logits_from_and_scoring_match_transformers(hf_checkpoints, policies):
    """Scoring asks for the completion's logits only; they equal transformers' at those
    positions (untied head; the tied head is the same code path)."""
    name = "qwen2_bias_sharded"
    _, model = hf_checkpoints[name]
    pol = policies[name]
    tokens = np.random.RandomState(2).randint(2, VOCAB, size=(2, 10)).astype(np.int32)
    positions = np.broadcast_to(np.arange(10, dtype=np.int32), tokens.shape)
    tail, _ = apply(pol.graphdef, pol.params, jnp.asarray(tokens), jnp.asarray(positions), None, 6)
    assert tail.shape == (2, 4, VOCAB)
    ref = _hf_logits(model, tokens)
    np.testing.assert_allclose(np.asarray(tail), ref[:, 6:], atol=1e-4, rtol=0)
    logp = score_jit(
        pol.graphdef, pol.params, jnp.asarray(tokens[:, :4]), jnp.asarray(tokens[:, 4:])
    )
    ref_logq = ref[:, 3:-1] - np.log(np.sum(np.exp(ref[:, 3:-1]), axis=-1, keepdims=True))
    ref_logp = np.take_along_axis(ref_logq, tokens[:, 4:, None], axis=-1)[..., 0]
    np.testing.assert_allclose(np.asarray(logp), ref_logp, atol=1e-4, rtol=0)


def test_rope_equals_the_slice_and_concatenate_formula():
    from cliffjax.models.llama.modeling import rotate_half_rope
    from cliffjax.models.transformer import rope  # the slice + concatenate form

    x = jax.random.normal(jax.random.key(3), (2, 5, 3, 8), jnp.float32)
    positions = jnp.asarray([[-1, 0, 1, 2, 3], [0, 4, 9, 16, 25]], jnp.int32)
    inv = 10000.0 ** (-jnp.arange(4, dtype=jnp.float32) / 4)
    np.testing.assert_allclose(
        np.asarray(rotate_half_rope(x, positions, inv)),
        np.asarray(rope(x, positions, 10000.0)),
        atol=1e-6,
        rtol=0,
    )
