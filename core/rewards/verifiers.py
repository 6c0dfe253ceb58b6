"""Verifiers (Python functions on decoded text) and their composition into reward components.

A verifier scores one completion against its reference answer:

    fn(text: str, reference: str) -> float                 # e.g. 1.0 correct, 0.0 not
    fn(text: str, reference: str, finished: bool) -> float # registered with needs_finished

``finished`` says whether the completion ended with an EOS inside the generation budget.
Built-ins (:data:`VERIFIERS`):

=================  ===========================================================================
``gsm8k``          the number after the last ``####`` (else the last number) equals the
                   reference's (a reference that is a full GSM8K solution is reduced to its
                   ``####`` answer first)
``gsm8k_strict``   the same, but a completion without ``#### <number>`` scores 0
``gsm8k_format``   1 if the completion contains ``#### <number>``
``boxed``          the last ``\\boxed{...}`` equals the reference (numerically or as text;
                   a reference containing ``\\boxed`` is reduced to its content)
``boxed_format``   1 if the completion contains a complete ``\\boxed{...}``
``math_verify``    symbolic equivalence by the ``math-verify`` library (optional extra
                   ``cliffjax[math]``): the reference is parsed, the completion's answer
                   is extracted and compared with sympy
``finished``       1 if the completion ended with an EOS inside the budget (a length
                   component; DAPO's soft overlong penalty is ``trainer.rl.overlong``)
=================  ===========================================================================

A name of the form ``package.module:function`` imports a user function. :class:`TextReward`
runs the components of a batch on the host. A verifier that raises, does not return within
``timeout_s`` seconds, or returns something that is not a finite number stops the run with a
:class:`VerifierError` naming the verifier, the component and the offending completion —
never a silent zero.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cliffjax.rewards.extract import extract_boxed, extract_gsm8k, numbers_equal


class VerifierError(RuntimeError):
    """A verifier failed on a completion (raised, timed out, or returned a non-finite value)."""


@dataclasses.dataclass(frozen=True)
class Verifier:
    """A registered verifier: ``fn(text, reference[, finished]) -> float``."""

    name: str
    fn: Callable[..., float]
    needs_finished: bool = False

    def __call__(self, text: str, reference: str, finished: bool) -> float:
        if self.needs_finished:
            return self.fn(text, reference, finished)
        return self.fn(text, reference)


VERIFIERS: dict[str, Verifier] = {}


def register_verifier(name: str, fn: Callable[..., float], needs_finished: bool = False) -> None:
    """Register ``fn`` under ``name`` (an existing name raises ``ValueError``)."""
    if name in VERIFIERS:
        raise ValueError(f"verifier {name!r} is already registered")
    VERIFIERS[name] = Verifier(name, fn, needs_finished)


def _reference_gsm8k(reference: str) -> str:
    ref = extract_gsm8k(reference, strict=True)
    return reference.strip() if ref is None else ref


def _reference_boxed(reference: str) -> str:
    ref = extract_boxed(reference)
    return reference.strip() if ref is None else ref


def gsm8k_correct(text: str, reference: str) -> float:
    return float(numbers_equal(extract_gsm8k(text), _reference_gsm8k(reference)))


def gsm8k_strict(text: str, reference: str) -> float:
    return float(numbers_equal(extract_gsm8k(text, strict=True), _reference_gsm8k(reference)))


def gsm8k_format(text: str, reference: str) -> float:
    del reference
    return float(extract_gsm8k(text, strict=True) is not None)


def boxed_correct(text: str, reference: str) -> float:
    return float(numbers_equal(extract_boxed(text), _reference_boxed(reference)))


def boxed_format(text: str, reference: str) -> float:
    del reference
    return float(extract_boxed(text) is not None)


def math_verify_correct(text: str, reference: str) -> float:
    try:
        from math_verify import parse, verify
    except ImportError as e:  # pragma: no cover - depends on the optional extra
        raise ImportError(
            "verifier 'math_verify' needs the math-verify package: pip install 'cliffjax[math]'"
        ) from e
    ref = reference if "\\boxed" in reference or "$" in reference else f"${reference}$"
    # math-verify's own timeouts use SIGALRM, which only works on the main thread; the
    # TextReward worker enforces the time limit instead.
    gold = parse(ref, parsing_timeout=None)
    answer = parse(text, parsing_timeout=None)
    if not gold or not answer:
        return 0.0
    return float(verify(gold, answer, timeout_seconds=None))


def finished(text: str, reference: str, finished: bool) -> float:
    del text, reference
    return float(finished)


register_verifier("gsm8k", gsm8k_correct)
register_verifier("gsm8k_strict", gsm8k_strict)
register_verifier("gsm8k_format", gsm8k_format)
register_verifier("boxed", boxed_correct)
register_verifier("boxed_format", boxed_format)
register_verifier("math_verify", math_verify_correct)
register_verifier("finished", finished, needs_finished=True)


def get_verifier(name: str) -> Verifier:
    """The verifier ``name``: a registered name or ``package.module:function``."""
    if name in VERIFIERS:
        return VERIFIERS[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"verifier {name!r} cannot be imported: {e}") from e
        params = inspect.signature(fn).parameters
        return Verifier(name, fn, needs_finished=len(params) >= 3)
    raise ValueError(
        f"unknown verifier {name!r}; expected one of {sorted(VERIFIERS)} or 'module:function'"
    )


@dataclasses.dataclass(frozen=True)
class RewardComponent:
    """One named reward component: ``weight · verifier(text, reference)``.

    Attributes:
      name: the component's name in metrics (``"correct"`` is reported as accuracy).
      verifier: a verifier name (:func:`get_verifier`).
      weight: its weight in the scalar reward (finite).
    """

    name: str
    verifier: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("RewardComponent.name must be a non-empty string")
        if not isinstance(self.weight, int | float) or not math.isfinite(self.weight):
            raise ValueError(
                f"RewardComponent.weight of {self.name!r} must be a finite number, "
                f"got {self.weight!r}"
            )
        get_verifier(self.verifier)  # fail at construction for an unknown verifier


class _Worker:
    """A daemon thread that runs verifier calls, so a call that hangs can be abandoned (a
    daemon thread never blocks the interpreter's exit)."""

    def __init__(self) -> None:
        self.jobs: queue.Queue = queue.Queue()
        self.results: queue.Queue = queue.Queue()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            fn, args = self.jobs.get()
            try:
                self.results.put((True, fn(*args)))
            except Exception as e:  # reported to the caller
                self.results.put((False, e))

    def call(self, fn: Callable, args: tuple, timeout: float) -> tuple[bool, Any]:
        self.jobs.put((fn, args))
        return self.results.get(timeout=timeout)


class TextReward:
    """The reward components of a batch of decoded completions, computed on the host.

    ``reward(texts, finished, references) -> {name: float32 [B]}``; the scalar reward is
    ``Σ_k weight_k · component_k`` (:meth:`total`). ``timeout_s`` bounds every single
    verifier call (``None``: no limit, the call runs on the caller's thread).
    """

    def __init__(
        self, components: Sequence[RewardComponent], timeout_s: float | None = 10.0
    ) -> None:
        components = tuple(components)
        if not components:
            raise ValueError("TextReward needs at least one component")
        names = [c.name for c in components]
        if len(set(names)) != len(names):
            raise ValueError(f"TextReward component names repeat: {names}")
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"TextReward.timeout_s must be > 0 or None, got {timeout_s}")
        self.components = components
        self.verifiers = tuple(get_verifier(c.verifier) for c in components)
        self.timeout_s = timeout_s
        self._worker: _Worker | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.components)

    @property
    def weights(self) -> tuple[float, ...]:
        return tuple(float(c.weight) for c in self.components)

    def _call(self, v: Verifier, comp: str, text: str, ref: str, done: bool) -> float:
        where = f"verifier {v.name!r} (component {comp!r}) on completion {text!r}"
        if self.timeout_s is None:
            try:
                value = v(text, ref, done)
            except Exception as e:
                raise VerifierError(f"{where} raised {type(e).__name__}: {e}") from e
        else:
            if self._worker is None:
                self._worker = _Worker()
            try:
                ok, value = self._worker.call(v, (text, ref, done), self.timeout_s)
            except queue.Empty:
                self._worker = None  # abandon the stuck thread
                raise VerifierError(f"{where} did not return within {self.timeout_s} s") from None
            if not ok:
                raise VerifierError(f"{where} raised {type(value).__name__}: {value}") from value
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise VerifierError(f"{where} returned {value!r}, expected a number") from None
        if not math.isfinite(out):
            raise VerifierError(f"{where} returned {out}, expected a finite number")
        return out

    def __call__(
        self, texts: Sequence[str], finished: Sequence[bool], references: Sequence[str]
    ) -> dict[str, np.ndarray]:
        if not len(texts) == len(finished) == len(references):
            raise ValueError(
                f"TextReward: {len(texts)} texts, {len(finished)} finished flags and "
                f"{len(references)} references must have the same length"
            )
        out = {}
        for comp, v in zip(self.components, self.verifiers):
            out[comp.name] = np.asarray(
                [
                    self._call(v, comp.name, t, r, bool(f))
                    for t, f, r in zip(texts, finished, references)
                ],
                np.float32,
            )
        return out

    def total(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """``Σ_k weight_k · values[name_k]``."""
        return sum(w * values[n] for w, n in zip(self.weights, self.names))
