"""A synthetic grade-school word-problem set in the GSM8K format (generated, not copied).

Each problem is one to three arithmetic steps over small integers told as a story; the
``answer`` field is a worked solution ending in ``#### <number>`` as GSM8K's is, so the same
verifiers (``gsm8k``, ``gsm8k_format``) and commands run on it and on the real dataset.

    python -m cliffjax.data.word_problems data/word_problems.jsonl --n 1000 --seed 0

The set is a deterministic function of ``(n, seed)``. It exists for tests and offline demos:
a tiny model can learn the format and some of the arithmetic, a pretrained model solves most
of it.
"""

from __future__ import annotations

import argparse
import random
from typing import Any

_NAMES = ("Ada", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kofi")
_ITEMS = ("apples", "marbles", "stickers", "books", "shells", "coins", "pencils", "cards")


def _one(rng: random.Random) -> dict[str, Any]:
    name, other = rng.sample(_NAMES, 2)
    item = rng.choice(_ITEMS)
    kind = rng.randrange(5)
    a, b, c = rng.randint(2, 40), rng.randint(2, 20), rng.randint(2, 9)
    if kind == 0:
        q = f"{name} has {a} {item} and gets {b} more from {other}. How many {item} does {name} have now?"
        steps, ans = [f"{a} + {b} = {a + b}"], a + b
    elif kind == 1:
        a = a + b
        q = f"{name} had {a} {item} and gave {b} of them to {other}. How many {item} are left?"
        steps, ans = [f"{a} - {b} = {a - b}"], a - b
    elif kind == 2:
        q = f"{name} buys {c} boxes of {item} with {b} {item} in each box. How many {item} is that?"
        steps, ans = [f"{c} * {b} = {c * b}"], c * b
    elif kind == 3:
        total = b * c
        q = f"{name} shares {total} {item} equally among {c} friends. How many {item} does each friend get?"
        steps, ans = [f"{total} / {c} = {b}"], b
    else:
        q = (
            f"{name} has {a} {item}. {other} has {c} times as many. Together they give away "
            f"{b}. How many {item} do they have left?"
        )
        m = a * c
        steps = [f"{a} * {c} = {m}", f"{a} + {m} = {a + m}", f"{a + m} - {b} = {a + m - b}"]
        ans = a + m - b
    answer = "\n".join(steps) + f"\n#### {ans}"
    return {"question": q, "answer": answer}


def word_problems(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` problems ``{"question": str, "answer": "<steps>\\n#### <number>"}`` (distinct
    questions), deterministic in ``(n, seed)``."""
    if n < 1:
        raise ValueError(f"word_problems: n must be >= 1, got {n}")
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:
        p = _one(rng)
        if p["question"] not in seen:
            seen.add(p["question"])
            out.append(p)
    return out


def main(argv: list[str] | None = None) -> None:
    """Write a word-problem JSONL file (``python -m cliffjax.data.word_problems PATH``)."""
    from cliffjax.data.records import write_jsonl

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("path")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n = write_jsonl(args.path, word_problems(args.n, args.seed))
    print(f"wrote {n} problems to {args.path}")


if __name__ == "__main__":
    main()
