"""``HFTokenizer`` against transformers' ``AutoTokenizer`` on the same tiny directories."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from cliffjax.tokenizers import HFTokenizer, Tokenizer

jinja2 = pytest.importorskip("jinja2")
transformers = pytest.importorskip("transformers")

STRINGS = [
    "",
    "3 + 4 = 7",
    "hello world",
    "  spaces\tand\nnewlines  ",
    "üñí 数学 and emoji 🙂",
    "text with <|im_end|> inside and <|endoftext|>",
    "unseen wörds: zyxwvut",
]

CHATS = [
    [{"role": "user", "content": "What is 3 + 4?"}],
    [
        {"role": "system", "content": "Answer with a number."},
        {"role": "user", "content": "12 + 30 = ?"},
        {"role": "assistant", "content": "42"},
        {"role": "user", "content": "and 1 + 1?"},
    ],
]


@pytest.fixture(scope="module")
def pair(tokenizer_dirs):
    """name -> (HFTokenizer, transformers tokenizer)."""
    return {
        name: (HFTokenizer.from_dir(path), transformers.AutoTokenizer.from_pretrained(path))
        for name, path in tokenizer_dirs.items()
    }


def _ids(out):
    return list(out["input_ids"]) if hasattr(out, "keys") else list(out)


@pytest.mark.parametrize("name", ["qwen_style", "llama_style"])
def test_encode_and_decode_match_transformers(pair, name):
    ours, ref = pair[name]
    for text in STRINGS:
        ids = ours.encode(text)
        assert ids == ref.encode(text), text
        assert ours.decode(ids) == ref.decode(ids, skip_special_tokens=True), text
        assert ours.decode(ids, skip_special=False) == ref.decode(ids), text
    assert ours.vocab_size == len(ref)


def test_round_trip_without_special_tokens(pair):
    ours, _ = pair["qwen_style"]
    for text in STRINGS:
        if "<|" not in text:
            assert ours.decode(ours.encode(text)) == text


def test_llama_style_prefixes_bos_and_pads_with_eos(pair):
    ours, _ = pair["llama_style"]
    bos = ours.encode("")[0]
    assert ours.bos_id == bos == ours.backend.token_to_id("<|begin_of_text|>")
    assert ours.encode("hi", add_special_tokens=False) == ours.encode("hi")[1:]
    eot, end = (ours.backend.token_to_id(t) for t in ("<|eot_id|>", "<|end_of_text|>"))
    assert ours.eos_ids == (eot, end) and ours.eos_id == eot
    assert ours.pad_id == eot  # no pad_token in the checkpoint


@pytest.mark.parametrize("name", ["qwen_style", "llama_style"])
@pytest.mark.parametrize("gen", [True, False])
def test_chat_template_text_and_ids_match_transformers(pair, name, gen):
    ours, ref = pair[name]
    for chat in CHATS:
        text = ours.apply_chat_template(chat, add_generation_prompt=gen)
        assert text == ref.apply_chat_template(chat, tokenize=False, add_generation_prompt=gen)
        ref_ids = _ids(ref.apply_chat_template(chat, tokenize=True, add_generation_prompt=gen))
        assert ours.encode_chat(chat, add_generation_prompt=gen) == ref_ids
    if name == "qwen_style":
        assert text.endswith("<|im_start|>assistant\n") == gen


def test_tools_are_rendered_with_plain_json(pair):
    ours, ref = pair["qwen_style"]
    tools = [{"name": "add", "description": "a < b & c", "parameters": {"x": "ü"}}]
    text = ours.apply_chat_template(CHATS[0], tools=tools)
    assert text == ref.apply_chat_template(
        CHATS[0], tools=tools, tokenize=False, add_generation_prompt=True
    )
    assert '"a < b & c"' in text and '"ü"' in text  # no HTML escaping, no \\u escapes


def test_qwen_style_special_ids(pair):
    ours, ref = pair["qwen_style"]
    im_end, eot = ours.backend.token_to_id("<|im_end|>"), ours.backend.token_to_id("<|endoftext|>")
    assert ours.eos_ids == (im_end, eot)
    assert ours.eos_id == ref.eos_token_id == im_end
    assert ours.pad_id == ref.pad_token_id == eot
    assert ours.bos_id is None and ref.bos_token_id is None
    assert isinstance(ours, Tokenizer)


def test_batches_pad_right_and_stop_at_any_eos(pair):
    ours, _ = pair["qwen_style"]
    batch = np.asarray(ours.encode_batch(["3 + 4", "hello world"], width=12, add_eos=True))
    assert batch.shape == (2, 12) and batch.dtype == np.int32
    n = len(ours.encode("3 + 4"))
    assert batch[0, n] == ours.eos_id and (batch[0, n + 1 :] == ours.pad_id).all()
    im_end, eot = ours.eos_ids
    a, b = ours.encode("3 + 4"), ours.encode("hello")
    rows = np.full((2, 10), ours.pad_id, np.int32)
    rows[0, : len(a) + 2] = [*a, eot, ours.encode("x")[0]]
    rows[1, : len(b) + 2] = [*b, im_end, ours.encode("y")[0]]
    assert ours.decode_batch(rows) == ["3 + 4", "hello"]
    with pytest.raises(ValueError, match="more than width 3"):
        ours.encode_batch(["hello world, tokenizers"], width=3)


def test_equal_when_built_from_the_same_files(tokenizer_dirs, pair, tmp_path):
    a = pair["qwen_style"][0]
    b = HFTokenizer.from_dir(tokenizer_dirs["qwen_style"])
    assert a == b and hash(a) == hash(b) and a != pair["llama_style"][0]


def test_template_errors_surface(pair):
    ours, _ = pair["qwen_style"]
    chat = [{"role": "user", "content": "hi"}, {"role": "system", "content": "late"}]
    with pytest.raises(jinja2.TemplateError, match="System message must come first"):
        ours.apply_chat_template(chat)
    with pytest.raises(TypeError, match=r"messages\[0\]"):
        ours.apply_chat_template(["not a dict"])


def _copy(src: str, dst) -> str:
    out = str(dst / "tok")
    shutil.copytree(src, out)
    return out


def _edit(path: str, name: str, **changes) -> None:
    file = os.path.join(path, name)
    with open(file) as f:
        data = json.load(f)
    data.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        data.pop(k)
    with open(file, "w") as f:
        json.dump(data, f)


def test_missing_tokenizer_json_is_named(tokenizer_dirs, tmp_path):
    path = _copy(tokenizer_dirs["qwen_style"], tmp_path)
    os.remove(os.path.join(path, "tokenizer.json"))
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json.*tokenizer_config\.json"):
        HFTokenizer.from_dir(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        HFTokenizer.from_dir(tmp_path / "absent")


def test_bad_special_tokens_are_named(tokenizer_dirs, tmp_path):
    path = _copy(tokenizer_dirs["qwen_style"], tmp_path)
    _edit(path, "tokenizer_config.json", eos_token="<|nope|>")
    with pytest.raises(ValueError, match=r"eos_token '<\|nope\|>' is not a token"):
        HFTokenizer.from_dir(path)
    _edit(path, "tokenizer_config.json", eos_token=None)
    os.remove(os.path.join(path, "generation_config.json"))
    with pytest.raises(ValueError, match="no EOS token"):
        HFTokenizer.from_dir(path)
    _edit(path, "tokenizer_config.json", eos_token="<|im_end|>", chat_template=None)
    tok = HFTokenizer.from_dir(path)
    assert tok.eos_ids == (tok.backend.token_to_id("<|im_end|>"),)
    with pytest.raises(ValueError, match="no chat_template"):
        tok.apply_chat_template(CHATS[0])
