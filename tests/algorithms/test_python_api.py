"""gvmlit from Python with a plain ``lightning.Trainer`` and its default arguments — dataloader reloading
off, Lightning's distributed sampler on, its sanity check on: fresh rollouts every epoch, exact resume,
on one process and on two (gloo)."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything

from helpers import ROOT, small_data, small_learner


class ServedBatches(Callback):
    """What the data module's loader served each epoch (the learner's rollouts, as tensors)."""

    def __init__(self):
        self.seen = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        rows = [tuple(row[mask].tolist()) for row, mask in zip(batch["input_ids"], batch["attention_mask"].bool())]
        self.seen.setdefault(trainer.current_epoch, set()).update(rows)


def _fit(tmp_path, epochs, ckpt_path=None):
    seed_everything(11)
    served = ServedBatches()
    trainer = Trainer(max_epochs=epochs, default_root_dir=tmp_path, callbacks=[served], enable_progress_bar=False, enable_model_summary=False)
    learner = small_learner()
    trainer.fit(learner, datamodule=small_data(), ckpt_path=ckpt_path)
    return trainer, learner, served


def test_a_plain_trainer_trains_on_fresh_rollouts_every_epoch_and_resumes_exactly(tmp_path):
    trainer, straight, served = _fit(tmp_path / "straight", 3)
    assert sorted(served.seen) == [0, 1, 2]
    assert len(served.seen[0] | served.seen[1] | served.seen[2]) == sum(len(s) for s in served.seen.values())  # three distinct sets
    assert straight.budget.samples("train") == 3 * 8 * 2  # 8 prompts × 2 samples, every epoch sampled anew
    # stop after 2 epochs (Lightning's own ModelCheckpoint, default settings), then resume to 3
    first, _, _ = _fit(tmp_path / "resumed", 2)
    checkpoint = first.checkpoint_callback.best_model_path
    _, resumed, served_after = _fit(tmp_path / "resumed", 3, ckpt_path=checkpoint)
    assert sorted(served_after.seen) == [2] and served_after.seen[2] == served.seen[2]  # the same rollouts as the straight run
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert resumed.budget.state_dict() == straight.budget.state_dict() and resumed.store.state_dict() == straight.store.state_dict()


SCRIPT = """
import json, sys
import torch
from lightning.pytorch import Callback, Trainer, seed_everything
sys.path.insert(0, {tests!r})
from helpers import small_data, small_learner

class Served(Callback):
    def __init__(self):
        self.seen = {{}}
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        rows = [row[mask].tolist() for row, mask in zip(batch["input_ids"], batch["attention_mask"].bool())]
        self.seen.setdefault(trainer.current_epoch, []).extend(rows)

if __name__ == "__main__":
    epochs, root, ckpt, out = int(sys.argv[1]), sys.argv[2], sys.argv[3] or None, sys.argv[4]
    seed_everything(5)
    served = Served()
    trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=epochs, default_root_dir=root, callbacks=[served],
                      enable_progress_bar=False, enable_model_summary=False)
    learner = small_learner()
    trainer.fit(learner, datamodule=small_data(), ckpt_path=ckpt)
    rank = trainer.global_rank
    weights = {{k: v.sum().item() for k, v in learner.model.state_dict().items()}}
    result = {{"seen": {{str(k): v for k, v in served.seen.items()}}, "weights": weights, "budget": learner.budget.state_dict(),
               "checkpoint": trainer.checkpoint_callback.best_model_path}}
    json.dump(result, open(f"{{out}}.rank{{rank}}.json", "w"))
"""


def _ddp(tmp_path, name, epochs, ckpt=""):
    import json

    script = tmp_path / "train_ddp.py"
    script.write_text(textwrap.dedent(SCRIPT.format(tests=str(ROOT / "tests"))))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    out = tmp_path / name
    proc = subprocess.run([sys.executable, str(script), str(epochs), str(tmp_path / name), ckpt, str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads((tmp_path / f"{name}.rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.slow
def test_two_processes_with_a_plain_trainer_split_fresh_rollouts_and_resume_exactly(tmp_path):
    straight = _ddp(tmp_path, "straight", 3)
    for rank in straight:  # every epoch's rollouts are new, and each rank serves its own share
        assert sorted(rank["seen"]) == ["0", "1", "2"]
        epochs = [set(map(tuple, rank["seen"][e])) for e in ("0", "1", "2")]
        assert not (epochs[0] & epochs[1]) and not (epochs[1] & epochs[2]) and not (epochs[0] & epochs[2])
    assert not set(map(tuple, straight[0]["seen"]["0"])) & set(map(tuple, straight[1]["seen"]["0"]))  # no rollout on both ranks
    assert straight[0]["weights"] == straight[1]["weights"]  # data-parallel: one model
    first = _ddp(tmp_path, "first", 2)
    resumed = _ddp(tmp_path, "resumed", 3, ckpt=first[0]["checkpoint"])
    for r in (0, 1):
        assert resumed[r]["seen"] == {"2": straight[r]["seen"]["2"]}
        assert resumed[r]["weights"] == pytest.approx(straight[r]["weights"], rel=1e-6, abs=1e-6)
        assert resumed[r]["budget"]["total"] == straight[r]["budget"]["total"]
