"""Pairs of parts that cannot work together are refused at start-up, in one line, before any model loads."""

import pytest

from helpers import ROOT, cli_error

CPU = ["--trainer.logger=false", "--trainer.enable_checkpointing=false", "--trainer.enable_progress_bar=false"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--config", "recipes/cpu/raft_uniform.yaml", "--data=gvmlit.data.DemonstrationDataModule"],
         "RAFT trains on rollouts, but data is a DemonstrationDataModule, which serves demonstrations: set data.class_path=gvmlit.data.RolloutDataModule"),
        (["--config", "recipes/cpu/sft_arith.yaml", "--data=gvmlit.data.RolloutDataModule", "--trainer.callbacks=[]"],
         "SFT trains on demonstrations, but data is a RolloutDataModule, which serves rollouts: set data.class_path=gvmlit.data.DemonstrationDataModule"),
        (["--config", "recipes/cpu/grpo_gvm.yaml", "--model.init_args.policy.init_args.lora={rank: 4}"],
         "GVMAllocator measures gradient norms on the embedding, which LoRA freezes: set its param_slice=trainable"),
        (["--config", "recipes/cpu/grpo_uniform.yaml", "--model.init_args.rollout.samples_per_prompt=1"],
         "GRPO needs groups of 2 samples or more"),
        (["--config", "recipes/cpu/grpo_uniform.yaml", "--model.init_args.evaluation.ks=[1,8]"],
         "'model.evaluation.ks' must lie in [1, evaluation.samples = 4]; got [1, 8]"),
        (["--config", "recipes/cpu/grpo_uniform.yaml", "--model.init_args.optim.lr=-1e-4"],
         "'model.optim.lr' must be > 0; got -0.0001"),
    ],
    ids=["rollout-learner-with-demonstrations", "sft-with-rollouts", "lora-with-embedding-gradnorms", "grpo-singletons", "ks", "lr"],
)
def test_what_cannot_work_is_refused_in_one_line(args, expected, tmp_path):
    line = cli_error("fit", *args, *CPU, f"--trainer.default_root_dir={tmp_path}", cwd=ROOT)
    assert expected in line, line
