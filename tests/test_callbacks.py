"""RolloutLogger on its own: what an epoch's EpochRollouts and an Evaluation carry, read back from real
TensorBoard files — at the step it was collected, once, with the sample-efficiency x-axis."""

from types import SimpleNamespace

import numpy as np
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gvmlit.algorithms import EpochRollouts, Evaluation
from gvmlit.allocation import Allocation
from gvmlit.callbacks import RolloutLogger


def _events(directory):
    accumulator = EventAccumulator(str(directory), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def test_epoch_rollouts_and_evaluations_reach_tensorboard(tmp_path):
    logger = TensorBoardLogger(tmp_path, name="run", version=0)
    trainer = Trainer(logger=logger, enable_progress_bar=False, enable_checkpointing=False)
    allocation = Allocation(np.array([4, 0, 2]), acceptance_rate=np.array([0.5, 1.0, 0.25]))
    result = EpochRollouts(0, [], [], [[], [], []], allocation, step=7, metrics={"rollout/reward": 0.25, "budget/samples_generated": 6.0},
                           histograms={"allocation/samples_per_prompt": allocation.samples})  # fmt: skip
    module = SimpleNamespace(epoch_result=result, last_evaluation=None)
    callback = RolloutLogger()
    callback.on_train_batch_start(trainer, module, None, 0)
    callback.on_train_batch_start(trainer, module, None, 1)  # the same epoch's next batch: logged once only
    module.last_evaluation = Evaluation("val", step=12, samples=96, table={"val": {"problems": 8.0, "accuracy": 0.625}}, average="macro")
    callback.on_validation_end(trainer, module)
    logger.experiment.flush()
    events = _events(tmp_path / "run" / "version_0")
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert scalars["rollout/reward"] == [(7, 0.25)] and scalars["budget/samples_generated"] == [(7, 6.0)]  # the step it was collected at
    assert scalars["epoch"] == [(7, 0.0)]
    assert scalars["val/accuracy"] == [(12, 0.625)] and scalars["val/accuracy_vs_samples"] == [(96, 0.625)]
    assert events.Tags()["histograms"] == ["allocation/samples_per_prompt"]
    assert [e.histogram_value.num for e in events.Histograms("allocation/samples_per_prompt")] == [3]
    assert "allocation/samples_vs_estimated_acceptance" in events.Tags()["images"]
