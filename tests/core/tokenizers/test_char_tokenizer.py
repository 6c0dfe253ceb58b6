"""``CharTokenizer`` implements the ``Tokenizer`` protocol; the old import path still works."""

from __future__ import annotations

import numpy as np

from cliffjax.tasks.tokenizer import TOKENIZER as OLD
from cliffjax.tokenizers import TOKENIZER, CharTokenizer, Tokenizer


def test_old_import_path_is_the_same_tokenizer():
    assert OLD is TOKENIZER and isinstance(TOKENIZER, CharTokenizer)
    assert isinstance(TOKENIZER, Tokenizer)


def test_special_ids():
    t = TOKENIZER
    assert (t.vocab_size, t.pad_id, t.eos_id, t.eos_ids, t.bos_id) == (20, 0, 1, (1,), None)


def test_decode_skip_special_and_stop_at_eos():
    t = TOKENIZER
    ids = [*t.encode("12"), t.pad_id, t.eos_id, *t.encode("3")]
    assert t.decode(ids) == "12"
    assert t.decode(ids, stop_at_eos=False) == "123"
    assert t.decode(ids, skip_special=False, stop_at_eos=False) == "12<pad><eos>3"
    rows = np.asarray([[*ids, 0, 0], [*t.encode("45+6"), t.eos_id, 0, 0]])
    assert t.decode_batch(rows) == ["12", "45+6"]


def test_chat_template_is_the_plain_concatenation():
    t = TOKENIZER
    chat = [{"role": "system", "content": "S=1"}, {"role": "user", "content": "2+3="}]
    assert t.apply_chat_template(chat) == "S=12+3="
    assert t.encode_chat(chat) == t.encode("S=12+3=")
