"""The learners' settings in typed groups: the keys under ``model.init_args.<group>`` in a recipe.

    model:
      class_path: gvmlit.algorithms.GRPO
      init_args:
        optim: {lr: 3.0e-5}                      # Optimization
        rollout: {samples_per_prompt: 8}         # RolloutSettings: the budget and the E-step
        loss: {clip_high: 0.28, kl_coef: 0.0}    # LossSettings (with RolloutCorrection under loss.correction)
        groups: {normalize_std: true}            # GroupSettings (GRPO only)
        evaluation: {samples: 4}                 # EvaluationSettings

A group may also be a YAML file (``loss: ../../configs/loss/grpo_reference.yaml``); a recipe or the
command line sets single keys (``--model.init_args.loss.kl_coef=1e-3``). Each field's meaning is in
``--help`` (``gvmlit fit --config RECIPE --help`` or ``--model.help gvmlit.algorithms.GRPO``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from jsonargparse.typing import NonNegativeFloat, NonNegativeInt, PositiveInt

from gvmlit.errors import GvmlitError
from gvmlit.losses import Aggregation, SingletonGroups


@dataclass(frozen=True)
class Optimization:
    """The optimiser: AdamW at a constant learning rate after a linear warm-up (as in the paper).

    Attributes:
        lr: learning rate (> 0).
        weight_decay: AdamW weight decay.
        warmup_steps: linear learning-rate warm-up, in optimiser steps.
        nonfinite: a NaN or infinite loss or gradient: ``stop`` the run with a message naming the step
            (the last checkpoint is kept), or ``skip`` the batch and count it (``train/skipped_batches``).
    """

    lr: float = 1e-5
    weight_decay: NonNegativeFloat = 0.0
    warmup_steps: NonNegativeInt = 0
    nonfinite: Literal["stop", "skip"] = "stop"

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise GvmlitError(f"'model.optim.lr' must be > 0; got {self.lr} (a learning rate of 0 trains nothing)")


@dataclass(frozen=True)
class RolloutSettings:
    """The sampling budget and the E-step of every epoch (docs/method.md §3).

    Attributes:
        samples_per_prompt: average samples per prompt: an epoch's budget is N = this × the epoch's
            prompts (``data.prompts_per_epoch``), pilots included when the allocator keeps them.
        acceptance_threshold: a completion is accepted (RAFT's E-step, acceptance rates) when its
            reward is at least this.
        max_rounds: most rounds of the E-step in one epoch: the epoch's prompts, then the further
            prompts an allocator asks for (``Allocation.refill``) or dynamic sampling draws.
        max_pilot_stages: most stages of pilot sampling an allocator may ask for in one round.
        max_fault_fraction: stop when more than this share of one collection's answers are verifier
            timeouts or errors (training on them would train on zero rewards).
        max_consecutive_timeouts: stop as soon as this many answers in a row ran past the verifier's
            timeout (a verifier that hangs would otherwise cost its timeout on every answer of a collection).
        grad_norm_batch_size: sequences per batched gradient-norm pass (allocators that ask for G_i).
        logprob_batch_size: sequences per forward pass when recomputing π_old.
        max_samples: a run's budget in generated training samples (pilots, refills, dropped groups
            included): the last epoch's budget (and dynamic sampling's rounds) is cut to what is left of it,
            and training stops at the end of the epoch that reaches it (None: ``trainer.max_epochs``
            alone decides), so that runs of different allocators compare at equal spend.
    """

    samples_per_prompt: PositiveInt = 8
    acceptance_threshold: float = 1.0
    max_rounds: PositiveInt = 4
    max_pilot_stages: PositiveInt = 4
    max_fault_fraction: float = 0.5
    max_consecutive_timeouts: PositiveInt = 8
    grad_norm_batch_size: PositiveInt = 64
    logprob_batch_size: PositiveInt = 64
    max_samples: PositiveInt | None = None


@dataclass(frozen=True)
class RolloutCorrection:
    """Importance-sampling correction of the rollout–trainer mismatch (docs/method.md §9).

    The sampler's log-probs (its kernels, precision and sampling processors) differ from what the
    trainer computes for the same tokens. Each token's (``token``) or each sequence's (``sequence``)
    loss is weighed by w = π_trainer / π_sampler of the tokens drawn, both under the sampler's own
    processing (temperature, top-k, top-p, min-p), with w detached; weights above ``cap`` are
    truncated to it (``truncate``) or their tokens / sequences masked out (``mask``).

    Attributes:
        mode: ``auto`` (``token`` with VLLMSampler, ``off`` otherwise), ``off``, ``token`` or ``sequence``.
        action: ``truncate`` (w → min(w, cap)) or ``mask`` (w > cap → 0).
        cap: the largest weight kept (> 1).
    """

    mode: Literal["auto", "off", "token", "sequence"] = "auto"
    action: Literal["truncate", "mask"] = "truncate"
    cap: float = 2.0

    def __post_init__(self) -> None:
        if not self.cap > 1:
            raise GvmlitError(f"'model.loss.correction.cap' must be > 1; got {self.cap}")


@dataclass(frozen=True)
class LossSettings:
    """How the policy loss is computed (docs/method.md §4, §9).

    Attributes:
        clip_low: ε_low of the token-level ratio clip (RAFT++ and GRPO).
        clip_high: ε_high of the token-level ratio clip (DAPO's clip-higher when larger than clip_low).
        dual_clip: c of the dual clip for negative advantages (None = off; the reference code runs 3.0).
        ratio: ``token`` (PPO / GRPO: one importance ratio per token) or ``sequence`` (GSPO: the geometric
            mean of a sequence's token ratios, clipped with the sequence clip range).
        sequence_clip_low: ε_low of the sequence-level ratio (GSPO's 3e-4).
        sequence_clip_high: ε_high of the sequence-level ratio (GSPO's 4e-4).
        aggregation: how per-token losses become one number: ``token_mean`` (= TRL's ``bnpo``: all
            tokens of the mini-batch), ``seq_mean_token_mean`` (= TRL's ``grpo``: each sequence's token
            mean, then the mean over sequences), ``prompt_mean`` (every prompt weighs the same),
            ``dapo`` (the token mean over all ranks' tokens of the step), ``dr_grpo`` (token sum over
            batch size × the sampler's max_new_tokens); the names ``grpo`` and ``bnpo`` are accepted too.
        kl_coef: coefficient of the k3 KL penalty to the frozen initial policy (0 = no reference model).
        kl_value_clamp: the per-token k3 KL is capped at this (the reference code caps it at 10; its log
            ratio is clamped to ±20 first, as there).
        correction: importance-sampling correction of the rollout–trainer mismatch.
    """

    clip_low: float = 0.2
    clip_high: float = 0.28
    dual_clip: float | None = None
    ratio: Literal["token", "sequence"] = "token"
    sequence_clip_low: float = 3e-4
    sequence_clip_high: float = 4e-4
    aggregation: Aggregation = "token_mean"
    kl_coef: NonNegativeFloat = 0.0
    kl_value_clamp: float = 10.0
    correction: RolloutCorrection = field(default_factory=RolloutCorrection)

    def __post_init__(self) -> None:
        if self.dual_clip is not None and not self.dual_clip > 1:
            raise GvmlitError(f"'model.loss.dual_clip' must be > 1 (or null); got {self.dual_clip}")


@dataclass(frozen=True)
class GroupSettings:
    """GRPO's groups: a prompt's n_i responses form one group of any size (docs/method.md §4).

    Attributes:
        normalize_std: divide the centred reward by the group's standard deviation (false = Dr. GRPO).
        std_eps: ε added to the standard deviation.
        singleton_groups: advantage rule for groups of size 1: ``drop`` (default), ``zero``,
            ``batch_mean``, or ``reward`` (the raw reward, as the reference code does).
        filter_zero_variance: drop all-correct and all-wrong groups from the batch (their advantages are
            all 0; they then no longer count in token-mean denominators).
        dynamic_sampling: DAPO's dynamic sampling: filter zero-variance groups, then draw further prompts
            (an epoch's worth per round, allocated as usual, ``rollout.max_rounds`` rounds at most) until
            the epoch has as many groups with a gradient as it has prompts; surplus groups are dropped, so
            the update trains on the same number of groups as the other arms. Every sample is counted.
    """

    normalize_std: bool = True
    std_eps: float = 1e-6
    singleton_groups: SingletonGroups = "drop"
    filter_zero_variance: bool = False
    dynamic_sampling: bool = False


@dataclass(frozen=True)
class EvaluationSettings:
    """Held-out evaluation, before training and after each evaluated epoch.

    Attributes:
        samples: n, sampled completions per problem for mean@n, pass@k, maj@k (0 = greedy only).
        ks: the k of pass@k and maj@k (default: 1 and n); each must be ≤ ``samples``.
        benchmark_average: with several benchmarks (records' ``meta["benchmark"]``), ``val/<metric>``
            is the mean over benchmarks (``macro``, as papers report) or over all problems (``micro``).
    """

    samples: NonNegativeInt = 4
    ks: list[int] | None = None
    benchmark_average: Literal["macro", "micro"] = "macro"

    def __post_init__(self) -> None:
        if self.ks is not None and any(not 1 <= k <= self.samples for k in self.ks):
            raise GvmlitError(f"'model.evaluation.ks' must lie in [1, evaluation.samples = {self.samples}]; got {list(self.ks)}")

    @property
    def pass_ks(self) -> list[int]:
        """The k of pass@k and maj@k: the given ones, or 1 and n."""
        return sorted(set(self.ks)) if self.ks else sorted({1, self.samples} - {0})


#: keys that were flat constructor arguments of the learners before the groups, and where they live now
MOVED_KEYS: dict[str, str] = {
    **{k: f"optim.{k}" for k in ("lr", "weight_decay", "warmup_steps", "nonfinite")},
    **{k: f"rollout.{k}" for k in ("samples_per_prompt", "acceptance_threshold", "max_fault_fraction", "grad_norm_batch_size", "logprob_batch_size")},
    "refill_rounds": "rollout.max_rounds",
    "val_samples": "evaluation.samples",
    "eval_ks": "evaluation.ks",
    "benchmark_average": "evaluation.benchmark_average",
    **{k: f"loss.{k}" for k in ("clip_low", "clip_high", "dual_clip", "aggregation", "kl_coef", "kl_value_clamp")},
    **{k: f"groups.{k}" for k in ("normalize_std", "std_eps", "singleton_groups", "filter_zero_variance", "dynamic_sampling")},
}
