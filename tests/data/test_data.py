"""Prompt sources, collate alignment and the RolloutDataModule with the real Lightning Trainer."""

import json

import pytest
import torch
from lightning.pytorch import Trainer

from gvmlit.algorithms import RAFT, RolloutSettings
from gvmlit.collate import collate_rollouts
from gvmlit.data import ArithmeticTask, JsonlPrompts, RolloutDataModule
from gvmlit.data.buffer import EpochBuffer
from gvmlit.errors import GvmlitError
from gvmlit.records import PromptRecord, Rollout
from gvmlit.policy import TinyCharPolicy, char_tokenizer
from gvmlit.sampling import HFSampler
from gvmlit.verifiers import ArithmeticVerifier


def test_arithmetic_task_is_deterministic_graded_and_disjoint():
    a, b = ArithmeticTask(num_train=300, num_val=30, seed=3), ArithmeticTask(num_train=300, num_val=30, seed=3)
    assert [r.problem for r in a.records("train")] == [r.problem for r in b.records("train")]
    train = {r.problem for r in a.records("train")}
    assert not train & {r.problem for r in a.records("val")}
    assert len(train) == 300
    for r in a.records("train"):
        assert eval(r.problem) == int(r.answer)  # noqa: S307 — our own generated arithmetic
        assert r.meta["solution"].endswith(f"#### {r.answer}")
    assert {r.meta["level"] for r in a.records("train")} == set(range(1, 7))
    assert ArithmeticTask(num_train=300, num_val=30, seed=4).records("train")[5].problem != a.records("train")[5].problem


def test_arithmetic_task_skips_exhausted_levels():
    # only 100 one-digit pairs exist: the other levels fill the rest
    task = ArithmeticTask(num_train=500, num_val=0, levels=[(2, 1), (2, 2)])
    levels = [r.meta["level"] for r in task.records("train")]
    assert levels.count(1) == 100 and len(set(r.problem for r in task.records("train"))) == 500


def test_jsonl_rows_without_answer_name_file_and_row(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"problem": "1+1", "answer": "2"}) + "\n" + json.dumps({"problem": "2+2"}) + "\n")
    with pytest.raises(GvmlitError, match=r"prompts.jsonl:2: row has no 'answer' \(keys present: problem\)"):
        JsonlPrompts(str(path)).records("train")
    path.write_text('{"problem": "1+1", "answer": "2"}\n{not json\n')
    with pytest.raises(GvmlitError, match=r"prompts.jsonl:2: not valid JSON"):
        JsonlPrompts(str(path)).records("train")
    with pytest.raises(GvmlitError, match="does not exist"):
        JsonlPrompts(str(tmp_path / "missing.jsonl")).records("train")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(GvmlitError, match="holds no rows"):
        JsonlPrompts(str(tmp_path / "empty.jsonl")).records("train")


def test_collate_aligns_response_mask_and_logprobs():
    items = [Rollout([1, 2], [3, 4, 5], 1.0, 1.0, 0, [-0.1, -0.2, -0.3]), Rollout([6], [7], 0.0, -1.0, 1, [-0.5])]
    batch = collate_rollouts(items, pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5], [6, 7, 0, 0, 0]]
    # targets are input_ids[:, 1:] = [[2,3,4,5],[7,0,0,0]]: the response tokens 3,4,5 and 7
    assert batch["response_mask"].tolist() == [[False, True, True, True], [True, False, False, False]]
    assert batch["sampler_logprobs"][0].tolist() == pytest.approx([0.0, -0.1, -0.2, -0.3])
    assert batch["advantages"].tolist() == [1.0, -1.0] and batch["group_ids"].tolist() == [0, 1]


class _Recorder(RAFT):
    """RAFT that records the rollouts it is served (for the data-module test only)."""

    def training_step(self, batch, batch_idx):
        self.seen.setdefault(self.current_epoch, []).extend(map(tuple, batch["input_ids"].tolist()))
        return super().training_step(batch, batch_idx)


def _datamodule(**overrides):
    kwargs = dict(source=ArithmeticTask(num_train=64, num_val=8, seed=1), prompts_per_epoch=8, batch_size=8, prompt_template="{problem}=")
    kwargs.update(overrides)
    return RolloutDataModule(**kwargs)


def test_datamodule_serves_fresh_rollouts_every_epoch(tmp_path):
    torch.manual_seed(0)
    module = _Recorder(
        policy=TinyCharPolicy(hidden_size=32, num_layers=1, num_heads=2, max_length=64), keep_rejected=True,
        sampler=HFSampler(max_new_tokens=16, progress=False), verifier=ArithmeticVerifier(progress=False),
        rollout=RolloutSettings(samples_per_prompt=3),
    )  # fmt: skip
    module.seen = {}
    data = _datamodule()
    trainer = Trainer(
        max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False, limit_val_batches=0, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, datamodule=data)
    assert set(module.seen) == {0, 1}
    assert len(module.seen[0]) == len(module.seen[1]) == 8 * 3  # keep_rejected: every sample is served
    assert module.seen[0] != module.seen[1]  # new prompts and new samples from the updated policy
    prompts_0, prompts_1 = data.epoch_prompts(0), data.epoch_prompts(1)
    assert {p.record.uid for p in prompts_0}.isdisjoint(p.record.uid for p in prompts_1)
    assert module.budget.samples("train") == 2 * 8 * 3 and module.budget.samples("pilot", "eval") == 0
    assert module.budget.tokens("train") > 0


def test_epoch_prompts_cycle_through_the_whole_split():
    data = _datamodule(source=ArithmeticTask(num_train=20, num_val=0), prompts_per_epoch=8)
    data.connect(char_tokenizer(), chat_template=False, max_prompt_tokens=100, buffer=EpochBuffer())  # no model needed
    uids = [p.record.uid for e in range(5) for p in data.epoch_prompts(e)]
    assert set(uids[:16]) | set(uids[16:20]) == {r.uid for r in data.source.records("train")}  # first pass covers all 20
    assert len(set(uids[:20])) == 20


def test_unknown_characters_in_a_prompt_are_an_error(tiny_policy):
    _, tokenizer = tiny_policy
    data = _datamodule()
    data.connect(tokenizer, chat_template=False, max_prompt_tokens=100, buffer=EpochBuffer())
    with pytest.raises(GvmlitError, match=r"prompt row-7 has characters the tokenizer does not know .*'x\^2="):
        data.encode(PromptRecord("p", "x^2", "4", {"source": "row-7"}))
