"""The record every check returns."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

RELATIONS = ("<=", ">=", "==")
VERDICTS = ("pass", "fail")
SIZES = ("small", "full")


@dataclass(frozen=True)
class CheckRecord:
    """Outcome of one executable theory check.

    Attributes:
      check_id: short id, matching docs/theory.md and the team notes (e.g. ``"PC-1"``).
      claim: one-sentence statement that was checked.
      citation: paper (arXiv id) and the proposition/theorem, or ``[derived]`` for our corollaries.
      sizes: problem sizes (states, actions, trials, ...) used by this run.
      seed: seed of every random draw in the check.
      bound: the theoretical value: an upper bound (``relation="<="``), a lower bound
        (``">="``) or an exact value (``"=="``) for ``measured``.
      measured: the worst case found (largest ratio, smallest jump, ...), same units as ``bound``.
      relation: how ``measured`` must compare to ``bound``.
      tightness: how close the worst case found comes to the bound, in ``[0, 1]``; 1 means the
        bound is attained. ``None`` for checks where it is not meaningful (convergence and sign
        checks); the notes then say what was measured.
      verdict: ``"pass"`` or ``"fail"``.
      notes: setup details, secondary numbers, what "tight" means here.
      details: extra measured numbers (JSON-serialisable scalars or lists).
    """

    check_id: str
    claim: str
    citation: str
    sizes: dict[str, Any]
    seed: int
    bound: float
    measured: float
    relation: str
    tightness: float | None
    verdict: str
    notes: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            raise ValueError(f"relation must be one of {RELATIONS}, got {self.relation!r}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if self.tightness is not None and not math.isfinite(self.tightness):
            raise ValueError(f"tightness must be finite or None, got {self.tightness}")

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (floats stay floats; numpy scalars converted)."""
        return _jsonable(asdict(self))


def verdict_of(ok: bool) -> str:
    """``"pass"`` if ``ok`` else ``"fail"``."""
    return "pass" if bool(ok) else "fail"


def check_size(size: str) -> str:
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    return size


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):  # numpy scalars and arrays
        return _jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x
