"""The character tokenizer of the synthetic tasks; it lives in ``cliffjax.tokenizers.char``
and is re-exported here so ``from cliffjax.tasks.tokenizer import TOKENIZER`` keeps working."""

from cliffjax.tokenizers.char import EOS, PAD, TOKENIZER, CharTokenizer

__all__ = ["EOS", "PAD", "TOKENIZER", "CharTokenizer"]
