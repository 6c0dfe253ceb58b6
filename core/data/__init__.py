"""Text datasets: records from JSONL / Parquet files, and a synthetic word-problem set.

    records = load_records("gsm8k/train.jsonl")            # list of dicts
    problems = word_problems(200, seed=0)                  # [{"question", "answer"}], GSM8K-style
"""

from typing import Any

from cliffjax.data.records import load_records, split_records, write_jsonl

__all__ = ["load_records", "split_records", "word_problems", "write_jsonl"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `python -m cliffjax.data.word_problems` runs the module
    # once (as __main__) rather than after an import of it.
    if name == "word_problems":
        from cliffjax.data.word_problems import word_problems

        return word_problems
    raise AttributeError(f"module 'cliffjax.data' has no attribute {name!r}")
