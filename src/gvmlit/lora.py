"""LoRA adapters through peft: the settings a policy takes, and what training, rollouts and export need.

With ``policy.init_args.lora`` set, the policy is a ``peft`` model whose base weights are frozen and
whose adapters train (docs/scaling.md, "LoRA"):

- the optimiser gets the adapter parameters only, and single-file checkpoints hold only them (the base
  weights come from the policy loader itself: the model directory, or a tiny model's seeded
  initialisation); FSDP2's distributed checkpoints keep the frozen weights too, because Lightning's
  distributed loader asks for every weight of the module;
- the KL reference is the same model with its adapters switched off — no second copy of the weights;
- gradient norms for allocators (``param_slice``) are taken over the parameters that train, the adapters;
- an engine that holds its own weights (vLLM) receives merged weights W + (α/r)·B·A, computed out of
  place: the base weights are never modified, so they stay bit-identical however many syncs happen;
- ``gvmlit export`` writes the merged model, or with ``--adapter`` the adapter alone (peft's format).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapters (peft) on the policy: low-rank updates W + (alpha / rank)·B·A of the chosen modules.

    Attributes:
        rank: r, the rank of each update.
        alpha: α; the update is scaled by α / r.
        dropout: dropout on the adapters' input.
        target_modules: the modules that get adapters: ``all-linear`` (every linear layer but the output
            head), or names such as ``[q_proj, v_proj]``.
    """

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: list[str] | str = "all-linear"


def add_adapters(model, settings: LoraSettings):
    """``model`` wrapped by peft with fresh adapters (B = 0: the wrapped model computes what ``model`` did)."""
    from peft import LoraConfig, get_peft_model

    targets = settings.target_modules if isinstance(settings.target_modules, str) else list(settings.target_modules)
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout, target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def is_peft(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def base_name(name: str) -> str:
    """The plain model's name of a peft model's base parameter (``base_model.model.`` and ``.base_layer``
    removed)."""
    prefix = "base_model.model."
    name = name[len(prefix) :] if name.startswith(prefix) else name
    return name.replace(".base_layer.", ".")


@torch.no_grad()
def merged_state_dict(model) -> dict[str, torch.Tensor]:
    """The weights of the plain model that ``model`` (a peft model) computes: each adapted layer's
    W + ΔW, computed out of place (``model`` is left untouched), under the plain model's names."""
    from peft.tuners.lora import LoraLayer

    merged: dict[str, torch.Tensor] = {}
    adapted: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer) and module.active_adapters:
            base = module.get_base_layer()
            weight = base.weight.detach()
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    weight = weight + module.get_delta_weight(adapter).to(weight.dtype)
            adapted[base_name(f"{name}.base_layer.weight")] = weight
    for name, tensor in model.state_dict().items():
        if "lora_" in name:
            continue
        plain = base_name(name)
        merged[plain] = adapted.get(plain, tensor)
    return merged
