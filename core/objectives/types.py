"""Batch containers shared by every objective.

Shapes: ``B`` sequences (``P`` prompts x ``G`` completions, groups contiguous), ``T`` padded
completion length. All log-probabilities are per-token log-probs of the *sampled* token.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

Array = jax.Array


class PolicyBatch(NamedTuple):
    """Inputs of a policy-gradient objective (GRPO family, GSPO, CISPO, DISPO, MHPO).

    Attributes:
      logp: ``[B, T]`` log pi_theta(o_t | q, o_<t). The only input gradients flow through.
      logp_old: ``[B, T]`` log-probs under the behaviour (rollout) policy pi_old. Treated as a
        constant (objectives apply ``stop_gradient``).
      mask: ``[B, T]`` 1 on completion tokens that count (EOS included), 0 on padding.
      advantages: ``[B]`` (outcome) or ``[B, T]`` (per token) advantages; constants.
      logp_ref: ``[B, T]`` log-probs under the frozen reference policy, or ``None`` when no
        KL term is used.
      rewards: ``[B]`` raw scalar rewards, or ``None``. Only objectives that define a
        response as "correct" by its reward (DISPO's ``correct_by="reward"``) read it.
    """

    logp: Array
    logp_old: Array
    mask: Array
    advantages: Array
    logp_ref: Array | None = None
    rewards: Array | None = None


class PreferenceBatch(NamedTuple):
    """Inputs of a pairwise preference objective (DPO, RPO).

    Attributes:
      logp_chosen: ``[B, T]`` per-token log pi_theta of the chosen response y_w.
      logp_rejected: ``[B, T]`` per-token log pi_theta of the rejected response y_l.
      ref_chosen: ``[B, T]`` per-token log pi_ref of y_w (constant).
      ref_rejected: ``[B, T]`` per-token log pi_ref of y_l (constant).
      mask_chosen: ``[B, T]`` completion mask of y_w.
      mask_rejected: ``[B, T]`` completion mask of y_l.
    """

    logp_chosen: Array
    logp_rejected: Array
    ref_chosen: Array
    ref_rejected: Array
    mask_chosen: Array
    mask_rejected: Array
