"""What an epoch reports: the scalars and histograms of the README's TensorBoard table, from what the
E-step produced and what the budget counted (pure bookkeeping; the learner calls it once per epoch)."""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass

import numpy as np

from gvmlit.algorithms.epoch import EpochRollouts, Round
from gvmlit.collector import Budget
from gvmlit.groups import UsefulGroup, group_carries_gradient
from gvmlit.metrics import acceptance_rates, allocation_metrics, outcome_metrics, rollout_metrics
from gvmlit.parallel import all_gather_objects, world

log = logging.getLogger("gvmlit")


@dataclass
class EpochContext:
    """What the report needs besides the epoch itself: the epoch's budget N, the data module's prompts per
    epoch, whether pilots are kept, what makes a group useful, the budget counters (now and ``before`` the
    epoch), prompts tracked by the store, seconds spent estimating and in the whole E-step, rollouts no rank
    got (fewer than the world size)."""

    epoch_budget: int
    prompts_per_epoch: int
    keep_pilots: bool
    useful: UsefulGroup
    budget: Budget
    before: dict
    prompts_tracked: int
    estimate_seconds: float
    seconds: float
    left_out: int


def mismatch_metrics(stats: list[tuple[int, dict[str, float], int]]) -> dict:
    """Token-weighted means over all ranks of the rollout–trainer mismatch (``stats``: group, statistics,
    tokens per rollout), and per prompt (for the epoch's histograms and the mismatch-vs-allocation
    correlation)."""
    everything = [row for part in all_gather_objects(stats) for row in part if row[1]]
    tokens = sum(t for _, _, t in everything)
    if not tokens:
        return {}
    keys = everything[0][1].keys()
    metrics = {f"rollout/mismatch_{k}": sum(s[k] * t for _, s, t in everything) / tokens for k in keys if k not in ("weight_min", "weight_max")}
    if "weight_min" in keys:
        metrics["rollout/mismatch_weight_min"] = min(s["weight_min"] for _, s, _ in everything)
        metrics["rollout/mismatch_weight_max"] = max(s["weight_max"] for _, s, _ in everything)
    metrics["rollout/sampler_trainer_logprob_diff"] = metrics["rollout/mismatch_abs_logprob_diff"]
    per_prompt: dict[int, list[float]] = {}
    for group, s, t in everything:
        per_prompt.setdefault(group, [0.0, 0.0])
        per_prompt[group][0] += s["kl"] * t
        per_prompt[group][1] += t
    metrics["per_prompt_mismatch"] = {g: kl / t for g, (kl, t) in per_prompt.items()}
    return metrics


def epoch_report(result: EpochRollouts, epoch_round: Round, context: EpochContext, weighing: dict):
    """(scalars, histograms) describing the epoch."""
    budget, before = context.budget, context.before
    per_prompt_mismatch = weighing.pop("per_prompt_mismatch", None)
    spent = {p: budget.total[p].samples - before["total"][p]["samples"] for p in ("pilot", "train")}
    tokens = {p: budget.total[p].tokens - before["total"][p]["tokens"] for p in ("pilot", "train")}
    generated = spent["pilot"] + spent["train"]
    scored = epoch_round.groups if context.keep_pilots else [p + g for p, g in zip(epoch_round.pilots, epoch_round.groups)]
    accepted = [[bool(c.accepted) for c in g] for g in result.groups]
    trained = [len(g) for g in result.groups]
    metrics = {
        **rollout_metrics(result.groups, accepted),
        **outcome_metrics(scored),
        **allocation_metrics(result.allocation, trained),
        **weighing,
        "rollout/informative_sample_share": weighing.get("rollout/informative_samples", 0.0) / max(generated, 1),
        "rollout/untrained_sample_share": 1.0 - weighing.get("rollout/kept", 0.0) / max(generated, 1),
        "rollout/informative_groups": float(sum(group_carries_gradient(g, context.useful) for g in result.groups)),
        "rollout/rounds": float(result.rounds),
        "allocation/extra_prompts": float(len(result.prompts) - context.prompts_per_epoch),  # candidates and refills
        "allocation/unspent_samples": float(max(context.epoch_budget - epoch_round.spent, 0)),
        "budget/samples_generated": float(budget.training_samples),
        "budget/tokens_generated": float(budget.tokens("pilot", "train")),
        "budget/pilot_samples": float(budget.samples("pilot")),
        "budget/epoch_samples": float(generated),
        "budget/epoch_pilot_samples": float(spent["pilot"]),
        "budget/epoch_tokens": float(tokens["pilot"] + tokens["train"]),
        "allocation/prompts_tracked": float(context.prompts_tracked),
        "time/estimate_seconds": context.estimate_seconds,
        "time/rollout_seconds": context.seconds,
        "rollout/skipped_update": float(not result.rollouts),
    }
    if world()[1] > 1:
        metrics.update(distribution_metrics(result, budget, before, context.left_out))
    rates = acceptance_rates([sum(a) for a in accepted], trained)
    histograms = {
        "rollout/acceptance_rate_per_prompt": rates[np.isfinite(rates)],
        "rollout/samples_per_prompt": np.array(trained),
        "allocation/samples_per_prompt": result.allocation.samples,
        **{f"allocation/{k}": v for k, v in result.allocation.histograms.items()},
    }
    if result.allocation.acceptance_rate is not None:
        histograms["allocation/estimated_acceptance_rate"] = np.asarray(result.allocation.acceptance_rate)
    if result.allocation.grad_norm is not None:
        histograms["allocation/estimated_grad_norm"] = np.asarray(result.allocation.grad_norm)
    if per_prompt_mismatch:  # where rollout and trainer disagree, beside what the allocator gave each prompt
        groups = sorted(per_prompt_mismatch)
        kl = np.array([per_prompt_mismatch[g] for g in groups])
        histograms["allocation/mismatch_kl_per_prompt"] = kl
        if len(groups) > 2 and np.ptp(kl) > 0 and np.ptp([trained[g] for g in groups]) > 0:
            metrics["allocation/mismatch_samples_correlation"] = float(np.corrcoef(kl, [trained[g] for g in groups])[0, 1])
    return metrics, histograms


def distribution_metrics(result: EpochRollouts, budget: Budget, before: dict, left_out: int) -> dict[str, float]:
    """Per rank: samples it generated this epoch, tokens it trains on, a checksum of its n_i (a collective)."""
    generated = sum(budget.local[p].samples - before["local"][p]["samples"] for p in ("pilot", "train"))
    tokens = sum(len(r.prompt_ids) + len(r.response_ids) for r in result.rollouts)
    crc = zlib.crc32(np.asarray(result.allocation.samples, dtype=np.int64).tobytes()) % (1 << 24)  # exact in float32
    metrics = {"distributed/world_size": float(world()[1]), "distributed/dropped_for_balance": float(left_out)}
    for r, (samples, train_tokens, checksum) in enumerate(all_gather_objects((generated, tokens, crc))):
        metrics[f"distributed/rank{r}_generated_samples"] = float(samples)
        metrics[f"distributed/rank{r}_train_tokens"] = float(train_tokens)
        metrics[f"distributed/rank{r}_allocation_crc"] = float(checksum)
    return metrics


def log_epoch(result: EpochRollouts, epoch_budget: int, keep_pilots: bool) -> None:
    """The epoch's one log line: prompts, samples against the budget, acceptance, what it trains on."""
    m = result.metrics
    faults = ", ".join(f"{int(m[k])} {k.split('/')[-1]}" for k in ("verifier/timeout", "verifier/error") if m.get(k))
    pilots = int(m["budget/epoch_pilot_samples"])
    log.info(
        "epoch %d: %d prompts%s, %d samples (budget %d%s), acceptance %.3f, %s%s, %.1fs",
        result.epoch, len(result.prompts), f" in {result.rounds} rounds" if result.rounds > 1 else "", m["budget/epoch_samples"], epoch_budget,
        f" + {pilots} pilots" if not keep_pilots and pilots else f", {pilots} of them pilots" if pilots else "",
        m["rollout/acceptance_rate"],
        f"{int(m['rollout/kept'])} rollouts to train on" if result.rollouts or world()[1] > 1 else "nothing to train on: this epoch's update is skipped",
        f", verifier faults: {faults}" if faults else "", m["time/rollout_seconds"],
    )  # fmt: skip
