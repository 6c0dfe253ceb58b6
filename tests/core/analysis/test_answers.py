"""Answer sets of the digit tasks: enumeration, indexing, exact distributions, rewards."""

import jax
import jax.numpy as jnp
import numpy as np

from cliffjax.analysis import (
    answer_candidates,
    answer_distribution,
    answer_index,
    candidate_rewards,
    num_answers,
)
from cliffjax.models.policy import make_policy
from cliffjax.models.transformer import TransformerConfig
from cliffjax.tasks.many_answers import ManyAnswersConfig, ManyAnswersTask


def test_answer_index_inverts_candidates():
    tok_digit0, eos, pad = 2, 1, 0
    cand, mask = answer_candidates(2, 4, tok_digit0, eos, pad)
    assert cand.shape == (110, 4) and num_answers(2) == 110
    assert int(mask.sum()) == 10 * 2 + 100 * 3
    np.testing.assert_array_equal(
        np.asarray(answer_index(cand, 2, tok_digit0, eos)), np.arange(110)
    )
    bad = jnp.asarray(
        [
            [eos, pad, pad, pad],  # empty answer
            [2, 3, 4, eos],  # three digits > L
            [2, 3, 4, 5],  # no EOS
            [2, 14, eos, pad],  # a non-digit
        ]
    )
    np.testing.assert_array_equal(np.asarray(answer_index(bad, 2, tok_digit0, eos)), [-1] * 4)


def test_answer_distribution_is_a_distribution_and_rewards_match_the_task():
    task = ManyAnswersTask(ManyAnswersConfig(min_digits=1, max_digits=2))
    tok = task.tokenizer
    cfg = TransformerConfig(
        vocab_size=tok.vocab_size, max_seq_len=16, d_model=16, n_layers=1, n_heads=2, d_ff=32
    )
    policy = make_policy(cfg, 0)
    prompts, meta = task.train_prompt_set(jax.random.key(0), 3)
    cand, cmask = answer_candidates(2, task.max_new_tokens, tok.digit0_id, tok.eos_id, tok.pad_id)
    dist = np.asarray(answer_distribution(policy.graphdef, policy.params, prompts, cand, cmask))
    assert dist.shape == (3, 111) and np.all(dist >= 0)
    np.testing.assert_allclose(dist.sum(1), 1.0, atol=1e-5)
    rewards, comps = candidate_rewards(task, prompts, meta, cand, cmask)
    assert rewards.shape == (3, 110) and set(comps) >= {"correct"}
    # every prompt's correct answers are exactly the task's enumeration
    for i in range(3):
        s, n = int(meta["s"][i]), int(meta["n"][i])
        correct = {tok.decode(np.asarray(cand[j])) for j in np.flatnonzero(np.asarray(rewards[i]))}
        assert correct == set(task.answers(s, n))
