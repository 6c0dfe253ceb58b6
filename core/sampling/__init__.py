"""Sampling: jit'd KV-cache generation and teacher-forced scoring."""

from cliffjax.sampling.sampler import (
    SampleOutput,
    SamplingConfig,
    filter_logits,
    sample,
    sample_with_model,
)
from cliffjax.sampling.scoring import score, score_with_entropy

__all__ = [
    "SampleOutput",
    "SamplingConfig",
    "filter_logits",
    "sample",
    "sample_with_model",
    "score",
    "score_with_entropy",
]
