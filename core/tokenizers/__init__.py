"""Tokenizers behind one protocol: the synthetic tasks' characters and Hugging Face
``tokenizer.json`` files.

    from cliffjax.tokenizers import Tokenizer, CharTokenizer, HFTokenizer
    tok: Tokenizer = HFTokenizer.from_dir("ckpt/dir")
"""

from cliffjax.tokenizers.base import Message, Tokenizer
from cliffjax.tokenizers.char import TOKENIZER, CharTokenizer
from cliffjax.tokenizers.chat_template import render_chat_template
from cliffjax.tokenizers.hf import HFTokenizer

__all__ = [
    "TOKENIZER",
    "CharTokenizer",
    "HFTokenizer",
    "Message",
    "Tokenizer",
    "render_chat_template",
]
