"""Tasks: tokenizer, rewards on hand-made cases, held-out splits, warm-start data, registry."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.tasks import (
    TOKENIZER,
    AdditionConfig,
    ManyAnswersConfig,
    ManyAnswersTask,
    MultiRewardConfig,
    Task,
    enumerate_answers,
    get_task,
    list_tasks,
    make_task,
    task_config_cls,
)

T = TOKENIZER


def completions(texts, width):
    """Completion ids and sampler-style masks from strings; '$' stands for EOS."""
    ids = np.full((len(texts), width), T.pad_id, np.int32)
    mask = np.zeros_like(ids)
    for row, text in enumerate(texts):
        toks = [T.eos_id if c == "$" else T.id_of(c) for c in text]
        ids[row, : len(toks)] = toks
        stop = toks.index(T.eos_id) + 1 if T.eos_id in toks else len(toks)
        mask[row, :stop] = 1
    return jnp.asarray(ids), jnp.asarray(mask)


@pytest.fixture(scope="module")
def addition():
    return get_task("addition")


@pytest.fixture(scope="module")
def many():
    return get_task("many_answers")


def test_tokenizer_roundtrip():
    ids = T.encode("37+45=", add_eos=True)
    assert ids[-1] == T.eos_id and T.vocab_size == 20
    assert T.decode(ids) == "37+45="
    assert T.decode([*T.encode("82"), T.eos_id, *T.encode("9")]) == "82"
    assert T.encode("0")[0] == T.digit0_id and T.encode("9")[0] == T.digit0_id + 9
    with pytest.raises(ValueError, match="not in the vocabulary"):
        T.encode("x")


def test_addition_prompts_and_reward(addition):
    prompts, meta = addition.prompts_for(
        jnp.array([37] * 6 + [7, 99, 0]), jnp.array([45] * 6 + [5, 99, 0])
    )
    assert T.decode_batch(prompts)[:1] == ["37+45="] and T.decode_batch(prompts)[6] == "07+05="
    assert prompts.shape == (9, addition.prompt_len) and addition.max_new_tokens == 4
    texts = ["82$", "082$", "82", "821$", "72$", "$", "12$", "198$", "0$"]
    c, m = completions(texts, addition.max_new_tokens)
    reward, comps = jax.jit(addition.reward)(c, m, meta)
    #        exact  lead0  no-EOS extra  wrong  empty  7+5   99+99  0+0
    want = [1, 0, 0, 0, 0, 0, 1, 1, 1]
    np.testing.assert_array_equal(np.asarray(reward), want)
    np.testing.assert_array_equal(np.asarray(comps["correct"]), want)


def test_addition_reward_ignores_tokens_after_mask(addition):
    _, meta = addition.prompts_for(jnp.array([37]), jnp.array([45]))
    c, m = completions(["82$"], 4)
    c = c.at[0, 3].set(T.id_of("5"))  # garbage after EOS, outside the mask
    assert float(addition.reward(c, m, meta)[0][0]) == 1.0
    m0 = m.at[0, 2].set(0)  # EOS not in the mask: not a finished answer
    assert float(addition.reward(c, m0, meta)[0][0]) == 0.0


def test_mult_mod_reward():
    task = get_task("mult_mod", modulus=97, n_eval=100)
    prompts, meta = task.prompts_for(jnp.array([37, 37, 5, 96]), jnp.array([45, 45, 3, 96]))
    assert T.decode_batch(prompts)[2] == "05*03%97="
    c, m = completions(["16$", "166", "15$", "1$"], task.max_new_tokens)  # 37*45 = 1665 = 17*97+16
    np.testing.assert_array_equal(np.asarray(task.reward(c, m, meta)[0]), [1, 0, 1, 1])
    # Warm-start labels are the exact answers (no flawed teacher for mult_mod).
    tokens, loss_mask = task.sft_batch(jax.random.key(0), 64)
    p = task.prompt_len
    a = np.asarray(tokens[:, 0:2] - T.digit0_id) @ [10, 1]
    b = np.asarray(tokens[:, 3:5] - T.digit0_id) @ [10, 1]
    _, meta = task.prompts_for(jnp.asarray(a), jnp.asarray(b))
    np.testing.assert_array_equal(
        np.asarray(task.reward(tokens[:, p:], loss_mask[:, p:], meta)[0]), 1
    )


@pytest.mark.parametrize("name", ["addition", "mult_mod"])
def test_held_out_split_is_disjoint_and_complete(name):
    task = get_task(name, n_eval=500)
    train = {tuple(p) for p in np.asarray(task.train_pairs)}
    held = {tuple(p) for p in np.asarray(task.eval_pairs)}
    assert len(held) == 500 and not train & held
    n_values = 100 if name == "addition" else 97
    assert len(train | held) == n_values**2
    _prompts, meta = jax.jit(task.train_prompts, static_argnums=1)(jax.random.key(0), 512)
    drawn = set(zip(np.asarray(meta["a"]).tolist(), np.asarray(meta["b"]).tolist()))
    assert drawn <= train
    # Deterministic: the same config gives the same held-out set.
    np.testing.assert_array_equal(
        np.asarray(get_task(name, n_eval=500).eval_set()[0]), np.asarray(task.eval_set()[0])
    )


def test_addition_sft_examples_clean_and_flawed():
    clean = get_task("addition", teacher_flaw_rate=0.0)
    tokens, loss_mask = clean.sft_batch(jax.random.key(0), 256)
    p = clean.prompt_len
    assert tokens.shape == loss_mask.shape == (256, p + clean.max_new_tokens)
    assert int(loss_mask[:, :p].sum()) == 0
    a = np.asarray(tokens[:, 0:2] - T.digit0_id) @ [10, 1]
    b = np.asarray(tokens[:, 3:5] - T.digit0_id) @ [10, 1]
    _, meta = clean.prompts_for(jnp.asarray(a), jnp.asarray(b))
    reward, _ = clean.reward(tokens[:, p:], loss_mask[:, p:], meta)
    np.testing.assert_array_equal(np.asarray(reward), 1.0)

    flawed = get_task("addition", teacher_flaw_rate=0.6)
    tokens, loss_mask = flawed.sft_batch(jax.random.key(1), 4096)
    a = np.asarray(tokens[:, 0:2] - T.digit0_id) @ [10, 1]
    b = np.asarray(tokens[:, 3:5] - T.digit0_id) @ [10, 1]
    _, meta = flawed.prompts_for(jnp.asarray(a), jnp.asarray(b))
    right = np.asarray(flawed.reward(tokens[:, p:], loss_mask[:, p:], meta)[0]) == 1
    carry_free = np.asarray(flawed.carry_free_answer(jnp.asarray(a), jnp.asarray(b)))
    has_carry = carry_free != a + b
    # Every label is either right or the carry-free sum; among pairs with a carry ~60% are wrong.
    labels = [T.decode(row) for row in np.asarray(tokens[:, p:])]
    assert all(int(lab) in (x, y) for lab, x, y in zip(labels, a + b, carry_free))
    assert abs((~right[has_carry]).mean() - 0.6) < 0.04
    assert right[~has_carry].all()


def test_many_answers_reward(many):
    prompts, meta = many.prompts_for(jnp.array([17] * 7 + [0, 36]), jnp.array([3] * 7 + [2, 4]))
    assert T.decode_batch(prompts)[0] == "S=17,N=3:" and T.decode_batch(prompts)[7] == "S=00,N=2:"
    texts = ["890$", "089$", "962$", "89$", "8900$", "999$", "890", "00$", "9999$"]
    c, m = completions(texts, many.max_new_tokens)
    reward, _comps = jax.jit(many.reward)(c, m, meta)
    np.testing.assert_array_equal(np.asarray(reward), [1, 1, 1, 0, 0, 0, 0, 1, 1])
    strict = ManyAnswersTask(ManyAnswersConfig(allow_leading_zero=False))
    np.testing.assert_array_equal(
        np.asarray(strict.reward(c[:3], m[:3], {k: v[:3] for k, v in meta.items()})[0]), [1, 0, 1]
    )


def test_many_answers_enumeration_and_ties(many):
    assert enumerate_answers(9, 2) == [f"{i}{9 - i}" for i in range(10)]
    assert enumerate_answers(27, 3) == ["999"]
    assert len(enumerate_answers(9, 2, allow_leading_zero=False)) == 9
    answers = many.answers(17, 3)
    assert len(answers) == 63  # coefficient of x^17 in (1 + x + ... + x^9)^3
    _prompts, meta = many.prompts_for(jnp.full((len(answers),), 17), jnp.full((len(answers),), 3))
    c, m = completions([a + "$" for a in answers], many.max_new_tokens)
    np.testing.assert_array_equal(np.asarray(many.reward(c, m, meta)[0]), 1.0)


def test_many_answers_bonus_breaks_ties():
    task = ManyAnswersTask(ManyAnswersConfig(bonus_eps=0.1, bonus_kind="lexicographic"))
    _, meta = task.prompts_for(jnp.array([17, 17, 17]), jnp.array([3, 3, 3]))
    c, m = completions(["980$", "881$", "981$"], task.max_new_tokens)
    reward, comps = task.reward(c, m, meta)
    np.testing.assert_allclose(
        np.asarray(reward), [1 + 0.1 * 980 / 999, 1 + 0.1 * 881 / 999, 0.0], rtol=1e-6
    )
    np.testing.assert_array_equal(np.asarray(comps["correct"]), [1, 1, 0])
    # Any δ table can be plugged in.
    delta = jnp.zeros_like(task.bonus_table()).at[3, 881].set(1.0)
    r2, _ = task.reward_with_bonus(c, m, meta, delta, 0.5)
    np.testing.assert_allclose(np.asarray(r2), [1.0, 1.5, 0.0])
    rand = task.bonus_table("random")
    assert float(rand.min()) >= 0 and float(rand.max()) < 1


def test_many_answers_split_and_sft(many):
    train = {tuple(p) for p in np.asarray(many.train_pairs)}
    held = {tuple(p) for p in np.asarray(many.eval_pairs)}
    assert held and not train & held
    assert len(train | held) == sum(9 * n + 1 for n in range(2, 5))
    tokens, loss_mask = many.sft_batch(jax.random.key(0), 512)
    p = many.prompt_len
    s = np.asarray(tokens[:, 2:4] - T.digit0_id) @ [10, 1]
    n = np.asarray(tokens[:, 7] - T.digit0_id)
    assert {(int(a), int(b)) for a, b in zip(s, n)} <= train
    _, meta = many.prompts_for(jnp.asarray(s), jnp.asarray(n))
    np.testing.assert_array_equal(
        np.asarray(many.reward(tokens[:, p:], loss_mask[:, p:], meta)[0]), 1.0
    )
    # Answers are spread over the tied set, not one canonical string per prompt.
    for key in {(int(a), int(b)) for a, b in zip(s, n)}:
        rows = (s == key[0]) & (n == key[1])
        if rows.sum() >= 8 and len(enumerate_answers(*key)) >= 8:
            assert len({T.decode(r) for r in np.asarray(tokens[rows, p:])}) > 1
            break
    else:
        pytest.fail("no prompt drawn often enough to check answer diversity")


def test_multi_reward_components():
    task = get_task("multi_reward", w_correct=1.0, w_format=0.5, w_length=0.25)
    n = task.max_new_tokens
    _, meta = task.prompts_for(jnp.array([37] * 7), jnp.array([45] * 7))
    texts = ["82$", "82+5$", "820$", "082$", "82", "8$", "$"]
    c, m = completions(texts, n)
    reward, comps = task.reward(c, m, meta)
    np.testing.assert_array_equal(np.asarray(comps["correct"]), [1, 1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(np.asarray(comps["format"]), [1, 0, 1, 0, 0, 1, 0])
    extra = np.maximum(0, np.asarray(m).sum(1) - 3)
    np.testing.assert_allclose(np.asarray(comps["length"]), -extra / n)
    want = (
        1.0 * np.asarray(comps["correct"])
        + 0.5 * np.asarray(comps["format"])
        + 0.25 * np.asarray(comps["length"])
    )
    np.testing.assert_allclose(np.asarray(reward), want, rtol=1e-6)


def test_registry():
    synthetic = {"addition", "mult_mod", "many_answers", "multi_reward"}
    assert set(list_tasks()) == synthetic | {"jsonl"}  # jsonl needs a file (test_text.py)
    for name in sorted(synthetic):
        task = get_task(name)
        assert isinstance(task, Task) and task.name == name
        assert type(task.config) is task_config_cls(name)
    assert make_task(AdditionConfig(n_digits=1, n_eval=10)).prompt_len == 4
    assert make_task(MultiRewardConfig()).name == "multi_reward"
    assert get_task("addition") == get_task("addition") and hash(get_task("addition")) == hash(
        get_task("addition")
    )
    with pytest.raises(ValueError, match="unknown task"):
        get_task("sorting")
    with pytest.raises(ValueError, match="unknown field"):
        get_task("addition", digits=3)
    with pytest.raises(ValueError, match="teacher_flaw_rate"):
        AdditionConfig(teacher_flaw_rate=1.5)
    with pytest.raises(ValueError, match="max_digits"):
        ManyAnswersConfig(min_digits=3, max_digits=2)
    assert dataclasses.is_dataclass(AdditionConfig) and AdditionConfig.__dataclass_params__.frozen
