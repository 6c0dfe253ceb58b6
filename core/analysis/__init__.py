"""Measuring policies: answer sets and exact distributions, distances, reward perturbations,
and (for text tasks) distances between sampled final-answer distributions.

Used by the policy-cliff sweeps (``cliffjax.experiments.policy_cliff``) and usable on their
own::

    from cliffjax.analysis import answer_candidates, answer_distribution, tv_distance
"""

from cliffjax.analysis.answers import (
    answer_candidates,
    answer_distribution,
    answer_index,
    candidate_rewards,
    num_answers,
    sequence_logprob,
)
from cliffjax.analysis.distances import kl_categorical, sampled_distances, tv_distance
from cliffjax.analysis.perturbations import (
    PERTURBATIONS,
    Perturbation,
    PerturbedReward,
    RewardShift,
    make_perturbation,
    perturbation_value,
)
from cliffjax.analysis.sampled_answers import (
    bootstrap_ci,
    canonical_answer,
    empirical_tv,
    extracted_answers,
    length_bins,
    per_prompt_tv,
)
from cliffjax.analysis.text_perturbations import (
    TEXT_PERTURBATIONS,
    TextPerturbation,
    TextPerturbedReward,
)

__all__ = [
    "PERTURBATIONS",
    "TEXT_PERTURBATIONS",
    "Perturbation",
    "PerturbedReward",
    "RewardShift",
    "TextPerturbation",
    "TextPerturbedReward",
    "answer_candidates",
    "answer_distribution",
    "answer_index",
    "bootstrap_ci",
    "candidate_rewards",
    "canonical_answer",
    "empirical_tv",
    "extracted_answers",
    "kl_categorical",
    "length_bins",
    "make_perturbation",
    "num_answers",
    "per_prompt_tv",
    "perturbation_value",
    "sampled_distances",
    "sequence_logprob",
    "tv_distance",
]
