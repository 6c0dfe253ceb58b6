"""Answer extraction: the GSM8K ``####`` convention, the last number, ``\\boxed{}``."""

from __future__ import annotations

import pytest

from cliffjax.rewards import extract_boxed, extract_gsm8k, last_number, numbers_equal, parse_number


@pytest.mark.parametrize(
    "text,expected",
    [
        ("so 3 + 5 = 8\n#### 8", "8"),
        ("#### 1,234", "1,234"),
        ("first #### 3 then revised #### -7.5", "-7.5"),
        ("#### $18", "18"),
        ("The answer is 42.", "42"),  # no marker: the last number
        ("no number here", None),
        ("#### nothing", None),
    ],
)
def test_extract_gsm8k(text, expected):
    assert extract_gsm8k(text) == expected


def test_strict_gsm8k_needs_the_marker():
    assert extract_gsm8k("The answer is 42.", strict=True) is None
    assert extract_gsm8k("#### 42", strict=True) == "42"


@pytest.mark.parametrize(
    "text,expected",
    [
        (r"so $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
        (r"\boxed{1} then \boxed{ {2}+3 }", "{2}+3"),
        (r"\fbox{7}", "7"),
        (r"\boxed 5.", "5"),
        (r"cut off \boxed{\frac{1}{2", None),
        ("none", None),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


def test_numbers():
    assert parse_number("1,234.5") == 1234.5
    assert parse_number("$18") == 18.0
    assert parse_number("50%") == 50.0
    assert parse_number("x=3") is None
    assert last_number("a 3 b 1,000 c") == "1,000"
    assert numbers_equal("18.0", "18") and numbers_equal("$1,000", "1000")
    assert not numbers_equal("17", "18") and not numbers_equal(None, "18")
    assert numbers_equal(r"\frac{1}{2}", r"\frac{1}{2} ")  # strings when not numbers
