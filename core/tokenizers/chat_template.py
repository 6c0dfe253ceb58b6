"""Render a Hugging Face chat template (a Jinja2 string shipped with the checkpoint).

Templates are untrusted code from the checkpoint, so they run in Jinja2's
``ImmutableSandboxedEnvironment`` (no attribute access to Python internals, no mutation of the
caller's messages). The environment mirrors what Hugging Face templates are written against:

* ``trim_blocks`` / ``lstrip_blocks`` on, the ``loopcontrols`` extension (``{% break %}``);
* globals ``raise_exception(msg)`` (raises ``jinja2.TemplateError``), ``strftime_now(fmt)``;
* the ``tojson`` filter as ``json.dumps`` (no HTML escaping, ``ensure_ascii=False``, with
  ``indent`` / ``separators`` / ``sort_keys``);
* the ``{% generation %} ... {% endgeneration %}`` block (assistant-token tracking in
  transformers), rendered here as its body;
* variables ``messages``, ``add_generation_prompt``, ``tools``, ``documents``, the special
  token strings (``bos_token``, ``eos_token``, ``pad_token``, ``unk_token``) and any extra
  keyword arguments (e.g. ``enable_thinking`` of Qwen3 templates).
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cliffjax.tokenizers.base import Message


def _jinja():
    try:
        import jinja2
        import jinja2.ext
        import jinja2.sandbox
    except ImportError as e:  # pragma: no cover - the hf extra installs it
        raise ImportError(
            "chat templates need jinja2 (pip install 'cliffjax[hf]' or pip install jinja2)"
        ) from e
    return jinja2


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _raise_exception(message: str) -> None:
    raise _jinja().TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


@functools.lru_cache(maxsize=32)
def compile_chat_template(template: str) -> Any:
    """The compiled ``jinja2.Template`` of ``template`` (cached per template string)."""
    jinja2 = _jinja()

    class GenerationBlock(jinja2.ext.Extension):
        """``{% generation %}body{% endgeneration %}`` renders ``body``."""

        tags = frozenset({"generation"})

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(
                lineno
            )

        def _body(self, caller):
            return caller()

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[GenerationBlock, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(template)


def render_chat_template(
    template: str,
    messages: Sequence[Message],
    *,
    add_generation_prompt: bool = True,
    special_tokens: Mapping[str, str | None] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    documents: Sequence[Mapping[str, Any]] | None = None,
    **kwargs: Any,
) -> str:
    """The text of ``messages`` in the chat format of ``template``.

    Args:
      template: the Jinja2 chat template string.
      messages: ``[{"role": ..., "content": ...}, ...]``; copied into plain dicts/lists.
      add_generation_prompt: append the header of the assistant's next turn.
      special_tokens: ``{"bos_token": "<s>", "eos_token": ...}`` made visible to the template.
      tools, documents: as in Hugging Face ``apply_chat_template`` (JSON schemas / dicts).
      **kwargs: extra template variables.
    Raises:
      TypeError: a message is not a mapping.
      jinja2.TemplateError: the template called ``raise_exception`` (e.g. roles out of order).
    """
    plain = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise TypeError(f"messages[{i}] must be a mapping with 'role' and 'content', got {m!r}")
        plain.append(json.loads(json.dumps(dict(m))))
    variables = {k: v for k, v in (special_tokens or {}).items() if v is not None}
    variables.update(kwargs)
    return compile_chat_template(template).render(
        messages=plain,
        add_generation_prompt=add_generation_prompt,
        tools=None if tools is None else [dict(t) for t in tools],
        documents=None if documents is None else [dict(d) for d in documents],
        **variables,
    )
