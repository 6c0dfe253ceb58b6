"""``python -m cliffjax.theory_checks [--out DIR] [--quick] [--seed N] [--only ID ...] [--no-figures]``.

Runs every check, prints the table (claim, bound, measured, tightness, verdict), writes
``results.json``, ``report.md`` and PNG figures into ``--out`` (default ``theory_report/``).
Exits with status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cliffjax.theory_checks", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("theory_report"), help="output directory")
    parser.add_argument("--quick", action="store_true", help="small sizes (what the tests run)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every check")
    parser.add_argument("--only", nargs="*", default=None, help="check ids to run (default: all)")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    args = parser.parse_args(argv)

    from cliffjax.theory_checks import ALL_CHECKS
    from cliffjax.theory_checks.report import format_table, run_checks, write_report

    checks = ALL_CHECKS
    if args.only:
        unknown = [c for c in args.only if c not in ALL_CHECKS]
        if unknown:
            parser.error(f"unknown check ids {unknown}; known: {list(ALL_CHECKS)}")
        checks = {c: ALL_CHECKS[c] for c in args.only}
    size = "small" if args.quick else "full"
    t0 = time.perf_counter()
    records, times = run_checks(checks, size, args.seed)
    print(format_table(records, times))
    command = "python -m cliffjax.theory_checks " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    paths = write_report(
        records, times, args.out, command.strip(), size, args.seed, not args.no_figures
    )
    n_pass = sum(r.passed for r in records)
    print(f"\n{n_pass}/{len(records)} pass; wall time {time.perf_counter() - t0:.1f} s")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0 if n_pass == len(records) else 1


if __name__ == "__main__":
    sys.exit(main())
