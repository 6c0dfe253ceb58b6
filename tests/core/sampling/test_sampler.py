"""KV-cache sampler and scoring: log-prob agreement, greedy equivalence, keys, filters, EOS."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.models import apply, make_policy, preset_config
from cliffjax.sampling import SamplingConfig, filter_logits, sample, score, score_with_entropy

V, B, P, N = 20, 16, 5, 6
NO_EOS = 99  # an id the model can never emit: every row runs all N steps


@pytest.fixture(scope="module")
def policy():
    return make_policy(preset_config("tiny", V, max_seq_len=16), jax.random.key(0))


@pytest.fixture(scope="module")
def prompts():
    return jax.random.randint(jax.random.key(1), (B, P), 2, V, dtype=jnp.int32)


@pytest.fixture(scope="module")
def score_fn():
    return jax.jit(score_with_entropy)


@pytest.fixture(scope="module")
def score_jit():
    return jax.jit(score)


FREE = SamplingConfig(N, eos_id=NO_EOS)  # temperature 1, no EOS: rows never stop
STOP = SamplingConfig(N, eos_id=3)  # temperature 1, a real EOS: some rows stop early


@pytest.fixture(scope="module")
def greedy(policy, prompts):
    graphdef, params = policy
    return sample(
        graphdef,
        params,
        prompts,
        jax.random.key(0),
        SamplingConfig(N, temperature=0.0, eos_id=NO_EOS),
    )


def test_config_validation():
    with pytest.raises(ValueError, match="max_new_tokens"):
        SamplingConfig(0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(4, top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingConfig(4, temperature=-1.0)


def test_sampling_logp_equals_teacher_forced_score(policy, prompts, score_fn, score_jit):
    """KV-cache correctness: log-probs from decoding == one full forward pass."""
    graphdef, params = policy
    out = sample(graphdef, params, prompts, jax.random.key(7), STOP)
    mask = np.asarray(out.completion_mask)
    assert 0 < mask.sum() < mask.size, "the test must see some early EOS"
    logp, entropy = score_fn(graphdef, params, prompts, out.completion)
    np.testing.assert_allclose(np.asarray(out.logp), np.asarray(logp) * mask, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(score_jit(graphdef, params, prompts, out.completion)), logp, atol=1e-6
    )
    ent = np.asarray(entropy)
    assert np.all(ent >= -1e-6) and np.all(ent <= np.log(V) + 1e-5)
    np.testing.assert_array_equal(np.asarray(out.tokens[:, :P]), np.asarray(prompts))
    np.testing.assert_array_equal(np.asarray(out.tokens[:, P:]), np.asarray(out.completion))


def test_greedy_kv_equals_greedy_reforward(policy, prompts, greedy, score_jit):
    graphdef, params = policy
    fwd = jax.jit(apply)
    # Full re-forward at every step over a fixed-size buffer (causal attention: the padding
    # to the right of the prefix cannot change the logits at the prefix's last position).
    seq = jnp.concatenate([prompts, jnp.zeros((B, N), jnp.int32)], axis=1)
    positions = jnp.broadcast_to(jnp.arange(P + N, dtype=jnp.int32), seq.shape)
    for t in range(N):
        logits, _ = fwd(graphdef, params, seq, positions)
        nxt = jnp.argmax(logits[:, P + t - 1], axis=-1).astype(jnp.int32)
        seq = seq.at[:, P + t].set(nxt)
    np.testing.assert_array_equal(np.asarray(greedy.completion), np.asarray(seq[:, P:]))
    # At temperature 0 the logp is the policy's own (temperature 1) log-prob of the argmax.
    want = score_jit(graphdef, params, prompts, greedy.completion)
    np.testing.assert_allclose(np.asarray(greedy.logp), np.asarray(want), atol=1e-5)


def test_same_key_same_samples_different_key_different(policy, prompts):
    graphdef, params = policy
    a = sample(graphdef, params, prompts, jax.random.key(3), FREE)
    b = sample(graphdef, params, prompts, jax.random.key(3), FREE)
    c = sample(graphdef, params, prompts, jax.random.key(4), FREE)
    np.testing.assert_array_equal(np.asarray(a.tokens), np.asarray(b.tokens))
    np.testing.assert_array_equal(np.asarray(a.logp), np.asarray(b.logp))
    assert not np.array_equal(np.asarray(a.tokens), np.asarray(c.tokens))


def test_degenerate_nucleus_equals_greedy(policy, prompts, greedy):
    """A tiny nucleus keeps only the argmax (top-k is checked in the distribution test)."""
    graphdef, params = policy
    cfg = SamplingConfig(N, eos_id=NO_EOS, top_p=1e-6)
    out = sample(graphdef, params, prompts, jax.random.key(5), cfg)
    np.testing.assert_array_equal(np.asarray(out.completion), np.asarray(greedy.completion))
    # The sampling distribution is a point mass: log q = 0.
    np.testing.assert_allclose(np.asarray(out.logp), 0.0, atol=1e-6)


def test_eos_handling(policy, prompts):
    """Mask covers tokens up to and including the first EOS; pad, mask 0 and logp 0 after.

    Step t draws with fold_in(key, t), so with the same key a run without EOS produces the same
    tokens up to the first EOS of the run with EOS.
    """
    graphdef, params = policy
    free = np.asarray(sample(graphdef, params, prompts, jax.random.key(7), FREE).completion)
    out = sample(graphdef, params, prompts, jax.random.key(7), STOP)
    comp, mask, logp = (np.asarray(x) for x in (out.completion, out.completion_mask, out.logp))
    stopped = 0
    for row in range(B):
        hits = np.flatnonzero(free[row] == STOP.eos_id)
        stop = hits[0] if hits.size else N - 1
        stopped += bool(hits.size and hits[0] < N - 1)
        np.testing.assert_array_equal(comp[row, : stop + 1], free[row, : stop + 1])
        np.testing.assert_array_equal(mask[row], (np.arange(N) <= stop).astype(np.int32))
        np.testing.assert_array_equal(comp[row, stop + 1 :], STOP.pad_id)
        np.testing.assert_array_equal(logp[row, stop + 1 :], 0.0)
        assert np.all(logp[row, : stop + 1] < 0)
    assert stopped > 0, "the test must see some early EOS"


FILTERED = SamplingConfig(1, temperature=0.7, top_k=5, top_p=0.8, eos_id=NO_EOS)


@pytest.fixture(scope="module")
def many_one_step(policy):
    """4096 copies of one prompt, one new token with temperature, top-k and top-p all active."""
    graphdef, params = policy
    prompt = jnp.tile(jnp.arange(2, 2 + P, dtype=jnp.int32)[None], (4096, 1))
    out = sample(graphdef, params, prompt, jax.random.key(11), FILTERED)
    logits, _ = apply(graphdef, params, prompt[:1], jnp.arange(P, dtype=jnp.int32)[None])
    want = jax.nn.softmax(filter_logits(logits[:, -1] / FILTERED.temperature, 5, 0.8))[0]
    return prompt, out, np.asarray(want)


def test_empirical_distribution_matches_sampling_distribution(many_one_step):
    """One-step frequencies follow softmax(filter(logits / T)); the filters bite here."""
    prompt, out, want = many_one_step
    freq = np.bincount(np.asarray(out.completion[:, 0]), minlength=V) / prompt.shape[0]
    assert np.abs(freq - want).max() < 0.03
    support = want > 0
    assert np.all(freq[~support] == 0) and 1 < support.sum() <= FILTERED.top_k


def test_filter_logits_top_k_top_p():
    logits = jnp.log(jnp.array([[0.1, 0.5, 0.2, 0.15, 0.05]]))
    k2 = np.isfinite(np.asarray(filter_logits(logits, 2, 1.0)))
    np.testing.assert_array_equal(k2[0], [False, True, True, False, False])
    # Nucleus: smallest set of top tokens with mass >= p.
    p50 = np.isfinite(np.asarray(filter_logits(logits, 0, 0.5)))
    np.testing.assert_array_equal(p50[0], [False, True, False, False, False])
    p70 = np.isfinite(np.asarray(filter_logits(logits, 0, 0.7)))
    np.testing.assert_array_equal(p70[0], [False, True, True, False, False])
    p71 = np.isfinite(np.asarray(filter_logits(logits, 0, 0.71)))
    np.testing.assert_array_equal(p71[0], [False, True, True, True, False])


def test_single_new_token_logp_is_sampling_log_prob(many_one_step):
    _, out, want = many_one_step
    assert out.completion.shape == (4096, 1) and out.tokens.shape == (4096, P + 1)
    np.testing.assert_array_equal(np.asarray(out.completion_mask), 1)
    # logp is the log-prob under the filtered, temperature-scaled distribution actually sampled.
    tok = np.asarray(out.completion[:, 0])
    np.testing.assert_allclose(np.asarray(out.logp[:, 0]), np.log(want[tok]), atol=1e-5)


def test_group_size_matches_repeated_prompts(policy, prompts, score_jit):
    """G completions per prompt: rows are grouped, prompts repeated, log-probs still exact."""
    graphdef, params = policy
    cfg = SamplingConfig(N, eos_id=3, group_size=4)
    out = sample(graphdef, params, prompts[:4], jax.random.key(2), cfg)
    assert out.completion.shape == (16, N)
    np.testing.assert_array_equal(
        np.asarray(out.tokens[:, :P]), np.repeat(np.asarray(prompts[:4]), 4, axis=0)
    )
    want = score_jit(graphdef, params, out.tokens[:, :P], out.completion)
    np.testing.assert_allclose(
        np.asarray(out.logp), np.asarray(want) * np.asarray(out.completion_mask), atol=1e-5
    )
    assert len({tuple(r) for r in np.asarray(out.completion[:4])}) > 1  # the group differs


def test_config_rejects_bad_eos_ids():
    with pytest.raises(ValueError, match="eos_ids"):
        SamplingConfig(4, eos_ids=[2])
    with pytest.raises(ValueError, match="eos_ids"):
        SamplingConfig(4, eos_ids=(-1,))
    assert SamplingConfig(4, eos_id=3, eos_ids=(5, 3)).stop_ids == (3, 5)


def test_extra_eos_ids_stop_rows(policy, prompts):
    """Any of ``eos_id`` / ``eos_ids`` ends a row; tokens before the first stop are unchanged."""
    graphdef, params = policy
    free = np.asarray(sample(graphdef, params, prompts, jax.random.key(7), FREE).completion)
    cfg = SamplingConfig(N, eos_id=3, eos_ids=(4, 5))
    out = sample(graphdef, params, prompts, jax.random.key(7), cfg)
    comp, mask = np.asarray(out.completion), np.asarray(out.completion_mask)
    hit_extra = 0
    for row in range(B):
        hits = np.flatnonzero(np.isin(free[row], (3, 4, 5)))
        stop = hits[0] if hits.size else N - 1
        hit_extra += bool(hits.size and free[row, hits[0]] != 3 and hits[0] < N - 1)
        np.testing.assert_array_equal(comp[row, : stop + 1], free[row, : stop + 1])
        np.testing.assert_array_equal(mask[row], (np.arange(N) <= stop).astype(np.int32))
    assert hit_extra > 0, "the test must see a row stopped by an extra stop id"


LENGTHS = (6, 3, 1)  # real tokens per prompt, left padded


def left_pad(rows, width: int):
    """``(tokens [n, width], mask [n, width])`` with each row's padding (id 0) on the left."""
    tokens = np.zeros((len(rows), width), np.int32)
    mask = np.zeros((len(rows), width), np.int32)
    for b, row in enumerate(rows):
        tokens[b, width - len(row) :] = row
        mask[b, width - len(row) :] = 1
    return jnp.asarray(tokens), jnp.asarray(mask)


@pytest.fixture(scope="module")
def ragged_rows():
    rng = np.random.RandomState(5)
    return [rng.randint(2, V, size=n).astype(np.int32) for n in LENGTHS]


GREEDY = SamplingConfig(N, temperature=0.0, eos_id=NO_EOS)


def test_left_padded_prompts_decode_like_rows_alone(policy, ragged_rows, score_jit):
    """Greedy tokens equal each row alone (for any amount of padding); log-probs to 1e-5."""
    graphdef, params = policy
    outs = [
        sample(
            graphdef,
            params,
            *left_pad(ragged_rows, w)[:1],
            jax.random.key(0),
            GREEDY,
            prompt_mask=left_pad(ragged_rows, w)[1],
        )
        for w in (max(LENGTHS), max(LENGTHS) + 3)
    ]
    np.testing.assert_array_equal(np.asarray(outs[0].completion), np.asarray(outs[1].completion))
    for b, row in enumerate(ragged_rows):
        alone = sample(graphdef, params, jnp.asarray(row[None]), jax.random.key(0), GREEDY)
        for out in outs:
            np.testing.assert_array_equal(
                np.asarray(out.completion[b]), np.asarray(alone.completion[0])
            )
            np.testing.assert_allclose(
                np.asarray(out.logp[b]), np.asarray(alone.logp[0]), atol=1e-5, rtol=0
            )


def test_left_padded_scores_equal_sampler_logp(policy, ragged_rows, score_fn):
    """Temperature 1: the sampler's log-probs equal teacher-forced scores with the same mask
    (and the sampler's equal each row alone, previous test)."""
    graphdef, params = policy
    tokens, mask = left_pad(ragged_rows, max(LENGTHS) + 2)
    # Two completions per prompt: the padded cache (positions included) is copied per row.
    cfg = SamplingConfig(N, eos_id=3, group_size=2)
    out = sample(graphdef, params, tokens, jax.random.key(9), cfg, prompt_mask=mask)
    cmask = np.asarray(out.completion_mask)
    tokens, mask = jnp.repeat(tokens, 2, axis=0), jnp.repeat(mask, 2, axis=0)
    logp, entropy = score_fn(graphdef, params, tokens, out.completion, mask)
    np.testing.assert_allclose(np.asarray(out.logp), np.asarray(logp) * cmask, atol=1e-5)
    ent = np.asarray(entropy)
    assert np.all(ent >= -1e-6) and np.all(ent <= np.log(V) + 1e-5)


def test_prompt_mask_validation(policy, ragged_rows):
    graphdef, params = policy
    tokens, mask = left_pad(ragged_rows, max(LENGTHS))
    with pytest.raises(ValueError, match="left padded"):
        sample(graphdef, params, tokens, jax.random.key(0), GREEDY, prompt_mask=mask[:, ::-1])
    with pytest.raises(ValueError, match="real token"):
        sample(graphdef, params, tokens, jax.random.key(0), GREEDY, prompt_mask=mask.at[2].set(0))
    with pytest.raises(ValueError, match="shape"):
        sample(graphdef, params, tokens, jax.random.key(0), GREEDY, prompt_mask=mask[:, 1:])


def test_decode_segments_cover_every_step_once():
    from cliffjax.sampling.sampler import decode_segments

    for n, block in ((1, 4), (2, 4), (6, 2), (65, 64), (512, 64), (512, 0), (9, 3)):
        segs = decode_segments(n, block)
        steps = [t for first, last, _ in segs for t in range(first, last + 1)]
        assert steps == list(range(1, n)), (n, block)
        assert all(slots >= last for _, last, slots in segs)  # step t needs P + t slots
    assert decode_segments(512, 64)[-1] == (257, 511, 511)


def test_growing_cache_and_early_exit_give_the_same_samples(policy, prompts):
    """A cache grown in segments of 2, 4 steps (and skipped once every row has stopped) gives
    the tokens of one full-length cache; log-probs agree to float rounding."""
    graphdef, params = policy
    for base in (STOP,):
        one = sample(graphdef, params, prompts, jax.random.key(7), base)
        seg = sample(
            graphdef, params, prompts, jax.random.key(7), dataclasses.replace(base, cache_block=2)
        )
        np.testing.assert_array_equal(np.asarray(seg.tokens), np.asarray(one.tokens))
        np.testing.assert_array_equal(
            np.asarray(seg.completion_mask), np.asarray(one.completion_mask)
        )
        np.testing.assert_allclose(np.asarray(seg.logp), np.asarray(one.logp), atol=1e-6, rtol=0)
    # Every row stops at its first token (EOS = each row's greedy first token is forced by
    # making every id a stop id): the later segments are skipped and hold padding.
    cfg = SamplingConfig(N, temperature=0.0, eos_id=0, eos_ids=tuple(range(1, V)), cache_block=2)
    out = sample(graphdef, params, prompts, jax.random.key(0), cfg)
    np.testing.assert_array_equal(np.asarray(out.completion_mask[:, 1:]), 0)
    np.testing.assert_array_equal(np.asarray(out.completion[:, 1:]), cfg.pad_id)
    np.testing.assert_array_equal(
        np.asarray(out.completion[:, 0]), np.asarray(greedy_first(policy, prompts))
    )


def greedy_first(policy, prompts):
    graphdef, params = policy
    logits, _ = apply(graphdef, params, prompts, jnp.broadcast_to(jnp.arange(P), prompts.shape))
    return jnp.argmax(logits[:, -1], axis=-1)
