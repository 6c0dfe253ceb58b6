"""Dataset tools: ``python -m cliffjax.data word_problems PATH [--n N] [--seed S]`` writes the
synthetic GSM8K-format word problems (``cliffjax.data.synthetic``) as JSONL."""

from __future__ import annotations

import argparse

from cliffjax.data.records import write_jsonl
from cliffjax.data.synthetic import word_problems


def main(argv: list[str] | None = None) -> None:
    """The command line (module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m cliffjax.data", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    wp = sub.add_parser("word_problems", help="write synthetic GSM8K-format problems")
    wp.add_argument("path")
    wp.add_argument("--n", type=int, default=1000)
    wp.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n = write_jsonl(args.path, word_problems(args.n, args.seed))
    print(f"wrote {n} problems to {args.path}")


if __name__ == "__main__":
    main()
