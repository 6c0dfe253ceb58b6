"""Rewards against plain-Python reference implementations, exhaustively or on random strings."""

import itertools

import numpy as np

from cliffjax.tasks import TOKENIZER, get_task

T = TOKENIZER
EOS = "$"


def encode(texts, width):
    """Ids and sampler-style masks ('$' = EOS; mask up to and including the first EOS)."""
    ids = np.full((len(texts), width), T.pad_id, np.int32)
    mask = np.zeros_like(ids)
    for row, text in enumerate(texts):
        toks = [T.eos_id if c == EOS else T.id_of(c) for c in text[:width]]
        ids[row, : len(toks)] = toks
        stop = toks.index(T.eos_id) + 1 if T.eos_id in toks else len(toks)
        mask[row, :stop] = 1
    return ids, mask


def response(text):
    return text.split(EOS)[0]


def test_addition_all_pairs_exhaustive():
    task = get_task("addition")
    a, b = (x.ravel() for x in np.meshgrid(np.arange(100), np.arange(100), indexing="ij"))
    _, meta = task.prompts_for(a, b)
    right = [f"{x}{EOS}" for x in a + b]
    off_by_one = [f"{x + 1}{EOS}" for x in a + b]
    padded = [f"{x:03d}{EOS}" if x < 100 else f"0{x}" for x in a + b]  # leading zeros
    for texts, want in [(right, 1.0), (off_by_one, 0.0), (padded, 0.0)]:
        ids, mask = encode(texts, task.max_new_tokens)
        reward, _ = task.reward(ids, mask, meta)
        np.testing.assert_array_equal(np.asarray(reward), want)


def test_many_answers_exhaustive():
    """Every N-digit string (N = 2..4) against every S in range: reward == (digit sum == S)."""
    task = get_task("many_answers")
    texts, s_col, n_col, want = [], [], [], []
    rng = np.random.default_rng(0)
    for n in range(2, 5):
        for digits in itertools.product("0123456789", repeat=n):
            s_true = sum(map(int, digits))
            s = s_true if rng.random() < 0.5 else int(rng.integers(0, 9 * n + 1))
            texts.append("".join(digits) + EOS)
            s_col.append(s)
            n_col.append(n)
            want.append(float(s == s_true))
    _, meta = task.prompts_for(np.asarray(s_col), np.asarray(n_col))
    ids, mask = encode(texts, task.max_new_tokens)
    reward, _ = task.reward(ids, mask, meta)
    np.testing.assert_array_equal(np.asarray(reward), want)


def multi_reward_reference(text, answer, n_slots, w):
    resp = response(text)
    run = len(resp) - len(resp.lstrip("0123456789"))
    correct = resp[:run] == str(answer)
    fmt = EOS in text[:n_slots] and run == len(resp) and run >= 1 and (run == 1 or resp[0] != "0")
    generated = min(len(text), n_slots) if EOS not in text[:n_slots] else text.index(EOS) + 1
    length = -max(0, generated - (len(str(answer)) + 1)) / n_slots
    comps = {"correct": float(correct), "format": float(fmt), "length": length}
    return w[0] * comps["correct"] + w[1] * comps["format"] + w[2] * comps["length"], comps


def test_multi_reward_matches_reference_on_random_strings():
    weights = (1.0, 0.3, 0.7)
    task = get_task("multi_reward", w_correct=weights[0], w_format=weights[1], w_length=weights[2])
    n_slots = task.max_new_tokens
    rng = np.random.default_rng(0)
    a = rng.integers(0, 100, 2000)
    b = rng.integers(0, 100, 2000)
    texts = []
    for x in a + b:
        kind = rng.integers(0, 4)
        if kind == 0:  # the answer, sometimes followed by junk or cut short
            text = str(x) + "".join(rng.choice(list("0123456789+,$"), rng.integers(0, 4)))
        elif kind == 1:  # leading zero variants
            text = "0" + str(x) + EOS
        else:  # random strings over digits, symbols and EOS
            text = "".join(rng.choice(list("0123456789+,$"), rng.integers(1, n_slots + 1)))
        texts.append(text[:n_slots])
    _, meta = task.prompts_for(a, b)
    ids, mask = encode(texts, n_slots)
    reward, comps = task.reward(ids, mask, meta)
    ref = [multi_reward_reference(t, int(x), n_slots, weights) for t, x in zip(texts, a + b)]
    np.testing.assert_allclose(np.asarray(reward), [r for r, _ in ref], rtol=1e-6, atol=1e-6)
    for name in ("correct", "format", "length"):
        np.testing.assert_allclose(np.asarray(comps[name]), [c[name] for _, c in ref], atol=1e-6)
    # The generated strings cover every component value.
    assert (
        0 < np.mean(np.asarray(comps["correct"])) < 1
        and 0 < np.mean(np.asarray(comps["format"])) < 1
    )
