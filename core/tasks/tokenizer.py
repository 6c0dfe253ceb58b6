"""A fixed character-level tokenizer shared by every synthetic task (no downloads).

Vocabulary (20 ids): ``<pad>`` = 0, ``<eos>`` = 1, then ``0``-``9`` = 2..11, then
``+ * % = , : S N``. One vocabulary for all tasks, so one model can be trained on any of them.
Digit ``d`` has id ``DIGIT0_ID + d``, which lets JAX reward code parse digits arithmetically.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import jax.numpy as jnp
import numpy as np

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

    def decode(self, ids: Iterable[int], stop_at_eos: bool = True) -> str:
        """Text of ``ids``; stops at the first EOS (if asked); padding is dropped."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                if stop_at_eos:
                    break
                out.append(EOS)
            elif i == self.pad_id:
                continue
            else:
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

    def decode_batch(self, ids, stop_at_eos: bool = True) -> list[str]:
        """``decode`` applied to each row of a ``[B, T]`` array."""
        return [self.decode(row, stop_at_eos) for row in np.asarray(ids)]


TOKENIZER = CharTokenizer()
