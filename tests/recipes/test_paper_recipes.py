"""The paper-scale GPU recipes parse and instantiate on CPU with the model swapped for a tiny local one."""

import pytest
import torch

from gvmlit.algorithms import GRPO, RAFT
from gvmlit.allocation import GVMAllocator, UniformAllocator
from gvmlit.cli import GVMLitCLI
from gvmlit.data import BenchmarkFiles, HFDatasetPrompts
from gvmlit.sampling import VLLMSampler
from gvmlit.verifiers import MathVerifier
from helpers import ROOT

TINY = [
    "--trainer.accelerator=cpu",
    "--trainer.precision=32-true",
    "--model.init_args.policy.init_args.name_or_path=models/arith-sft",
    "--model.init_args.policy.init_args.dtype=float32",
    "--model.init_args.policy.init_args.chat_template=false",
    "--trainer.logger=false",
]


@pytest.mark.parametrize(
    ("recipe", "algorithm", "allocator"),
    [
        ("recipes/grpo_gvm.yaml", GRPO, GVMAllocator),
        ("recipes/grpo_uniform.yaml", GRPO, UniformAllocator),
        ("recipes/raftpp_gvm.yaml", RAFT, GVMAllocator),
        ("recipes/raftpp_uniform.yaml", RAFT, UniformAllocator),
    ],
)
def test_paper_recipe_instantiates_with_a_tiny_model(recipe, algorithm, allocator, monkeypatch):
    monkeypatch.chdir(ROOT)
    cli = GVMLitCLI(args=["--config", recipe, *TINY], run=False)
    model, data = cli.model, cli.datamodule
    assert isinstance(model, algorithm) and model.optim.lr == 1e-6 and model.loss.kl_coef == 1e-3
    assert (model.loss.clip_low, model.loss.clip_high) == (0.2, 0.2)
    assert model.correction == "off"  # paper parity: the reference code corrects nothing
    if algorithm is RAFT:
        assert model.variant == "raft++"
    assert isinstance(model.allocator, allocator)
    if allocator is GVMAllocator:
        assert model.allocator.pilot_samples == 8 and model.allocator.alpha == 1e-3 and model.allocator.beta == 2.0
    assert data.prompts_per_epoch == 1024 and model.rollout.samples_per_prompt == 8
    assert isinstance(model.sampler, VLLMSampler) and model.sampler.max_new_tokens == 3072 and model.sampler.temperature == 1.0
    assert isinstance(model.verifier, MathVerifier)
    assert isinstance(data.source, HFDatasetPrompts) and data.source.path == "AI-MO/NuminaMath-CoT"
    assert isinstance(data.eval_source, BenchmarkFiles) and len(data.eval_source.files) == 5
    assert "Please reason step by step" in data.system_prompt
    assert cli.trainer.accumulate_grad_batches * data.batch_size == 256 * 8
    model.configure_model()  # the tiny local policy really loads
    assert model.model.config.hidden_size == 128


def test_vllm_sampler_without_vllm_says_how_to_install(tiny_policy):
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vllm is installed here")
    model, tokenizer = tiny_policy
    from gvmlit.errors import GvmlitError

    with pytest.raises(GvmlitError, match=r"VLLMSampler needs vLLM, which is not installed: pip install 'gvmlit\[vllm\]'"):
        VLLMSampler().generate(model, tokenizer, [[5, 6]], [1])


def test_eight_gpu_recipe_shards_with_fsdp2_and_keeps_the_global_batch(monkeypatch):
    from gvmlit.parallel import FSDP2Strategy

    monkeypatch.chdir(ROOT)
    tiny = [a for a in TINY if "precision" not in a and "dtype" not in a]
    cli = GVMLitCLI(args=["--config", "recipes/grpo_gvm_8gpu.yaml", *tiny, "--trainer.devices=8"], run=False)
    trainer, data = cli.trainer, cli.datamodule
    strategy = trainer.strategy
    assert isinstance(strategy, FSDP2Strategy)
    assert (strategy.param_dtype, strategy.reduce_dtype) == (torch.bfloat16, torch.float32)
    assert trainer.precision == "32-true" and cli.model.policy.dtype == "float32" and cli.model.policy.gradient_checkpointing
    # 2048 samples per optimiser step over 8 ranks, as in the one-GPU recipe
    assert trainer.num_devices * trainer.accumulate_grad_batches * data.batch_size == 256 * 8
    assert isinstance(cli.model.sampler, VLLMSampler) and data.prompts_per_epoch == 1024


@pytest.mark.parametrize("recipe", ["raftpp_gvm", "raftpp_uniform", "grpo_gvm", "grpo_uniform", "grpo_gvm_8gpu"])
def test_paper_recipes_train_as_the_reference_code(recipe, monkeypatch):
    """The paper recipes' learner settings are the reference presets (configs/learner/*_reference.yaml)."""
    import yaml

    monkeypatch.chdir(ROOT)
    preset = yaml.safe_load((ROOT / "configs" / "learner" / f"{recipe.split('_')[0]}_reference.yaml").read_text())["model"]
    cli = GVMLitCLI(args=["--config", f"recipes/{recipe}.yaml", *TINY, "--trainer.devices=1"], run=False)
    assert type(cli.model).__name__ == preset["class_path"].rsplit(".", 1)[1]
    for key, value in preset["init_args"].items():
        if isinstance(value, dict):  # a settings group: every key the preset sets, nested groups included
            for field, setting in value.items():
                got = getattr(getattr(cli.model, key), field)
                if isinstance(setting, dict):
                    assert {k: getattr(got, k) for k in setting} == setting, f"{key}.{field}"
                else:
                    assert got == setting, f"{key}.{field}"
        elif key not in ("policy", "sampler", "verifier"):
            assert getattr(cli.model, key) == value, key
    if "8gpu" not in recipe:  # sharding needs the launched processes
        cli.model.configure_model()
        assert cli.model._reference  # the KL reference is loaded
