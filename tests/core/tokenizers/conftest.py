"""Tiny tokenizer directories built offline: a byte-level BPE trained in about a second.

* ``qwen_style``: ChatML chat template in ``tokenizer_config.json``, ``eos_token``
  ``<|im_end|>``, ``pad_token`` ``<|endoftext|>``, no BOS, and ``generation_config.json``
  listing both EOS ids.
* ``llama_style``: a post-processor that prefixes ``<|begin_of_text|>``, a ``bos_token``, no
  ``pad_token``, the template in ``chat_template.jinja``, EOS ids from ``config.json`` only.
"""

from __future__ import annotations

import json
import os

import pytest

tokenizers = pytest.importorskip("tokenizers")

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LLAMA_SPECIALS = ["<|begin_of_text|>", "<|eot_id|>", "<|end_of_text|>"]

CHATML = (
    "{%- if tools %}{{- '<|im_start|>system\\nTools: ' + (tools | tojson) + '<|im_end|>\\n' }}"
    "{%- elif messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "  {%- if message['role'] == 'system' %}\n"
    "    {%- if not loop.first %}{{ raise_exception('System message must come first') }}"
    "{%- endif %}\n"
    "  {%- elif message['role'] == 'assistant' %}\n"
    "    {{- '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] }}"
    "{% endgeneration %}{{ '<|im_end|>\\n' }}\n"
    "  {%- else %}\n"
    "    {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}\n"
    "  {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}\n"
)

LLAMA_TEMPLATE = (
    "{{- bos_token }}{%- for message in messages %}"
    "{{- '<|start|>' + message['role'] + '\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|start|>assistant\\n\\n' }}{%- endif %}"
)

CORPUS = [
    f"{a} + {b} = {a + b}. The answer is {a * b}, hello world, tokenizers üñí 数学"
    for a in range(30)
    for b in range(12)
] + ["You are a helpful assistant.", "system user assistant Tools", "  spaces\tand\nnewlines  "]


def _train(specials: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def _write(path: str, name: str, data: dict) -> None:
    with open(os.path.join(path, name), "w", encoding="utf-8") as f:
        json.dump(data, f)


@pytest.fixture(scope="session")
def tokenizer_dirs(tmp_path_factory) -> dict[str, str]:
    """name -> directory with tokenizer.json and its config files."""
    from tokenizers import processors

    root = tmp_path_factory.mktemp("tokenizers")
    qwen = str(root / "qwen_style")
    os.makedirs(qwen)
    tok = _train(QWEN_SPECIALS)
    tok.save(os.path.join(qwen, "tokenizer.json"))
    _write(
        qwen,
        "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": None,
            "eos_token": "<|im_end|>",
            "pad_token": {"content": "<|endoftext|>", "special": True, "__type": "AddedToken"},
            "unk_token": None,
            "chat_template": CHATML,
        },
    )
    ids = {t: tok.token_to_id(t) for t in QWEN_SPECIALS}
    _write(
        qwen,
        "generation_config.json",
        {"eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]], "pad_token_id": 0},
    )

    llama = str(root / "llama_style")
    os.makedirs(llama)
    tok = _train(LLAMA_SPECIALS)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A",
        pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos)],
    )
    tok.save(os.path.join(llama, "tokenizer.json"))
    _write(
        llama,
        "tokenizer_config.json",
        {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>"},
    )
    with open(os.path.join(llama, "chat_template.jinja"), "w", encoding="utf-8") as f:
        f.write(LLAMA_TEMPLATE)
    ids = {t: tok.token_to_id(t) for t in LLAMA_SPECIALS}
    _write(llama, "config.json", {"eos_token_id": [ids["<|eot_id|>"], ids["<|end_of_text|>"]]})
    return {"qwen_style": qwen, "llama_style": llama}
