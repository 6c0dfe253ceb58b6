"""Text datasets: records from JSONL / Parquet files, and a synthetic word-problem set.

records = load_records("gsm8k/train.jsonl")            # list of dicts
problems = word_problems(200, seed=0)                  # [{"question", "answer"}], GSM8K-style
"""

from cliffjax.data.records import load_records, split_records, write_jsonl
from cliffjax.data.synthetic import word_problems

__all__ = ["load_records", "split_records", "word_problems", "write_jsonl"]
