"""Text tasks from dataset files: prompts from a field, a reference answer, host verifiers.

    task = TextTask(TextTaskConfig(path="gsm8k/train.jsonl", eval_path="gsm8k/test.jsonl"),
                    HFTokenizer.from_dir("ckpt/qwen2.5-0.5b"))

What a record becomes:

1. The user message is ``prompt_template.format(prompt=record[prompt_field])``; with
   ``system_prompt`` a system message precedes it. With ``chat_template=true`` and a
   tokenizer that has a chat template, the prompt is the rendered conversation with the
   assistant header appended (``add_generation_prompt``); otherwise the plain text
   ``system_prompt + "\\n\\n" + user message``.
2. Prompts longer than ``max_prompt_tokens`` tokens are dropped (the count per split is kept
   in :attr:`TextTask.dropped` and printed by the jobs). The others are **left padded** to the
   longest kept prompt, ``P = prompt_len``, with the tokenizer's ``pad_id``; the task sets
   ``padded_prompts = True``, so the sampler, the scorer and the trainers take the leading
   run of padding of every row as padding (``cliffjax.sampling.left_padding_mask``): each
   row is generated and scored exactly as it would be alone.
3. The reward is computed on the host (``jax.pure_callback``): completions are decoded up to
   their first EOS id (any of ``tokenizer.eos_ids``) and scored by
   :class:`cliffjax.rewards.TextReward` against ``record[answer_field]``; components are named
   (``correct`` is reported as accuracy) and weighted. A verifier that raises, times out or
   returns a non-finite value stops the run with the verifier and the completion named.
4. The held-out split is ``eval_path`` when given, else ``n_eval`` records of ``path`` drawn
   by ``split_seed`` (never trained on).
5. ``sft_batch`` teaches the reference answer text (a GSM8K record's worked solution ending
   in ``#### n``) followed by the EOS, truncated to ``max_new_tokens``: a warm start in the
   answer format.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from cliffjax.data.records import get_field, load_records, split_records
from cliffjax.rewards import RewardComponent, TextReward
from cliffjax.tasks.base import Meta
from cliffjax.tasks.wrappers import HostReward
from cliffjax.tokenizers.base import Tokenizer

Array = jax.Array

GSM8K_REWARDS: tuple[RewardComponent, ...] = (
    RewardComponent("correct", "gsm8k", 1.0),
    RewardComponent("format", "gsm8k_format", 0.0),
)


@dataclasses.dataclass(frozen=True)
class TextTaskConfig:
    """A text task read from a dataset file (``task=jsonl``).

    Attributes:
      path: the training file (``.jsonl`` or ``.parquet``).
      eval_path: the held-out file; ``None`` splits ``n_eval`` records off ``path``.
      n_eval: held-out records when ``eval_path`` is ``None`` (also the cap on the eval file's
        records used; 0 = all of the eval file).
      prompt_field, answer_field: record fields (``a.b`` for nested objects).
      system_prompt: optional system message.
      prompt_template: the user message, with ``{prompt}`` standing for the field's text.
      chat_template: render prompts with the tokenizer's chat template when it has one.
      max_prompt_tokens: longer prompts are dropped (counted).
      max_new_tokens: completion budget N.
      max_train: use at most this many training records (0 = all), in file order.
      rewards: the reward components (name, verifier, weight).
      verifier_timeout_s: limit on one verifier call (``None``: none).
      split_seed: seed of the train/eval split.
      tokenizer: a directory with ``tokenizer.json`` (Hydra default: ``model.path``, the
        checkpoint's own tokenizer); unused when a tokenizer object is passed to the task.
    """

    path: str
    eval_path: str | None = None
    n_eval: int = 64
    prompt_field: str = "question"
    answer_field: str = "answer"
    system_prompt: str | None = None
    prompt_template: str = "{prompt}"
    chat_template: bool = True
    max_prompt_tokens: int = 256
    max_new_tokens: int = 256
    max_train: int = 0
    rewards: tuple[RewardComponent, ...] = GSM8K_REWARDS
    verifier_timeout_s: float | None = 10.0
    split_seed: int = 0
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        # Hydra gives the components as dicts: {name, verifier, weight}.
        comps = []
        for i, c in enumerate(self.rewards):
            if isinstance(c, RewardComponent):
                comps.append(c)
                continue
            if not isinstance(c, Mapping):
                raise ValueError(f"task.rewards[{i}] must be {{name, verifier, weight}}, got {c!r}")
            try:
                comps.append(RewardComponent(**dict(c)))
            except (TypeError, ValueError) as e:
                raise ValueError(f"task.rewards[{i}]: {e}") from None
        object.__setattr__(self, "rewards", tuple(comps))
        if not self.path or self.path == "???":
            raise ValueError("path must name a .jsonl or .parquet file (task.path=...)")
        for name in ("max_prompt_tokens", "max_new_tokens"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"task.{name} must be an int >= 1, got {v!r}")
        for name in ("n_eval", "max_train", "split_seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"task.{name} must be an int >= 0, got {v!r}")
        if "{prompt}" not in self.prompt_template:
            raise ValueError(
                f"task.prompt_template must contain '{{prompt}}', got {self.prompt_template!r}"
            )
        if not any(c.name == "correct" for c in self.rewards):
            raise ValueError("task.rewards must include a component named 'correct'")
        t = self.verifier_timeout_s
        if t is not None and not (isinstance(t, int | float) and math.isfinite(t) and t > 0):
            raise ValueError(f"task.verifier_timeout_s must be a number > 0 or null, got {t!r}")


def _left_pad(rows: list[list[int]], width: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.full((len(rows), width), pad_id, np.int32)
    mask = np.zeros((len(rows), width), np.int32)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = r
            mask[i, width - len(r) :] = 1
    return ids, mask


class TextTask:
    """A :class:`~cliffjax.tasks.base.Task` over dataset records (module docstring).

    Attributes beyond the protocol: ``config``, ``references`` (every reference answer, train
    split first; ``meta["ref_idx"]`` indexes it), ``n_train``, ``dropped``
    (``{"train": k, "eval": j}`` prompts over the length limit), ``reward_fn`` (the
    :class:`TextReward`).
    """

    name = "jsonl"
    padded_prompts = True
    answer_digits = 0
    has_flawed_teacher = False

    def __init__(self, config: TextTaskConfig, tokenizer: Tokenizer | None = None) -> None:
        self.config = config
        self.max_new_tokens = config.max_new_tokens
        records = load_records(config.path)
        if config.eval_path:
            train_recs = records
            eval_recs = load_records(config.eval_path)
            if config.n_eval:
                eval_recs = eval_recs[: config.n_eval]
        else:
            train_recs, eval_recs = split_records(records, config.n_eval, config.split_seed)
        if config.max_train:
            train_recs = train_recs[: config.max_train]
        if tokenizer is None:
            if not config.tokenizer:
                raise ValueError(
                    "task.tokenizer: a directory with tokenizer.json is needed (with model=hf "
                    "it defaults to model.path)"
                )
            from cliffjax.tokenizers import HFTokenizer

            tokenizer = HFTokenizer.from_dir(config.tokenizer)
        self.tokenizer = tokenizer
        self.reward_fn = TextReward(config.rewards, config.verifier_timeout_s)
        self.dropped: dict[str, int] = {}
        splits = {}
        for split, recs, src in (
            ("train", train_recs, config.path),
            ("eval", eval_recs, config.eval_path or config.path),
        ):
            prompts, answers, targets = [], [], []
            for i, rec in enumerate(recs):
                where = f"{src} record {i}"
                text = str(get_field(rec, config.prompt_field, where))
                answer = str(get_field(rec, config.answer_field, where))
                ids = self.encode_prompt(text)
                if len(ids) > config.max_prompt_tokens:
                    continue
                if not ids or ids[0] == tokenizer.pad_id:
                    raise ValueError(
                        f"{where}: the prompt is empty or starts with the padding id "
                        f"{tokenizer.pad_id}, which left padding cannot tell apart"
                    )
                prompts.append(ids)
                answers.append(answer)
                targets.append(tokenizer.encode(answer))
            self.dropped[split] = len(recs) - len(prompts)
            if not prompts:
                raise ValueError(
                    f"task: no {split} prompt of {src} fits task.max_prompt_tokens="
                    f"{config.max_prompt_tokens} ({len(recs)} records)"
                )
            splits[split] = (prompts, answers, targets)
        self.prompt_len = max(len(p) for s in splits.values() for p in s[0])
        pad = tokenizer.pad_id
        tp, tm = _left_pad(splits["train"][0], self.prompt_len, pad)
        ep, em = _left_pad(splits["eval"][0], self.prompt_len, pad)
        self.n_train = tp.shape[0]
        self.references = tuple(splits["train"][1]) + tuple(splits["eval"][1])
        self._train = (jnp.asarray(tp), jnp.asarray(tm))
        self._eval = (jnp.asarray(ep), jnp.asarray(em))
        # Warm-start targets: answer text + EOS, right padded / truncated to N.
        n = self.max_new_tokens
        tgt = np.full((self.n_train, n), pad, np.int32)
        tgt_mask = np.zeros((self.n_train, n), np.int32)
        for i, t in enumerate(splits["train"][2]):
            row = [*t, tokenizer.eos_id][:n]
            tgt[i, : len(row)] = row
            tgt_mask[i, : len(row)] = 1
        self._targets = (jnp.asarray(tgt), jnp.asarray(tgt_mask))
        # The reward: the verifiers on decoded text, called from the jit'd rollout through the
        # shared host-reward mechanism (decoding, EOS ids, pure_callback, checks).
        self._host_reward = HostReward(
            self, self._verify, self.reward_fn.names, self.reward_fn.weights
        )

    # -- prompts ----------------------------------------------------------------------------

    def format_prompt(self, text: str) -> str:
        """The prompt string of a record's prompt field (module docstring, step 1)."""
        cfg = self.config
        user = cfg.prompt_template.format(prompt=text)
        if cfg.chat_template and getattr(self.tokenizer, "chat_template", None):
            messages = []
            if cfg.system_prompt:
                messages.append({"role": "system", "content": cfg.system_prompt})
            messages.append({"role": "user", "content": user})
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        return f"{cfg.system_prompt}\n\n{user}" if cfg.system_prompt else user

    def encode_prompt(self, text: str) -> list[int]:
        """Token ids of :meth:`format_prompt` (the chat template writes its own specials)."""
        cfg = self.config
        if cfg.chat_template and getattr(self.tokenizer, "chat_template", None):
            return list(self.tokenizer.encode(self.format_prompt(text), add_special_tokens=False))
        return list(self.tokenizer.encode(self.format_prompt(text)))

    def _meta(self, idx: Array, offset: int) -> Meta:
        return {"ref_idx": (idx + offset).astype(jnp.int32)}

    def train_prompts(self, key: Array, n: int) -> tuple[Array, Meta]:
        """``n`` training prompts drawn without replacement (with replacement when ``n``
        exceeds the split), left padded, with ``ref_idx`` in meta."""
        ids, _ = self._train
        m = self.n_train
        idx = jax.random.choice(key, m, (n,), replace=n > m).astype(jnp.int32)
        return ids[idx], self._meta(idx, 0)

    def train_prompt_set(self, key: Array, n: int) -> tuple[Array, Meta]:
        """``n`` distinct training prompts (all when ``n`` is 0 or at least the split size)."""
        ids, _ = self._train
        m = self.n_train
        k = m if n <= 0 else min(n, m)
        idx = jax.random.permutation(key, m)[:k].astype(jnp.int32)
        return ids[idx], self._meta(idx, 0)

    def eval_set(self) -> tuple[Array, Meta]:
        ids, _ = self._eval
        idx = jnp.arange(ids.shape[0], dtype=jnp.int32)
        return ids, self._meta(idx, self.n_train)

    # -- reward -----------------------------------------------------------------------------

    def _verify(
        self, texts: list[str], finished: np.ndarray, meta: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        refs = [self.references[int(i)] for i in meta["ref_idx"]]
        return self.reward_fn(texts, finished, refs)

    def reward(
        self, completions: Array, completion_mask: Array, meta: Meta
    ) -> tuple[Array, dict[str, Array]]:
        """Rewards ``[B]`` and components from the host verifiers (module docstring)."""
        return self._host_reward.reward(completions, completion_mask, meta)

    # -- warm start -------------------------------------------------------------------------

    def sft_batch(self, key: Array, n: int) -> tuple[Array, Array]:
        """``n`` training prompts followed by their reference answers (module docstring):
        tokens ``[n, P + N]``, loss mask ``[n, P + N]`` (1 on answer tokens and the EOS)."""
        ids, mask = self._train
        tgt, tgt_mask = self._targets
        idx = jax.random.choice(key, self.n_train, (n,), replace=n > self.n_train)
        tokens = jnp.concatenate([ids[idx], tgt[idx]], axis=1)
        loss_mask = jnp.concatenate([jnp.zeros_like(mask[idx]), tgt_mask[idx]], axis=1)
        return tokens, loss_mask

    def describe(self) -> str:
        """One line for job logs: sizes, prompt width and dropped prompts."""
        return (
            f"task jsonl: {self.n_train} train / {self._eval[0].shape[0]} eval prompts "
            f"(dropped over {self.config.max_prompt_tokens} tokens: train "
            f"{self.dropped['train']}, eval {self.dropped['eval']}), prompt width "
            f"{self.prompt_len}, completions <= {self.max_new_tokens} tokens"
        )
