"""Text tasks from dataset files: prompt formatting and left padding, splits, dropped prompts,
host verifiers as the reward (inside jit and vmap), warm-start batches, and named errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.data import word_problems, write_jsonl
from cliffjax.rewards import RewardComponent
from cliffjax.tasks.text import TextTask, TextTaskConfig
from cliffjax.tokenizers import HFTokenizer

pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from cliffjax.experiments.tiny_checkpoint import write_tokenizer

    root = tmp_path_factory.mktemp("text_task")
    probs = word_problems(60, seed=0)
    write_jsonl(root / "train.jsonl", probs[:50])
    write_jsonl(root / "test.jsonl", probs[50:])
    write_tokenizer(str(root / "tok"), [p["question"] + " " + p["answer"] for p in probs], 400)
    return root, HFTokenizer.from_dir(str(root / "tok")), probs


def _task(files, **kw):
    root, tok, _ = files
    cfg = dict(path=str(root / "train.jsonl"), n_eval=8, max_new_tokens=24, max_prompt_tokens=200)
    cfg.update(kw)
    return TextTask(TextTaskConfig(**cfg), tok)


def test_prompts_are_chat_formatted_and_left_padded(files):
    _, tok, _ = files
    task = _task(files, system_prompt="Solve it.")
    prompts, meta = task.train_prompt_set(jax.random.key(0), 0)
    assert prompts.shape == (42, task.prompt_len)  # 50 records, 8 held out
    for row, ref in zip(np.asarray(prompts), np.asarray(meta["ref_idx"])):
        real = np.cumsum(row != tok.pad_id) > 0
        ids = row[real].tolist()
        text = tok.decode(ids, skip_special=False)
        assert text.startswith("<|im_start|>system\nSolve it.<|im_end|>\n<|im_start|>user\n")
        assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")
        assert ids == task.encode_prompt(text.split("user\n", 1)[1].split("<|im_end|>")[0])
        assert not np.any(row[~real] != tok.pad_id)
        assert task.references[int(ref)].split("####")[0] != ""
    assert task.padded_prompts


def test_splits_and_length_filter(files):
    root, _, probs = files
    task = _task(files)
    train_refs = set(task.references[: task.n_train])
    eval_refs = set(task.references[task.n_train :])
    assert task.n_train == 42 and len(eval_refs) == 8 and train_refs.isdisjoint(eval_refs)
    with_file = _task(files, eval_path=str(root / "test.jsonl"), n_eval=0)
    assert with_file.n_train == 50
    assert list(with_file.references[50:]) == [p["answer"] for p in probs[50:]]
    lens = sorted(len(task.encode_prompt(p["question"])) for p in probs[:50])
    cut = lens[len(lens) // 2]
    short = _task(files, eval_path=str(root / "test.jsonl"), max_prompt_tokens=cut)
    assert short.dropped["train"] == sum(n > cut for n in lens) > 0
    assert short.prompt_len <= cut
    assert "dropped over" in short.describe()


def test_reward_runs_the_verifiers_inside_jit_and_vmap(files):
    _, tok, _ = files
    task = _task(
        files,
        rewards=(
            RewardComponent("correct", "gsm8k"),
            RewardComponent("format", "gsm8k_format", 0.5),
        ),
    )
    _, meta = task.train_prompts(jax.random.key(1), 3)
    refs = [task.references[int(i)] for i in meta["ref_idx"]]
    answers = [r.rsplit("#### ", 1)[1] for r in refs]
    texts = [f"#### {answers[0]}", f"so {answers[1]}", "#### 99999"]
    n = task.max_new_tokens
    comp = np.full((3, n), tok.pad_id, np.int32)
    for i, t in enumerate(texts):
        ids = [*tok.encode(t), tok.eos_id, *tok.encode("#### 1")]  # text after EOS is ignored
        comp[i, : len(ids)] = ids
    comp = jnp.asarray(comp)
    reward, comps = jax.jit(task.reward)(comp, jnp.ones_like(comp), meta)
    np.testing.assert_array_equal(comps["correct"], [1, 1, 0])
    np.testing.assert_array_equal(comps["format"], [1, 0, 1])
    np.testing.assert_allclose(reward, [1.5, 1.0, 0.5])
    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), (comp, jnp.ones_like(comp), meta))
    r2, _ = jax.jit(jax.vmap(task.reward))(*stacked)
    np.testing.assert_allclose(r2, np.stack([reward, reward]))


def _boom(text: str, reference: str) -> float:
    raise ZeroDivisionError("bad verifier")


def test_a_failing_verifier_stops_with_its_name_and_the_completion(files):
    _, tok, _ = files
    task = _task(files, rewards=(RewardComponent("correct", f"{__name__}:_boom"),))
    _, meta = task.train_prompts(jax.random.key(1), 2)
    comp = jnp.asarray([[*tok.encode("#### 7"), tok.eos_id]] * 2, jnp.int32)
    with pytest.raises(Exception, match=r"_boom.*component 'correct'.*'#### 7'.*ZeroDivision"):
        jax.block_until_ready(jax.jit(task.reward)(comp, jnp.ones_like(comp), meta))


def test_sft_batch_is_prompt_then_reference_then_eos(files):
    _, tok, _ = files
    task = _task(files, max_new_tokens=128)
    tokens, loss_mask = task.sft_batch(jax.random.key(2), 4)
    p = task.prompt_len
    assert tokens.shape == loss_mask.shape == (4, p + 128)
    assert not np.any(np.asarray(loss_mask[:, :p]))
    refs = set(task.references[: task.n_train])
    for row, m in zip(np.asarray(tokens), np.asarray(loss_mask)):
        target = row[p:][m[p:] == 1].tolist()
        assert target[-1] == tok.eos_id
        assert tok.decode(target[:-1]) in refs


def test_config_errors_name_the_field(files):
    with pytest.raises(ValueError, match="prompt_template must contain"):
        TextTaskConfig(path="x.jsonl", prompt_template="no placeholder")
    with pytest.raises(ValueError, match="include a component named 'correct'"):
        TextTaskConfig(path="x.jsonl", rewards=(RewardComponent("fmt", "gsm8k_format"),))
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 1"):
        TextTaskConfig(path="x.jsonl", max_new_tokens=0)
    with pytest.raises(KeyError, match="no field 'problem'"):
        _task(files, prompt_field="problem")
    with pytest.raises(ValueError, match=r"no train prompt .* fits task\.max_prompt_tokens=3"):
        _task(files, max_prompt_tokens=3)
