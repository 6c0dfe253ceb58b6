"""Verifiable rewards on decoded text: answer extraction, verifiers, and named components.

    from cliffjax.rewards import RewardComponent, TextReward, extract_gsm8k
    reward = TextReward((RewardComponent("correct", "gsm8k"), RewardComponent("format", "gsm8k_format", 0.1)))
    values = reward(texts, finished, references)   # {"correct": [B], "format": [B]}

``cliffjax.tasks.text.TextTask`` wires a :class:`TextReward` into the trainer as a host-side
reward (``jax.pure_callback``).
"""

from cliffjax.rewards.extract import (
    extract_boxed,
    extract_gsm8k,
    last_number,
    numbers_equal,
    parse_number,
)
from cliffjax.rewards.verifiers import (
    VERIFIERS,
    RewardComponent,
    TextReward,
    VerifierError,
    get_verifier,
    register_verifier,
)

__all__ = [
    "VERIFIERS",
    "RewardComponent",
    "TextReward",
    "VerifierError",
    "extract_boxed",
    "extract_gsm8k",
    "get_verifier",
    "last_number",
    "numbers_equal",
    "parse_number",
    "register_verifier",
]
