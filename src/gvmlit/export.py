"""Export the policy as a plain Hugging Face model directory (``save_pretrained``).

Two ways in:

- at the end of ``fit``, the :class:`gvmlit.callbacks.ExportPolicy` callback (gathers sharded weights);
- from any checkpoint, one command: ``gvmlit export CHECKPOINT OUTPUT_DIR``. Checkpoints carry the
  model's config and the tokenizer's files (``on_save_checkpoint``), so exporting needs neither the
  recipe nor the original model directory. Both single-file checkpoints and FSDP2's distributed ones
  (a directory with one shard per rank and ``meta.pt``) are read, on one process, without a GPU.

A LoRA checkpoint holds only the adapters: export rebuilds the base model from the policy the checkpoint
names (its model directory, or a tiny model's seeded initialisation), loads the adapters and writes the
merged model — or, with ``--adapter``, the adapter alone in peft's format (``PeftModel.from_pretrained``).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from gvmlit.checkpoints import load_checkpoint_file
from gvmlit.errors import GvmlitError
from gvmlit.parallel import full_state_dict, is_sharded, world

log = logging.getLogger("gvmlit")

#: prefix of the policy's parameters in the LightningModule's state dict (``RolloutAlgorithm.model``)
PREFIX = "model."
#: name of the metadata file of a distributed checkpoint (Lightning's ``_METADATA_FILENAME``)
METADATA = "meta.pt"


def describe_policy(model: PreTrainedModel, tokenizer) -> dict:
    """What a checkpoint needs to be exported alone: the model config and the tokenizer's files."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        files = {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}
    return {"config": model.config.to_dict(), "tokenizer_files": files}


def plain_model(config: dict | object, dtype: torch.dtype | None = None) -> PreTrainedModel:
    """A fresh, unsharded causal LM of the given config (a dict from ``describe_policy`` or a config)."""
    if isinstance(config, dict):
        config = dict(config)
        config = AutoConfig.for_model(config.pop("model_type"), **config)
    model = AutoModelForCausalLM.from_config(config)
    return model.to(dtype) if dtype is not None else model


def save_policy(model: PreTrainedModel, tokenizer, path: str | Path) -> None:
    """``save_pretrained`` the policy and tokenizer into ``path``. A collective when the model is
    sharded (every rank calls it; rank 0 writes)."""
    if is_sharded(model):  # gather the shards on rank 0 into a plain model of the same config
        weights = full_state_dict(model, rank0_only=True)
        if world()[0] == 0:
            model = plain_model(model.config, next(iter(weights.values())).dtype)
            model.load_state_dict(weights)
    if world()[0] == 0:
        Path(path).mkdir(parents=True, exist_ok=True)
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        _readable_by_all(Path(path))


def _read_metadata(checkpoint: Path) -> dict:
    """The checkpoint file (or a distributed checkpoint's metadata), loaded weights-only: a checkpoint
    someone sent you cannot run code on this machine (gvmlit writes nothing a safe load refuses)."""
    file = checkpoint / METADATA if checkpoint.is_dir() else checkpoint
    if not file.is_file():
        raise GvmlitError(f"{checkpoint} is not a gvmlit checkpoint (no {file.name})")
    return load_checkpoint_file(file)


def load_policy_weights(checkpoint: Path, model: PreTrainedModel, loaded: dict | None = None, adapters_only: bool = False) -> None:
    """Load the policy weights of a Lightning checkpoint (file or distributed directory) into ``model``;
    ``loaded``: the checkpoint file's contents when the caller has already read it; ``adapters_only``: a
    LoRA checkpoint, whose base weights ``model`` already holds."""
    if checkpoint.is_dir():
        import torch.distributed.checkpoint as dcp

        stored = dcp.FileSystemReader(str(checkpoint)).read_metadata().state_dict_metadata
        key = next((k for k in stored if k.startswith("state_dict." + PREFIX)), None)
        if key is not None:  # keep the dtype the weights were trained in
            model.to(stored[key].properties.dtype)
        wanted = {"state_dict": {PREFIX + k: v for k, v in model.state_dict().items() if not adapters_only or "lora_" in k}}
        dcp.load(wanted, checkpoint_id=str(checkpoint), no_dist=True)
        weights = {k[len(PREFIX) :]: v for k, v in wanted["state_dict"].items()}
    else:
        if loaded is None:
            loaded = load_checkpoint_file(checkpoint)
        state = loaded["state_dict"]
        weights = {k[len(PREFIX) :]: v for k, v in state.items() if k.startswith(PREFIX)}
        if weights and not adapters_only:
            model.to(next(iter(weights.values())).dtype)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if adapters_only:
        missing = [k for k in missing if "lora_" in k]
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise GvmlitError(f"{checkpoint}: policy weights do not match its config (missing {missing}, unexpected {unexpected})")


def policy_loader(description: dict):
    """The policy loader a checkpoint names (``class_path`` / ``init_args``, as ``describe_component`` wrote)."""
    import importlib

    from gvmlit.lora import LoraSettings

    module, _, name = description["class_path"].rpartition(".")
    args = dict(description["init_args"])
    if args.get("lora") is not None:
        args["lora"] = LoraSettings(**args["lora"])
    return getattr(importlib.import_module(module), name)(**args)


def export_checkpoint(checkpoint: str | Path, output_dir: str | Path, adapter_only: bool = False, overwrite: bool = False) -> Path:
    """Write the policy of ``checkpoint`` as a Hugging Face directory that ``from_pretrained`` loads (a LoRA
    policy merged, or its adapter alone with ``adapter_only``). A directory that already holds files is
    refused unless ``overwrite``: an export must not silently replace someone's ``config.json``."""
    checkpoint, output_dir = Path(checkpoint), Path(output_dir)
    if not checkpoint.exists():
        raise GvmlitError(f"checkpoint {checkpoint} not found")
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())) and not overwrite:
        held = "is a file" if not output_dir.is_dir() else f"already holds {', '.join(sorted(p.name for p in output_dir.iterdir())[:4])}"
        raise GvmlitError(f"export: {output_dir} {held}; choose an empty or new directory, or add --overwrite to replace what is there")
    meta = _read_metadata(checkpoint)
    state = meta.get("gvmlit") or {}
    description = state.get("export")
    if description is None:
        raise GvmlitError(f"{checkpoint} has no policy description (written by a gvmlit older than export); re-save it")
    lora = ((state.get("policy") or {}).get("init_args") or {}).get("lora")
    if adapter_only and lora is None:
        raise GvmlitError(f"--adapter: {checkpoint} was trained without LoRA adapters (policy.lora); export the whole model instead")
    if lora is not None:
        from gvmlit.lora import is_peft

        model, _ = policy_loader(state["policy"]).load()  # the base weights and fresh adapters
        if not is_peft(model):
            raise GvmlitError(f"{checkpoint}: its policy should carry LoRA adapters but does not")
        load_policy_weights(checkpoint, model, loaded=None if checkpoint.is_dir() else meta, adapters_only=True)
        model = model if adapter_only else model.merge_and_unload()
    else:
        model = plain_model(description["config"])
        load_policy_weights(checkpoint, model, loaded=None if checkpoint.is_dir() else meta)  # a file is read once
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(output_dir)
        for name, content in description["tokenizer_files"].items():
            (output_dir / name).write_bytes(content)
    except OSError as err:
        raise GvmlitError(f"export: cannot write {err.filename or output_dir}: {err.strerror or err} (check OUTPUT_DIR)") from None
    _readable_by_all(output_dir)
    AutoTokenizer.from_pretrained(output_dir)  # the directory must load as it will be used
    return output_dir


def _readable_by_all(directory: Path) -> None:
    """Give exported files the usual permissions (0644 under the default umask); some writers create
    them 0600, which other users and serving containers then cannot read."""
    umask = os.umask(0)
    os.umask(umask)
    for path in directory.iterdir():
        if path.is_file():
            path.chmod(0o666 & ~umask)


def main(args: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="gvmlit export",
        description="Write the policy of a gvmlit checkpoint (a file, or an FSDP2 checkpoint directory) as a "
        "Hugging Face model directory that AutoModelForCausalLM/AutoTokenizer.from_pretrained load.",
    )
    parser.add_argument("checkpoint", help="e.g. runs/grpo_gvm/last.ckpt (the newest run's) or runs/grpo_gvm/version_0/checkpoints/last.ckpt")
    parser.add_argument("output_dir", help="directory to write config.json, the weights and the tokenizer into")
    parser.add_argument("--adapter", action="store_true", help="a LoRA run: write the adapter alone (peft's format), not the merged model")
    parser.add_argument("--overwrite", action="store_true", help="write into OUTPUT_DIR even if it already holds files (they may be replaced)")
    parsed = parser.parse_args(args)
    path = export_checkpoint(parsed.checkpoint, parsed.output_dir, adapter_only=parsed.adapter, overwrite=parsed.overwrite)
    print(f"exported {parsed.checkpoint} → {path}")
