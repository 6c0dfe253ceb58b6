"""Final-answer extraction from model text (pure Python, no dependencies).

Conventions (documented choices; each has a test):

* **GSM8K** (Cobbe et al. 2021, arXiv:2110.14168): the reference solution ends with
  ``#### <answer>``. :func:`extract_gsm8k` takes the number after the *last* ``####`` marker;
  without a marker it falls back to the last number in the text (the lenient convention of
  most RLVR recipes; ``strict=True`` returns ``None`` instead, as the strict-format reward).
* **Boxed** (MATH, Hendrycks et al. 2021, arXiv:2103.03874): the content of the *last*
  ``\\boxed{...}`` (or ``\\fbox{...}``), with nested braces balanced.
* Numbers: optional sign, thousands separators (``1,234``), decimals, a trailing ``%`` or
  ``.`` and a leading ``$`` are accepted; two answers are equal when both parse as numbers
  and differ by at most ``1e-6`` relatively (so ``"18"``, ``"18.0"`` and ``"$18"`` agree),
  else when their whitespace-normalised strings are equal.
"""

from __future__ import annotations

import math
import re

_NUMBER = re.compile(r"-?\$?\s?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_MARKER = "####"


def parse_number(text: str | None) -> float | None:
    """The number written in ``text`` (``"1,234.5"``, ``"$18"``, ``"-3"``, ``"50%"``), or
    ``None`` when ``text`` is not a single number."""
    if text is None:
        return None
    s = text.strip().rstrip(".").strip()
    s = s.replace("$", "").replace(",", "").replace(" ", "")
    if s.endswith("%"):
        s = s[:-1]
    if not s:
        return None
    try:
        value = float(s)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def last_number(text: str) -> str | None:
    """The last number in ``text`` as written (thousands separators kept), or ``None``."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    return found[-1].replace("$", "").strip()


def extract_gsm8k(text: str, strict: bool = False) -> str | None:
    """The GSM8K final answer: the number after the last ``####`` (module docstring)."""
    if _MARKER in text:
        tail = text.rsplit(_MARKER, 1)[1]
        found = _NUMBER.search(tail)
        if found is not None:
            return found.group(0).replace("$", "").strip()
        return None
    return None if strict else last_number(text)


def extract_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (balanced braces), or
    ``None``; ``\\boxed 5`` (no braces) gives ``"5"``."""
    best = None
    for macro in ("\\boxed", "\\fbox"):
        i = text.rfind(macro)
        if i >= 0 and (best is None or i > best[0]):
            best = (i, macro)
    if best is None:
        return None
    j = best[0] + len(best[1])
    rest = text[j:]
    if rest.startswith(" ") and not rest.lstrip().startswith("{"):
        token = rest.strip().split()
        return token[0].rstrip("$.") if token else None
    if not rest.startswith("{"):
        return None
    depth = 0
    for k, ch in enumerate(rest):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return rest[1:k].strip()
    return None  # unbalanced: the completion was cut off inside the box


def _norm(s: str) -> str:
    return " ".join(s.strip().rstrip(".").split())


def numbers_equal(answer: str | None, reference: str | None, rel_tol: float = 1e-6) -> bool:
    """Whether an extracted answer equals the reference (numerically when both parse as
    numbers, else as whitespace-normalised strings); ``None`` never equals anything."""
    if answer is None or reference is None:
        return False
    a, b = parse_number(answer), parse_number(reference)
    if a is not None and b is not None:
        return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-9)
    return _norm(answer) == _norm(reference)
