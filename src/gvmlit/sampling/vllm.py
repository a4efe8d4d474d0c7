"""VLLMSampler: rollouts with vLLM (optional extra ``gvmlit[vllm]`` on CUDA, or vLLM's CPU build), imported lazily.

Ragged requests become one ``SamplingParams(n=n_i)`` per prompt. Token ids go in and out: the engine
needs no tokenizer, texts are decoded with the policy's tokenizer, and EOS is given as the stop token.

**The engine runs inside the training process.** With one process gvmlit sets
``VLLM_ENABLE_V1_MULTIPROCESSING=0`` before building it (vLLM would otherwise start its engine core in a
child process, and the weights would have to be serialised through a socket on every sync); with
several processes every rank runs its own engine on its own device with
``distributed_executor_backend="external_launcher"`` (colocated, as in TRL's colocate mode), which
reuses the trainer's process group and generates that rank's share of the prompts. (With one process
vLLM starts a one-process ``torch.distributed`` group of its own in the training process; vLLM also
sets the process's torch threads for serving, which the sampler puts back after building the engine.)
``external_launcher`` reads the torchrun variables ``RANK`` and ``LOCAL_RANK``; Lightning's own
launcher and ``srun`` do not set all of them, so the sampler sets the missing ones from the process
group the strategy started (``RANK``, ``WORLD_SIZE``; ``LOCAL_RANK`` = the current CUDA device, or on
CPU the rank's position among the ranks on its host). Variables that are already set are left alone.

**Weight sync** (``prepare``, before every rollout, on every rank): the policy's state dict (gathered
tensor by tensor when FSDP2 shards it: a collective) goes through the engine's own in-place reload,
``collective_rpc("reload_weights", weights_iterator=…)``, which also redoes the engine's post-loading
processing (the CPU build repacks linear weights; loading into ``model.load_weights`` directly breaks
there). Then the prefix cache is reset: its blocks hold keys and values computed with the old weights,
and a prompt longer than one KV block would otherwise reuse them.

**Sleep mode.** With ``sleep_between_rollouts`` the engine releases its device memory (weights and KV
cache) while training runs (``release``) and wakes up for the next rollout, so training and rollout fit
on one GPU. Where vLLM has no sleep mode (its CPU build, where engine and trainer share host memory
anyway) the engine stays awake and the sampler logs one warning saying so.

**Log-probs** (``Completion.logprobs``) are those of the distribution the engine sampled from, with
``logprobs_mode="processed_logprobs"``: logits / T with top-k, top-p and min-p applied — the behaviour
policy, which the trainer recomputes with the same processing (``rollout/mismatch_*``) and the mismatch
correction (``model.loss.correction``, on by default with this sampler) corrects for. Greedy decoding
reports the untempered policy's.

**LoRA.** A policy with adapters is synced as merged weights W + ΔW, computed out of place
(:func:`gvmlit.lora.merged_state_dict`): the engine serves a plain model, the trainer's base weights are
never touched.

The engine is built from the policy's directory when it has one, otherwise from its config written to
a temporary directory; its weights always come from the sync (``load_format="dummy"``).

Without vLLM installed, constructing the sampler works (recipes parse on any machine) and the first
rollout raises a one-line error saying how to install it. There is no fallback to another sampler.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import tempfile
from pathlib import Path

import torch

from gvmlit import stopping
from gvmlit.errors import GvmlitError
from gvmlit.sampling.base import Completion, Sampler
from gvmlit.seeding import RunSeeded

log = logging.getLogger("gvmlit")


def _import_vllm():
    try:
        import vllm
    except ImportError as err:
        raise GvmlitError(
            "VLLMSampler needs vLLM, which is not installed: pip install 'gvmlit[vllm]' on a CUDA machine, or "
            "vLLM's CPU build (README, 'vLLM lane'); or choose the sampler gvmlit.sampling.HFSampler"
        ) from err
    return vllm


def launcher_environment(rank: int, size: int) -> dict[str, str]:
    """The torchrun variables vLLM's ``external_launcher`` reads that are missing from the environment,
    from the process group's view of the world (a collective on CPU when ``LOCAL_RANK`` is missing).

    ``RANK`` and ``WORLD_SIZE`` come from the process group; ``LOCAL_RANK`` is the CUDA device the
    strategy put this rank on, or on CPU the number of lower ranks on the same host.
    """
    missing: dict[str, str] = {}
    if "RANK" not in os.environ:
        missing["RANK"] = str(rank)
    if "WORLD_SIZE" not in os.environ:
        missing["WORLD_SIZE"] = str(size)
    if "LOCAL_RANK" not in os.environ:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            missing["LOCAL_RANK"] = str(torch.cuda.current_device())
        else:
            from gvmlit.parallel import all_gather_objects

            hosts = all_gather_objects(socket.gethostname())
            missing["LOCAL_RANK"] = str(sum(host == hosts[rank] for host in hosts[:rank]))
    return missing


class VLLMSampler(RunSeeded, Sampler):
    """vLLM generation with weight sync from the training policy.

    Args:
        temperature, top_p, max_new_tokens, top_k, min_p: sampling settings (as HFSampler); log-probs
            are those of the processed distribution sampled from.
        gpu_memory_utilization: share of device memory vLLM may take while awake (on the CPU build:
            share of host memory, unless ``kv_cache_gib`` is given).
        tensor_parallel_size: devices per engine (1 when colocated with FSDP2 training, one engine per rank).
        dtype: engine dtype (``float32`` on CPU).
        sleep_between_rollouts: release the engine's device memory while training runs; ignored, with a
            warning, where vLLM has no sleep mode (its CPU build).
        enforce_eager: disable CUDA graphs / compilation (less memory and start-up time, slower decoding).
        kv_cache_gib: KV-cache size in GiB (None = what ``gpu_memory_utilization`` leaves). On CPU set
            it: vLLM otherwise reserves ``gpu_memory_utilization`` of the host's memory.
        seed: engine seed (None: derived from the run seed, gvmlit.seeding; each rank adds its rank).
        progress: show vLLM's progress bar while generating.
        chunk_prompts: prompts per ``generate`` call: between chunks a SIGTERM or Ctrl-C is honoured
            (gvmlit.stopping); None = all of a rollout's prompts in one call (bench/sampler_throughput.py
            measures what chunking costs).
    """

    accepts_sharded_policy = True
    exact_logprobs = False  # its own kernels and precision: the trainer's log-probs differ
    min_p_first = True  # vLLM's sampler: temperature, min-p, then top-k / top-p
    seed_name = "sampler"

    def __init__(
        self,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 1024,
        top_k: int = 0,
        min_p: float = 0.0,
        gpu_memory_utilization: float = 0.4,
        tensor_parallel_size: int = 1,
        dtype: str = "bfloat16",
        sleep_between_rollouts: bool = True,
        enforce_eager: bool = False,
        kv_cache_gib: float | None = None,
        seed: int | None = None,
        progress: bool = True,
        chunk_prompts: int | None = 256,
    ) -> None:
        super().__init__(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, top_k=top_k, min_p=min_p)
        if chunk_prompts is not None and chunk_prompts < 1:
            raise GvmlitError(f"VLLMSampler.chunk_prompts must be ≥ 1 (or null), got {chunk_prompts}")
        self.chunk_prompts = chunk_prompts
        if kv_cache_gib is not None and kv_cache_gib <= 0:
            raise ValueError("kv_cache_gib must be > 0 (or None)")
        self.gpu_memory_utilization = gpu_memory_utilization
        self.tensor_parallel_size = tensor_parallel_size
        self.dtype = dtype
        self.sleep_between_rollouts = sleep_between_rollouts
        self.enforce_eager = enforce_eager
        self.kv_cache_gib = kv_cache_gib
        self.seed = seed
        self.progress = progress
        self._llm = None
        self._sleeps = False  # whether the engine was built with sleep mode
        self._asleep = False
        self._model_dir: tempfile.TemporaryDirectory | None = None

    #: vLLM's ``logprobs_mode``: log-probs of the processed distribution sampled from
    logprobs_mode = "processed_logprobs"

    def _build_engine(self, policy):
        vllm = _import_vllm()
        from vllm.platforms import current_platform

        from gvmlit.parallel import world

        path = getattr(policy.config, "name_or_path", "") or ""
        if not (Path(path) / "config.json").is_file():  # a policy built from a config: give vLLM the config
            self._model_dir = tempfile.TemporaryDirectory(prefix="gvmlit-vllm-")
            policy.config.save_pretrained(self._model_dir.name)
            path = self._model_dir.name
        rank, size = world()
        extra = {}
        if size > 1:  # one engine per rank, in this process, on the trainer's process group
            extra["distributed_executor_backend"] = "external_launcher"
            missing = launcher_environment(rank, size)
            os.environ.update(missing)
            if missing:
                log.info(
                    "VLLMSampler: set %s for vLLM's external_launcher (the launcher did not)",
                    ", ".join(f"{key}={value}" for key, value in missing.items()),
                )
        else:  # the engine core in this process: weights are handed over, not serialised
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        self._sleeps = self.sleep_between_rollouts and current_platform.is_sleep_mode_available()
        if self.sleep_between_rollouts and not self._sleeps:
            log.warning(
                "VLLMSampler: vLLM has no sleep mode on this platform (%s); the engine stays awake between "
                "rollouts (set sleep_between_rollouts: false to silence this)",
                current_platform.device_type,
            )
        if self.kv_cache_gib is not None:
            extra["kv_cache_memory_bytes"] = int(self.kv_cache_gib * (1 << 30))
        engine_fields = {f.name for f in dataclasses.fields(vllm.EngineArgs)}
        for needed in ("logprobs_mode", "kv_cache_memory_bytes"):
            if needed not in engine_fields:
                raise GvmlitError(f"VLLMSampler needs a vLLM whose engine has '{needed}': pip install 'gvmlit[vllm]'")
        set_num_threads, threads = torch.set_num_threads, torch.get_num_threads()
        try:
            return vllm.LLM(
                model=path,
                skip_tokenizer_init=True,
                load_format="dummy",  # weights come from the training policy (sync_weights)
                dtype=self.dtype,
                gpu_memory_utilization=self.gpu_memory_utilization,
                tensor_parallel_size=self.tensor_parallel_size,
                enable_sleep_mode=self._sleeps,
                enforce_eager=self.enforce_eager,
                max_model_len=getattr(policy.config, "max_position_embeddings", None),
                seed=self.resolved_seed + rank,
                logprobs_mode=self.logprobs_mode,
                **extra,
            )
        finally:
            # vLLM's workers set the process's torch threads for serving (1 thread, or a no-op patch of
            # torch.set_num_threads on CPU); here the worker is the training process: put both back
            torch.set_num_threads = set_num_threads
            torch.set_num_threads(threads)

    @property
    def block_size(self) -> int | None:
        """The engine's KV-cache block size in tokens (None before the first ``prepare``)."""
        return None if self._llm is None else int(self._llm.llm_engine.vllm_config.cache_config.block_size)

    def prepare(self, policy) -> None:
        """Build or wake the engine and load the policy's current weights into it."""
        if self._llm is None:
            self._llm = self._build_engine(policy)
        elif self._asleep:
            self._llm.wake_up()
            self._asleep = False
        self.sync_weights(policy)

    def release(self) -> None:
        if self._llm is not None and self._sleeps and not self._asleep:
            self._llm.sleep(level=1)
            self._asleep = True

    def sync_weights(self, policy) -> None:
        """Load the training policy's full state dict into the engine (gathered if sharded: a
        collective, every rank calls it in the same order), then drop the prefix cache built with the
        previous weights."""
        from torch.distributed.tensor import DTensor

        from gvmlit.lora import is_peft, merged_state_dict

        state = merged_state_dict(policy) if is_peft(policy) else policy.state_dict()
        weights = [(name, tensor.full_tensor() if isinstance(tensor, DTensor) else tensor) for name, tensor in state.items()]
        self._llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
        if not self._llm.reset_prefix_cache():
            raise RuntimeError("VLLMSampler: vLLM did not reset its prefix cache after a weight sync")

    def _generate(self, policy, tokenizer, prompts, num_samples, greedy, desc):
        vllm = _import_vllm()
        if self._llm is None:
            self.prepare(policy)
        eos = tokenizer.eos_token_id
        params = [
            vllm.SamplingParams(
                n=n,
                temperature=0.0 if greedy else self.temperature,
                top_p=1.0 if greedy else self.top_p,
                top_k=0 if greedy or self.top_k <= 0 else self.top_k,
                min_p=0.0 if greedy else self.min_p,
                max_tokens=self.max_new_tokens,
                logprobs=0,  # the sampled token's log-prob
                stop_token_ids=[eos] if eos is not None else None,
                detokenize=False,
            )
            for n in num_samples
        ]
        requests = [{"prompt_token_ids": list(p)} for p in prompts]
        size = self.chunk_prompts or len(requests)
        outputs = []
        for start in range(0, len(requests), size):
            if stopping.requested():  # a stop was asked for: the rest is never used (gvmlit.stopping)
                outputs += [None] * (len(requests) - start)
                break
            outputs += self._llm.generate(requests[start : start + size], params[start : start + size], use_tqdm=self.progress)
        results = []
        for n, output in zip(num_samples, outputs):
            if output is None:
                results.append([Completion([], "", [], "length") for _ in range(n)])
                continue
            group = []
            for sample in output.outputs:
                ids = list(sample.token_ids)
                logprobs = [float(step[token].logprob) for step, token in zip(sample.logprobs or [], ids)]
                group.append(
                    Completion(
                        token_ids=ids,
                        text=tokenizer.decode(ids, skip_special_tokens=True),
                        logprobs=logprobs,
                        finish_reason="stop" if sample.finish_reason == "stop" else "length",
                    )
                )
            results.append(group)
        return results
