"""Policies: load a `transformers` causal LM and its tokenizer, or build a tiny one from a config.

A *policy loader* is a small config object (chosen in YAML by ``class_path``) whose ``load()`` returns
``(model, tokenizer)``. Two exist:

- :class:`PretrainedPolicy` — any causal LM and tokenizer by Hub name or local directory
  (``AutoModelForCausalLM``), with dtype, gradient checkpointing and chat-template switches.
- :class:`TinyCharPolicy` — a freshly initialised Llama with a character-level tokenizer, for tests and
  for training the built-in task's SFT model from scratch.

Either takes ``lora`` (:class:`~gvmlit.lora.LoraSettings`) to train LoRA adapters instead of the full
weights (peft; :mod:`gvmlit.lora` says what changes).
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from contextlib import contextmanager
from pathlib import Path

import torch
from jsonargparse.typing import path_type
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from gvmlit.errors import GvmlitError
from gvmlit.lora import LoraSettings, add_adapters
from gvmlit.seeding import RunSeeded

log = logging.getLogger("gvmlit")

#: a local directory in a recipe is resolved relative to the recipe file (on the command line: to the
#: working directory); anything else is a Hub model id
LocalDir = path_type("dr")

#: Characters of the built-in arithmetic task and of the simple math prompts used in tests.
DEFAULT_ALPHABET = "0123456789+-*/=;#. \n"

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name: str) -> torch.dtype:
    if name not in _DTYPES:
        raise GvmlitError(f"unknown dtype {name!r}; allowed: {', '.join(_DTYPES)}")
    return _DTYPES[name]


def char_tokenizer(alphabet: str | None = DEFAULT_ALPHABET) -> PreTrainedTokenizerFast:
    """A character-level tokenizer: one id per character of ``alphabet`` plus <pad>, <bos>, <eos>, <unk>.

    ``alphabet=None`` gives a byte-level one instead (one id per byte: any text, no <unk>), for
    smoke runs of real-data recipes with a tiny model.
    """
    if alphabet is None:
        return _byte_tokenizer()
    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    chars = list(dict.fromkeys(alphabet))
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # Split every character into its own word; Fuse joins them back without separators.
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    backend.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
    )
    tok.padding_side = "left"
    return tok


def _byte_tokenizer() -> PreTrainedTokenizerFast:
    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    symbols = list(pre_tokenizers.ByteLevel.alphabet())  # the 256 byte symbols of byte-level BPE
    backend = Tokenizer(models.BPE(vocab={tok: i for i, tok in enumerate(specials + sorted(symbols))}, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>")
    tok.padding_side = "left"
    return tok


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Left padding for generation and a pad token (the EOS token if the model has none)."""
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise GvmlitError("the tokenizer has neither a pad token nor an EOS token; set one")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


class PolicyLoader(ABC):
    """Builds the policy model and its tokenizer. Subclasses are chosen in YAML by ``class_path``; they
    write ``load_base`` and may set ``lora`` (adapters on the base model)."""

    lora: LoraSettings | None = None

    @abstractmethod
    def load_base(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """Return ``(model, tokenizer)`` without adapters; the tokenizer pads on the left."""

    @property
    @abstractmethod
    def use_chat_template(self) -> bool:
        """Whether prompts are wrapped with the tokenizer's chat template."""

    def load(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """The policy the learner trains: the base model, with LoRA adapters when ``lora`` is set."""
        model, tokenizer = self.load_base()
        return self.with_adapters(model), tokenizer

    def with_adapters(self, model: PreTrainedModel):
        """``model`` with this policy's adapters (fresh), or as is without ``lora``."""
        return add_adapters(model, self.lora) if self.lora is not None else model

    @property
    def has_adapters(self) -> bool:
        return self.lora is not None

    @contextmanager
    def adapters_disabled(self, model):
        """The base model inside the block (the KL reference under LoRA)."""
        if not self.has_adapters:
            raise RuntimeError("adapters_disabled: this policy has no adapters")
        with model.disable_adapter():
            yield

    def trim_checkpoint(self, checkpoint: dict, prefix: str = "model.") -> None:
        """Under LoRA a checkpoint keeps only the policy weights that train (the adapters)."""
        if self.has_adapters:
            state = checkpoint["state_dict"]
            checkpoint["state_dict"] = {k: v for k, v in state.items() if not k.startswith(prefix) or "lora_" in k}

    def expect_checkpoint(self, checkpoint: dict, module, prefix: str = "model.") -> None:
        """Before a LoRA checkpoint is loaded: its adapters must all be there; the base weights are not."""
        if not self.has_adapters or "state_dict" not in checkpoint:  # a distributed checkpoint loads its weights itself
            return
        module.strict_loading = False
        wanted = {prefix + k for k in module.model.state_dict() if "lora_" in k}
        missing = wanted - set(checkpoint["state_dict"])
        if missing:
            raise GvmlitError(f"the checkpoint lacks {len(missing)} adapter weights of this policy's LoRA (e.g. {sorted(missing)[0]}): was it written with the same policy.lora?")


class PretrainedPolicy(PolicyLoader):
    """Any ``transformers`` causal LM by Hub name or local directory.

    Args:
        name_or_path: a local directory with ``config.json`` (in a recipe: relative to the recipe file)
            or a Hub id (e.g. ``Qwen/Qwen2.5-Math-1.5B``; set ``HF_HUB_OFFLINE=1`` on machines without
            network access so that a missing model fails at once instead of retrying).
        tokenizer: tokenizer directory or Hub id; defaults to ``name_or_path``.
        dtype: parameter dtype: ``float32``, ``bfloat16`` or ``float16``.
        gradient_checkpointing: recompute activations in backward (less memory, ~30 % slower).
        chat_template: wrap prompts with the tokenizer's chat template (instruct models).
        trust_remote_code: passed to ``from_pretrained``.
        lora: train LoRA adapters on the frozen model instead of its weights (None: full fine-tuning).
    """

    def __init__(
        self,
        name_or_path: LocalDir | str,
        tokenizer: LocalDir | str | None = None,
        dtype: str = "float32",
        gradient_checkpointing: bool = False,
        chat_template: bool = False,
        trust_remote_code: bool = False,
        lora: LoraSettings | None = None,
    ) -> None:
        self.name_or_path = name_or_path
        self.tokenizer = tokenizer
        self.dtype = dtype
        self.gradient_checkpointing = gradient_checkpointing
        self.chat_template = chat_template
        self.trust_remote_code = trust_remote_code
        self.lora = lora

    @property
    def use_chat_template(self) -> bool:
        return self.chat_template

    def load_base(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        path = _local_or_hub(self.name_or_path, "policy.name_or_path")
        tokenizer_path = _local_or_hub(self.tokenizer, "policy.tokenizer") if self.tokenizer is not None else path
        try:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(self.dtype), trust_remote_code=self.trust_remote_code)
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, trust_remote_code=self.trust_remote_code)
        except OSError as err:
            first = str(err).strip().splitlines()[0]
            raise GvmlitError(f"cannot load policy {path!r}: {first}") from err
        if self.gradient_checkpointing:  # non-reentrant: the variant that composes with FSDP2
            if hasattr(model, "activation_checkpointing_enable"):  # transformers ≥ 5
                model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if self.chat_template and tokenizer.chat_template is None:
            raise GvmlitError(f"policy.chat_template is true but the tokenizer of {path!r} has no chat template")
        return model, prepare_tokenizer(tokenizer)


def _local_or_hub(name, key: str) -> str:
    """A local directory (absolute) or a Hub id. A name that looks like a path — it starts with ``.``,
    ``/`` or ``~``, has more than one ``/``, or its first part is a local directory — but does not
    exist is an error at once, naming it, rather than a trip to the Hub."""
    given_as_path = isinstance(name, os.PathLike)  # jsonargparse resolved it relative to the file naming it
    name = os.fspath(name)
    local = Path(name).expanduser()
    if local.is_dir():
        if not given_as_path and not local.is_absolute():
            log.warning(
                "%s: %r is read relative to the working directory %s (a path in a recipe is read relative to the recipe, "
                "where it does not exist)", key, name, Path.cwd(),
            )  # fmt: skip
        return str(local)
    parts = name.split("/")
    looks_local = name.startswith((".", "/", "~")) or len(parts) > 2 or (len(parts) == 2 and Path(parts[0]).is_dir())
    if looks_local:
        raise GvmlitError(
            f"{key}: no directory {name!r} (paths in a recipe are relative to the recipe file, on the command line "
            f"to the working directory {Path.cwd()})"
        )
    return name


class TinyCharPolicy(RunSeeded, PolicyLoader):
    """A freshly initialised Llama with a character-level tokenizer (tests, SFT from scratch).

    Args:
        hidden_size: model width.
        num_layers: decoder layers.
        num_heads: attention heads.
        intermediate_size: MLP width (default 2 × hidden).
        max_length: maximum sequence length (prompt + response) in tokens.
        alphabet: characters the tokenizer knows (null: byte-level, any text).
        tie_embeddings: share the token-embedding matrix with ``lm_head``.
        seed: initialisation seed (None: derived from the run seed, gvmlit.seeding).
        lora: train LoRA adapters on the initialised model instead of its weights (None: full training).
    """

    seed_name = "policy.init"

    def __init__(
        self,
        hidden_size: int = 64,
        num_layers: int = 2,
        num_heads: int = 4,
        intermediate_size: int | None = None,
        max_length: int = 256,
        alphabet: str | None = DEFAULT_ALPHABET,
        tie_embeddings: bool = False,
        seed: int | None = None,
        lora: LoraSettings | None = None,
    ) -> None:
        self.tie_embeddings = tie_embeddings
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size or 2 * hidden_size
        self.max_length = max_length
        self.alphabet = alphabet
        self.seed = seed
        self.lora = lora

    @property
    def use_chat_template(self) -> bool:
        return False

    def load_base(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        tokenizer = char_tokenizer(self.alphabet)
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_heads,
            max_position_embeddings=self.max_length,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            tie_word_embeddings=self.tie_embeddings,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.resolved_seed)
            model = LlamaForCausalLM(config)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        return model, tokenizer


def max_model_length(model: PreTrainedModel) -> int:
    """The longest sequence (prompt + response) the model accepts."""
    return int(getattr(model.config, "max_position_embeddings", 1 << 30))
