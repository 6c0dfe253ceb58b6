"""A fixed character-level tokenizer shared by every synthetic task (no downloads).

Vocabulary (20 ids): ``<pad>`` = 0, ``<eos>`` = 1, then ``0``-``9`` = 2..11, then
``+ * % = , : S N``. One vocabulary for all tasks, so one model can be trained on any of them.
Digit ``d`` has id ``digit0_id + d``, which lets JAX reward code parse digits arithmetically.

It implements ``cliffjax.tokenizers.Tokenizer``: one EOS id, no BOS, and a chat "template"
that is the plain concatenation of the messages' contents (the synthetic prompts have no
roles).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from cliffjax.tokenizers.base import Message

PAD = "<pad>"
EOS = "<eos>"
_CHARS = "0123456789+*%=,:SN"


@dataclasses.dataclass(frozen=True)
class CharTokenizer:
    """Character-level tokenizer with ``<pad>`` and ``<eos>`` special tokens.

    Attributes:
      chars: the ordinary characters, ids ``2 .. 2 + len(chars) - 1`` in order.
    """

    chars: str = _CHARS

    def __post_init__(self) -> None:
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("CharTokenizer.chars must not repeat a character")
        if not self.chars.startswith("0123456789"):
            raise ValueError("CharTokenizer.chars must start with the ten digits '0'..'9'")

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def eos_id(self) -> int:
        return 1

    @property
    def eos_ids(self) -> tuple[int, ...]:
        return (self.eos_id,)

    @property
    def bos_id(self) -> int | None:
        return None

    @property
    def digit0_id(self) -> int:
        """Id of ``'0'``; digit d has id ``digit0_id + d``."""
        return 2

    @property
    def vocab_size(self) -> int:
        return 2 + len(self.chars)

    @property
    def vocab(self) -> tuple[str, ...]:
        """Token strings indexed by id."""
        return (PAD, EOS, *self.chars)

    def id_of(self, char: str) -> int:
        """Id of one ordinary character."""
        idx = self.chars.find(char)
        if len(char) != 1 or idx < 0:
            raise ValueError(f"character {char!r} is not in the vocabulary {self.chars!r}")
        return 2 + idx

    def encode(self, text: str, add_eos: bool = False) -> list[int]:
        """Ids of ``text`` (ordinary characters only), optionally followed by EOS."""
        ids = [self.id_of(c) for c in text]
        return [*ids, self.eos_id] if add_eos else ids

    def decode(
        self, ids: Iterable[int], skip_special: bool = True, stop_at_eos: bool = True
    ) -> str:
        """Text of ``ids``; stops at the first EOS (if asked). Padding (and a non-stopping
        EOS) is dropped when ``skip_special``, written ``<pad>`` / ``<eos>`` otherwise."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id and stop_at_eos:
                break
            if i in (self.eos_id, self.pad_id) and skip_special:
                continue
            out.append(self.vocab[i])
        return "".join(out)

    def encode_batch(self, texts: Sequence[str], width: int, add_eos: bool = False) -> jnp.ndarray:
        """``[len(texts), width]`` int32 ids, right-padded with ``<pad>``; too long raises."""
        arr = np.full((len(texts), width), self.pad_id, np.int32)
        for row, text in enumerate(texts):
            ids = self.encode(text, add_eos=add_eos)
            if len(ids) > width:
                raise ValueError(f"text {text!r} needs {len(ids)} ids, more than width {width}")
            arr[row, : len(ids)] = ids
        return jnp.asarray(arr)

    def decode_batch(self, ids: Any, stop_at_eos: bool = True) -> list[str]:
        """``decode`` applied to each row of a ``[B, T]`` array."""
        return [self.decode(row, stop_at_eos=stop_at_eos) for row in np.asarray(ids)]

    def apply_chat_template(
        self, messages: Sequence[Message], add_generation_prompt: bool = True
    ) -> str:
        """The contents of ``messages`` concatenated (roles and ``add_generation_prompt`` have
        no tokens in this vocabulary)."""
        del add_generation_prompt
        return "".join(str(m["content"]) for m in messages)

    def encode_chat(
        self, messages: Sequence[Message], add_generation_prompt: bool = True
    ) -> list[int]:
        """Ids of :meth:`apply_chat_template`."""
        return self.encode(self.apply_chat_template(messages, add_generation_prompt))


TOKENIZER = CharTokenizer()
