"""The epoch's E-step on its own (RolloutAlgorithm.collect_epoch): candidates, staged pilots, rounds of
refills, the budget never exceeded and every sample counted — with an allocator that scripts each answer."""

import numpy as np
import pytest
from lightning.pytorch import Trainer

from gvmlit.algorithms import RolloutSettings
from gvmlit.allocation import Allocation, BudgetAllocator
from gvmlit.errors import GvmlitError
from helpers import small_data, small_learner


class Scripted(BudgetAllocator):
    """12 candidates for 8 prompts; pilots: 1 each, then 1 more for the first three; round 0 gives 1 sample to
    the first 8 prompts and asks for 3 more prompts; round 1 spends what is left on them."""

    def __init__(self):
        self.pilot_requests, self.requests = [], []

    def candidates(self, prompts_per_epoch):
        return prompts_per_epoch + 4

    def plan_pilots(self, request):
        self.pilot_requests.append(request)
        if request.round > 0 or request.stage > 1:
            return [0] * len(request.prompts)
        return [1] * len(request.prompts) if request.stage == 0 else [1, 1, 1] + [0] * (len(request.prompts) - 3)

    def allocate(self, request):
        self.requests.append(request)
        if request.round == 0:
            return Allocation(np.array([1] * 8 + [0] * 4), refill=3)
        return Allocation(np.full(len(request.prompts), self.main_budget(request) // len(request.prompts)), refill=2)


class Greedy(BudgetAllocator):
    def allocate(self, request):
        return Allocation(np.full(len(request.prompts), 100))


def _fit(allocator, tmp_path):
    learner = small_learner(allocator=allocator, rollout=RolloutSettings(samples_per_prompt=4))
    data = small_data()
    Trainer(max_epochs=1, limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=tmp_path).fit(learner, datamodule=data)  # fmt: skip
    return learner, data


def test_rounds_of_candidates_staged_pilots_and_refills_stay_within_the_budget(tmp_path):
    allocator = Scripted()
    learner, data = _fit(allocator, tmp_path)
    result = learner.epoch_result
    first, second = allocator.requests
    # round 0: the epoch's 8 prompts and 4 candidates from the data module's own stream, pilots in two stages
    own = data.epoch_prompts(0)
    assert [p.uid for p in first.prompts] == [p.record.uid for p in own + data.more_prompts(0, 0, 4, exclude={p.record.uid for p in own})]
    assert len({p.uid for p in first.prompts}) == 12  # candidates are never the epoch's own prompts again
    assert [r.stage for r in allocator.pilot_requests[:3]] == [0, 1, 2] and allocator.pilot_requests[1].pilot_counts.tolist() == [1] * 12
    assert first.pilot_counts.tolist() == [2, 2, 2] + [1] * 9 and first.budget == 32 and allocator.main_budget(first) == 32 - 15
    assert len(learner.store.history(first.prompts[0].uid).in_epoch(0, "pilot")) == 2  # one visit per stage
    # round 1: 3 refill prompts from the round's own stream, paid from what is left: 32 − 15 pilots − 8 samples
    assert [p.uid for p in second.prompts] == [p.record.uid for p in data.more_prompts(0, 1, 3, exclude={p.uid for p in first.prompts})]
    assert not {p.uid for p in second.prompts} & {p.uid for p in first.prompts}
    assert (second.round, second.budget, second.sampled_prompts, second.epoch_budget) == (1, 9, 8, 32)
    assert result.rounds == 2  # nothing left for the third round the allocator asked for
    assert [len(g) for g in result.groups] == [3, 3, 3] + [2] * 5 + [1] * 4 + [3, 3, 3]  # kept pilots + main draws
    assert learner.budget.samples("pilot") == 15 and learner.budget.samples("train") == 17 and learner.budget.training_samples == 32
    assert result.metrics["allocation/extra_prompts"] == 7 and result.metrics["allocation/unspent_samples"] == 0
    assert result.metrics["budget/epoch_samples"] == 32 and result.metrics["rollout/rounds"] == 2


def test_an_allocation_above_its_budget_is_refused_in_one_line(tmp_path):
    with pytest.raises(GvmlitError, match=r"Greedy returned an invalid allocation \(shape \(8,\), sum 800, refill 0\).*at most the budget 32"):
        _fit(Greedy(), tmp_path)
