"""Measuring policies: answer sets and exact distributions, distances, reward perturbations.

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

__all__ = [
    "PERTURBATIONS",
    "Perturbation",
    "PerturbedReward",
    "RewardShift",
    "answer_candidates",
    "answer_distribution",
    "answer_index",
    "candidate_rewards",
    "kl_categorical",
    "make_perturbation",
    "num_answers",
    "perturbation_value",
    "sampled_distances",
    "sequence_logprob",
    "tv_distance",
]
