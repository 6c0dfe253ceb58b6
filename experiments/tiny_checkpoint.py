"""A tiny Qwen2-architecture checkpoint directory with its own tokenizer, built offline.

    python -m cliffjax.experiments.tiny_checkpoint ckpt/tiny-qwen2 --data data/word_problems.jsonl

Writes what a downloaded Hugging Face checkpoint directory holds: ``config.json`` and
``model.safetensors`` (random weights, ``Qwen2ForCausalLM``), ``tokenizer.json`` (a byte-level
BPE trained in seconds on the dataset's text with the ``tokenizers`` library),
``tokenizer_config.json`` with a ChatML chat template, ``<|im_end|>`` as EOS and
``<|endoftext|>`` as padding, and ``generation_config.json`` listing both EOS ids (as Qwen2.5's
does). Every real-model command of docs/real_models.md runs on it unchanged, without a
download: the tests use it, and so can a reader trying the commands. Needs ``torch`` and
``transformers`` (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512):
    """A byte-level BPE (``tokenizers.Tokenizer``) trained on ``texts`` with :data:`SPECIALS`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer)
    return tok


def write_tokenizer(out_dir: str, texts: Iterable[str], vocab_size: int = 512):
    """Train :func:`train_tokenizer` and write ``tokenizer.json`` + ``tokenizer_config.json``
    (ChatML template, EOS ``<|im_end|>``, padding ``<|endoftext|>``) into ``out_dir``;
    returns the ``tokenizers.Tokenizer``."""
    os.makedirs(out_dir, exist_ok=True)
    tok = train_tokenizer(texts, vocab_size)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    tok_cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "chat_template": CHATML_TEMPLATE,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as fh:
        json.dump(tok_cfg, fh, indent=2)
    return tok


def write_checkpoint(
    out_dir: str,
    texts: Iterable[str],
    *,
    vocab_size: int = 512,
    hidden_size: int = 64,
    n_layers: int = 2,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    intermediate_size: int = 128,
    seed: int = 0,
) -> str:
    """Write the checkpoint directory (module docstring); returns ``out_dir``."""
    import torch
    import transformers

    tok = write_tokenizer(out_dir, texts, vocab_size)
    ids = {t: tok.token_to_id(t) for t in SPECIALS}
    torch.manual_seed(seed)
    cfg = transformers.Qwen2Config(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
    )
    model = transformers.Qwen2ForCausalLM(cfg).eval()
    model.save_pretrained(out_dir)
    gen = {
        "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
        "pad_token_id": ids["<|endoftext|>"],
    }
    with open(os.path.join(out_dir, "generation_config.json"), "w", encoding="utf-8") as fh:
        json.dump(gen, fh, indent=2)
    return out_dir


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m cliffjax.experiments.tiny_checkpoint OUT_DIR [--data FILE]``."""
    from cliffjax.data import load_records, word_problems

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--data", help="a .jsonl/.parquet file whose text trains the tokenizer")
    ap.add_argument("--vocab-size", type=int, default=512)
    ap.add_argument("--hidden-size", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    records = load_records(args.data) if args.data else word_problems(500)
    texts = [" ".join(str(v) for v in r.values()) for r in records]
    write_checkpoint(
        args.out_dir,
        texts,
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        n_layers=args.layers,
        seed=args.seed,
    )
    print(f"wrote a tiny Qwen2 checkpoint with its tokenizer to {args.out_dir}")


if __name__ == "__main__":
    main()
