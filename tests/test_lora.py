"""LoRA through peft: only the adapters train and are checkpointed, resume is exact, the KL reference is the
base model with the adapters off (no copy), gradient norms use the adapters, the base weights never move
however often merged weights are handed to an engine, and export writes the merged model or the adapter."""

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from gvmlit.algorithms import GRPO, LossSettings, Optimization
from gvmlit.allocation.gradnorm import grad_norm_one_at_a_time, grad_norms_of_rollouts
from gvmlit.lora import LoraSettings, merged_state_dict
from gvmlit.policy import PretrainedPolicy
from gvmlit.records import Rollout
from helpers import SFT_POLICY, small_data, small_learner

LORA = LoraSettings(rank=4, alpha=8.0)


def _lora_learner(**kwargs):
    learner = small_learner(GRPO, samples_per_prompt=4, optim=Optimization(lr=1e-2), **kwargs)
    learner.policy = PretrainedPolicy(str(SFT_POLICY), lora=LORA)
    return learner


def _fit(tmp_path, learner, epochs, ckpt_path=None):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    torch.manual_seed(0)
    Trainer(max_epochs=epochs, limit_val_batches=0, logger=False, callbacks=[checkpoint], enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=tmp_path).fit(learner, datamodule=small_data(), ckpt_path=ckpt_path)  # fmt: skip
    return checkpoint


def test_only_adapters_train_and_are_checkpointed_and_resume_is_exact(tmp_path):
    base = {k: v.clone() for k, v in PretrainedPolicy(str(SFT_POLICY)).load()[0].state_dict().items()}
    straight = _lora_learner(loss=LossSettings(kl_coef=0.05))
    _fit(tmp_path / "a", straight, 2)
    trainable = [n for n, p in straight.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert not straight._reference  # the KL reference is the base model itself, adapters switched off
    frozen = {k.replace("base_model.model.", "").replace(".base_layer", ""): v for k, v in straight.model.state_dict().items() if "lora_" not in k}
    assert all(torch.equal(frozen[k], base[k]) for k in base)  # π0's weights never moved
    assert any(not torch.equal(p, torch.zeros_like(p)) for n, p in straight.model.named_parameters() if "lora_B" in n)  # the adapters did
    checkpoint = _fit(tmp_path / "b", _lora_learner(loss=LossSettings(kl_coef=0.05)), 1)
    saved = torch.load(checkpoint.last_model_path, weights_only=True)
    assert saved["state_dict"] and all("lora_" in k for k in saved["state_dict"] if k.startswith("model."))
    resumed = _lora_learner(loss=LossSettings(kl_coef=0.05))
    _fit(tmp_path / "b", resumed, 2, ckpt_path=checkpoint.last_model_path)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_the_kl_reference_is_the_base_model_with_adapters_off(tmp_path):
    learner = _lora_learner(loss=LossSettings(kl_coef=0.1))
    _fit(tmp_path, learner, 1)
    plain = PretrainedPolicy(str(SFT_POLICY)).load()[0].eval()
    ids = torch.tensor([[3, 5, 9, 4, 2, 7]])
    with torch.no_grad(), learner.reference_policy() as reference:
        assert torch.allclose(reference(input_ids=ids).logits, plain(input_ids=ids).logits, atol=1e-6)
    with torch.no_grad():
        assert not torch.allclose(learner.model(input_ids=ids).logits, plain(input_ids=ids).logits, atol=1e-4)  # the adapters are back on


def test_gradient_norms_of_the_adapters_equal_one_backward_per_sample():
    model, tokenizer = PretrainedPolicy(str(SFT_POLICY), lora=LORA).load()
    for name, p in model.named_parameters():  # adapters away from their zero start, so every path carries gradient
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    rollouts = [Rollout(tokenizer("12+30=")["input_ids"], tokenizer("42;#### 42", add_special_tokens=False)["input_ids"], 1.0, 1.0, 0),
                Rollout(tokenizer("7+8+9=")["input_ids"], tokenizer("15+9;24;#### 24", add_special_tokens=False)["input_ids"], 1.0, 1.0, 1)]  # fmt: skip
    batched = grad_norms_of_rollouts(model, rollouts, tokenizer.pad_token_id, "trainable")
    model.eval()
    one_by_one = [grad_norm_one_at_a_time(model, r, tokenizer.pad_token_id, "trainable") for r in rollouts]
    assert batched.tolist() == pytest.approx(one_by_one, rel=1e-4) and min(one_by_one) > 0


def test_merged_weights_for_engines_leave_the_base_bit_identical():
    model, _ = PretrainedPolicy(str(SFT_POLICY), lora=LORA).load()
    for name, p in model.named_parameters():
        if "lora_" in name:
            torch.nn.init.normal_(p, std=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(200):  # a long run's worth of weight syncs
        merged = merged_state_dict(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # bit-identical, adapters included
    expected = {k: v for k, v in model.merge_and_unload().state_dict().items()}  # peft's own merge (on the model, last)
    assert set(merged) == set(expected)
    assert all(torch.allclose(merged[k], expected[k], atol=1e-6) for k in expected)


def test_export_writes_the_merged_model_or_the_adapter(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from gvmlit.export import export_checkpoint

    learner = _lora_learner()
    checkpoint = _fit(tmp_path, learner, 1)
    merged = AutoModelForCausalLM.from_pretrained(export_checkpoint(checkpoint.last_model_path, tmp_path / "merged")).eval()
    adapter_dir = export_checkpoint(checkpoint.last_model_path, tmp_path / "adapter", adapter_only=True)
    assert (adapter_dir / "adapter_config.json").is_file()
    adapted = PeftModel.from_pretrained(PretrainedPolicy(str(SFT_POLICY)).load()[0], adapter_dir).eval()
    learner.model.eval()
    ids = torch.tensor([[3, 5, 9, 4, 2, 7]])
    with torch.no_grad():
        trained = learner.model(input_ids=ids).logits
        assert torch.allclose(merged(input_ids=ids).logits, trained, atol=1e-5)
        assert torch.allclose(adapted(input_ids=ids).logits, trained, atol=1e-5)
