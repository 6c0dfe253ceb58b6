"""``HFTokenizer``: a Hugging Face fast tokenizer (``tokenizer.json``) behind the ``Tokenizer``
protocol.

    tok = HFTokenizer.from_dir("ckpt/dir")
    ids = tok.encode("Hello")                      # as transformers' tokenizer.encode(text)
    prompt = tok.apply_chat_template([{"role": "user", "content": "2+2?"}])
    prompt_ids = tok.encode_chat([{"role": "user", "content": "2+2?"}])
    tok.eos_ids                                    # e.g. (<|im_end|>, <|endoftext|>) for Qwen

Files read from the directory:

* ``tokenizer.json`` (required): vocabulary, merges, normalizer, pre-tokenizer, post-processor
  and added (special) tokens, run by the ``tokenizers`` library.
* ``tokenizer_config.json`` (optional): ``bos_token``, ``eos_token``, ``pad_token``,
  ``unk_token`` (a string or an ``{"content": ...}`` dict) and ``chat_template`` (a string, or a
  list of ``{"name", "template"}`` of which ``default`` is used); ``chat_template.jinja`` is read
  when the config has no template.
* ``generation_config.json`` and ``config.json`` (optional): ``eos_token_id`` (an int or a
  list), which add to the EOS ids.

EOS ids: the ``eos_token`` of ``tokenizer_config.json`` first (the primary ``eos_id``), then
those of ``generation_config.json``, then ``config.json``, without repeats. ``pad_id`` is the
``pad_token`` or, when the checkpoint has none (Llama 3), the primary EOS id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cliffjax.tokenizers.base import Message
from cliffjax.tokenizers.chat_template import render_chat_template

SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "pad_token", "unk_token")


def _read_json(path: str) -> dict[str, Any] | None:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _token_text(value: Any, key: str, file: str) -> str | None:
    """A special token's text from ``tokenizer_config.json`` (a string or an AddedToken dict)."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("content")
    if not isinstance(value, str):
        raise ValueError(f"{file}: {key} must be a string or {{'content': str}}, got {value!r}")
    return value


def _id_list(value: Any, key: str, file: str) -> list[int]:
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{file}: {key} must be an int or a list of ints, got {value!r}")
    return list(values)


def _chat_template(config: dict[str, Any], path: str, file: str) -> str | None:
    template = config.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        if "default" not in named:
            raise ValueError(
                f"{file}: chat_template is a list without a 'default' entry (names: "
                f"{sorted(map(str, named))})"
            )
        template = named["default"]
    if template is None:
        jinja_file = os.path.join(path, "chat_template.jinja")
        if os.path.isfile(jinja_file):
            with open(jinja_file, encoding="utf-8") as f:
                template = f.read()
    if template is not None and not isinstance(template, str):
        raise ValueError(f"{file}: chat_template must be a string, got {type(template).__name__}")
    return template


@dataclasses.dataclass(frozen=True, eq=False)
class HFTokenizer:
    """A ``tokenizers.Tokenizer`` with the checkpoint's special tokens and chat template.

    Build it with :meth:`from_dir`. Equal (and hashable, so tasks holding it can be static
    arguments of ``jax.jit``) when built from the same files.

    Attributes:
      backend: the ``tokenizers.Tokenizer``.
      eos_ids: every EOS id, the primary first.
      pad_id: the padding id.
      bos_id: the BOS id or ``None``.
      special_tokens: ``bos_token`` / ``eos_token`` / ``pad_token`` / ``unk_token`` texts
        (``None`` when absent), visible to the chat template.
      chat_template: the Jinja2 chat template, or ``None``.
      fingerprint: hash of the files it was read from (defines equality).
    """

    backend: Any
    eos_ids: tuple[int, ...]
    pad_id: int
    bos_id: int | None
    special_tokens: dict[str, str | None]
    chat_template: str | None
    fingerprint: str

    def __post_init__(self) -> None:
        if not self.eos_ids:
            raise ValueError("HFTokenizer.eos_ids must hold at least one id")
        for name, ids in (("eos_ids", self.eos_ids), ("pad_id", (self.pad_id,))):
            bad = [i for i in ids if not 0 <= i < self.vocab_size]
            if bad:
                raise ValueError(
                    f"HFTokenizer.{name}: ids {bad} outside the vocabulary 0..{self.vocab_size - 1}"
                )

    @classmethod
    def from_dir(cls, path: str | os.PathLike) -> HFTokenizer:
        """Read the tokenizer of a checkpoint directory (see the module docstring for files).

        Raises:
          FileNotFoundError: ``path`` is not a directory or has no ``tokenizer.json``.
          ValueError: a special token is not in the vocabulary, or no EOS id is declared.
        """
        try:
            import tokenizers
        except ImportError as e:  # pragma: no cover - the hf extra installs it
            raise ImportError(
                "HFTokenizer needs the tokenizers library (pip install 'cliffjax[hf]')"
            ) from e
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"tokenizer directory {path!r} does not exist")
        tok_file = os.path.join(path, "tokenizer.json")
        if not os.path.isfile(tok_file):
            present = sorted(os.listdir(path))
            raise FileNotFoundError(
                f"{tok_file!r} is missing: HFTokenizer reads a fast tokenizer's tokenizer.json "
                f"(the directory holds {present}); a checkpoint with only a SentencePiece "
                "tokenizer.model must be converted first (transformers' "
                "AutoTokenizer.from_pretrained(dir).save_pretrained(dir) writes tokenizer.json)"
            )
        backend = tokenizers.Tokenizer.from_file(tok_file)
        digest = hashlib.sha256()
        files = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
        files += ("generation_config.json", "config.json")
        for name in files:
            file = os.path.join(path, name)
            if os.path.isfile(file):
                with open(file, "rb") as f:
                    digest.update(name.encode() + b"\0" + f.read() + b"\0")

        cfg_file = os.path.join(path, "tokenizer_config.json")
        config = _read_json(cfg_file) or {}
        special = {k: _token_text(config.get(k), k, cfg_file) for k in SPECIAL_TOKEN_KEYS}

        def id_of(key: str) -> int | None:
            text = special[key]
            if text is None:
                return None
            i = backend.token_to_id(text)
            if i is None:
                raise ValueError(f"{cfg_file}: {key} {text!r} is not a token of {tok_file}")
            return i

        eos: list[int] = []
        primary = id_of("eos_token")
        if primary is not None:
            eos.append(primary)
        for name in ("generation_config.json", "config.json"):
            file = os.path.join(path, name)
            data = _read_json(file) or {}
            eos += _id_list(data.get("eos_token_id"), "eos_token_id", file)
        eos_ids = tuple(dict.fromkeys(eos))
        if not eos_ids:
            raise ValueError(
                f"no EOS token in {path!r}: set eos_token in tokenizer_config.json or "
                "eos_token_id in generation_config.json / config.json"
            )
        if special["eos_token"] is None:
            special["eos_token"] = backend.id_to_token(eos_ids[0])
        pad = id_of("pad_token")
        return cls(
            backend=backend,
            eos_ids=eos_ids,
            pad_id=eos_ids[0] if pad is None else pad,
            bos_id=id_of("bos_token"),
            special_tokens=special,
            chat_template=_chat_template(config, path, cfg_file),
            fingerprint=digest.hexdigest(),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HFTokenizer) and self.fingerprint == other.fingerprint

    def __hash__(self) -> int:
        return hash((HFTokenizer, self.fingerprint))

    @property
    def vocab_size(self) -> int:
        """1 + the largest id of the vocabulary (added tokens included)."""
        return 1 + max(self.backend.get_vocab(with_added_tokens=True).values())

    @property
    def eos_id(self) -> int:
        return self.eos_ids[0]

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Ids of ``text`` (special tokens written in the text are matched as such);
        ``add_special_tokens`` runs the post-processor (e.g. a BOS prefix), as transformers'
        ``encode`` does by default."""
        return list(self.backend.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Text of ``ids``; special tokens dropped when ``skip_special``."""
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special)

    def encode_batch(self, texts: Sequence[str], width: int, add_eos: bool = False) -> jax.Array:
        """``[len(texts), width]`` int32 ids (no post-processor tokens), right-padded with
        ``pad_id``, each followed by ``eos_id`` when ``add_eos``; too long raises."""
        arr = np.full((len(texts), width), self.pad_id, np.int32)
        for row, text in enumerate(texts):
            ids = self.encode(text, add_special_tokens=False) + ([self.eos_id] if add_eos else [])
            if len(ids) > width:
                raise ValueError(f"text {text!r} needs {len(ids)} ids, more than width {width}")
            arr[row, : len(ids)] = ids
        return jnp.asarray(arr)

    def decode_batch(self, ids: Any) -> list[str]:
        """Each row of a ``[B, T]`` array cut at its first EOS id (any of ``eos_ids``), then
        decoded without special tokens."""
        stops = set(self.eos_ids)
        out = []
        for row in np.asarray(ids):
            row = [int(i) for i in row]
            end = next((t for t, i in enumerate(row) if i in stops), len(row))
            out.append(self.decode(row[:end]))
        return out

    def apply_chat_template(
        self,
        messages: Sequence[Message],
        add_generation_prompt: bool = True,
        **kwargs: Any,
    ) -> str:
        """The conversation rendered with the checkpoint's chat template (``kwargs``: extra
        template variables such as ``tools`` or ``enable_thinking``).

        Raises:
          ValueError: the checkpoint has no chat template.
          jinja2.TemplateError: the template rejected the conversation.
        """
        if self.chat_template is None:
            raise ValueError(
                "this tokenizer has no chat_template (neither tokenizer_config.json nor "
                "chat_template.jinja defines one); build prompt text directly and use encode"
            )
        return render_chat_template(
            self.chat_template,
            messages,
            add_generation_prompt=add_generation_prompt,
            special_tokens=self.special_tokens,
            **kwargs,
        )

    def encode_chat(
        self,
        messages: Sequence[Message],
        add_generation_prompt: bool = True,
        **kwargs: Any,
    ) -> list[int]:
        """Ids of :meth:`apply_chat_template` (the template writes its own special tokens, so
        the post-processor does not add any: transformers' ``apply_chat_template(...,
        tokenize=True)``)."""
        text = self.apply_chat_template(messages, add_generation_prompt, **kwargs)
        return self.encode(text, add_special_tokens=False)
