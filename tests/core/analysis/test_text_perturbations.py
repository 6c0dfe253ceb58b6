"""Text reward perturbations: the length penalty, the per-trace hash bonus and the per-answer
bonus (host callback), under jit and vmap."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.analysis.sampled_answers import answer_bonus
from cliffjax.analysis.text_perturbations import (
    TextPerturbation,
    TextPerturbedReward,
    first_eos_length,
)

EOS, PAD = 10, 11


class DigitTokenizer:
    """Ids 0-9 are the digits, 12 is a space, 13 is '#'; EOS 10, padding 11."""

    eos_ids = (EOS,)

    def decode_batch(self, ids):
        chars = {**{i: str(i) for i in range(10)}, 12: " ", 13: "#"}
        out = []
        for row in np.asarray(ids):
            text = []
            for i in row:
                if int(i) == EOS:
                    break
                text.append(chars.get(int(i), ""))
            out.append("".join(text))
        return out

    def __hash__(self):
        return 1

    def __eq__(self, other):
        return isinstance(other, DigitTokenizer)


def _rows(*rows, n=8):
    out = np.full((len(rows), n), PAD, np.int32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return jnp.asarray(out)


SALT = TextPerturbation(jnp.uint32(3))


def test_length_penalty_hand_computed():
    c = _rows([1, 2, EOS], [EOS], [1, 2, 3, 4, 5, 6, 7, 8])  # the last never ends
    np.testing.assert_array_equal(first_eos_length(c, (EOS,)), [2, 0, 8])
    t = TextPerturbedReward("length", 8, (EOS,))
    np.testing.assert_allclose(t.delta(SALT, c, {}, {}), [-0.25, 0.0, -1.0])
    # A second EOS id ends a completion too.
    np.testing.assert_array_equal(first_eos_length(_rows([1, 9, 2]), (EOS, 9)), [1])


def test_random_completion_bonus_is_a_function_of_the_trace():
    t = TextPerturbedReward("random_completion", 8, (EOS,))
    c = _rows([1, 2, EOS], [1, 2, EOS, 5, 5], [2, 1, EOS], [1, 2, 3, EOS], [1, 2])
    d = np.asarray(jax.jit(t.delta)(SALT, c, {}, {}))
    assert d[0] == d[1]  # tokens after the EOS do not count
    assert len({d[0], d[2], d[3], d[4]}) == 4  # order, length and the EOS itself count
    assert np.all((d >= -1) & (d < 1))
    other = np.asarray(t.delta(TextPerturbation(jnp.uint32(4)), c, {}, {}))
    assert not np.allclose(other, d)  # the salt changes the draw
    many = np.asarray(
        t.delta(SALT, jnp.asarray(np.random.default_rng(0).integers(0, 10, (4000, 8))), {}, {})
    )
    assert abs(many.mean()) < 0.05 and many.min() < -0.95 and many.max() > 0.95


def test_random_answer_bonus_ties_the_traces_of_one_answer():
    tok = DigitTokenizer()
    t = TextPerturbedReward("random_answer", 8, (EOS,), tokenizer=tok, extractor="gsm8k")
    # "3 4 #7" and "5 #7": different traces, same final number 7 (last number); "12" and "".
    c = _rows([3, 12, 4, 12, 13, 7, EOS], [5, 12, 13, 7, EOS], [1, 2, EOS], [EOS])
    d = np.asarray(jax.jit(t.delta)(SALT, c, {}, {}))
    np.testing.assert_allclose(
        d, [answer_bonus("7", 3), answer_bonus("7", 3), answer_bonus("12", 3), 0.0], rtol=1e-6
    )
    # Under vmap (several runs in one program) the host callback runs per run.
    salts = TextPerturbation(jnp.asarray([3, 5], jnp.uint32))
    dv = np.asarray(jax.jit(jax.vmap(lambda p: t.delta(p, c, {}, {})))(salts))
    np.testing.assert_allclose(dv[0], d, rtol=1e-6)
    assert dv[1][0] == pytest.approx(answer_bonus("7", 5))


def test_bad_transform_settings_fail_naming_the_field():
    with pytest.raises(ValueError, match="kind must be one of"):
        TextPerturbedReward("ties", 8, (EOS,))
    with pytest.raises(ValueError, match="needs the tokenizer"):
        TextPerturbedReward("random_answer", 8, (EOS,))
    with pytest.raises(ValueError, match="extractor must be one of"):
        TextPerturbedReward("length", 8, (EOS,), extractor="nope")
