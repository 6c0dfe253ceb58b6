"""The ``Tokenizer`` protocol: what tasks, the trainer and the sampler need from a tokenizer.

Two implementations:

* ``cliffjax.tokenizers.CharTokenizer``: the fixed 20-id character vocabulary of the synthetic
  tasks (no files).
* ``cliffjax.tokenizers.HFTokenizer``: a Hugging Face ``tokenizer.json`` (+ its
  ``tokenizer_config.json``), with the checkpoint's special tokens, EOS ids and chat template.

Ids are plain Python ints on the host; the batch helpers return ``[B, width]`` int32 arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import jax

Message = Mapping[str, Any]
"""One chat message: ``{"role": "system" | "user" | "assistant", "content": str}``."""


@runtime_checkable
class Tokenizer(Protocol):
    """Text <-> token ids, special ids and the chat format of one vocabulary.

    Attributes:
      vocab_size: number of ids the tokenizer can produce (``0 .. vocab_size - 1``); a model's
        embedding table must have at least this many rows.
      pad_id: id used to pad batches (masked out of every loss).
      eos_id: the primary end-of-sequence id (what a completion ends with in training data).
      eos_ids: every id that ends a completion, ``eos_id`` first (Qwen ends chat turns with
        ``<|im_end|>`` and documents with ``<|endoftext|>``).
      bos_id: the beginning-of-sequence id, or ``None`` when the vocabulary has none.
    """

    @property
    def vocab_size(self) -> int: ...

    @property
    def pad_id(self) -> int: ...

    @property
    def eos_id(self) -> int: ...

    @property
    def eos_ids(self) -> tuple[int, ...]: ...

    @property
    def bos_id(self) -> int | None: ...

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``."""
        ...

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Text of ``ids``; special tokens (padding, EOS, ...) are dropped when
        ``skip_special``."""
        ...

    def encode_batch(self, texts: Sequence[str], width: int, add_eos: bool = False) -> jax.Array:
        """``[len(texts), width]`` int32 ids, right-padded with ``pad_id``; a text longer than
        ``width`` ids raises ``ValueError``."""
        ...

    def decode_batch(self, ids: Any) -> list[str]:
        """``decode`` of each row of a ``[B, T]`` array (stopping at the first EOS id)."""
        ...

    def apply_chat_template(
        self, messages: Sequence[Message], add_generation_prompt: bool = True
    ) -> str:
        """The prompt text of a conversation (``add_generation_prompt`` appends the header of
        the assistant's turn, so the model's completion is the answer)."""
        ...

    def encode_chat(
        self, messages: Sequence[Message], add_generation_prompt: bool = True
    ) -> list[int]:
        """Ids of ``apply_chat_template(messages, add_generation_prompt)``; the template
        writes its own special tokens, so none are added around it."""
        ...
