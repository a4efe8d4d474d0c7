"""VLLMSampler: rollouts with vLLM (optional extra ``gvmlit[vllm]``, GPU only), imported lazily.

Ragged requests become one ``SamplingParams(n=n_i)`` per prompt. Before each rollout (``prepare``) the
engine's weights are replaced by the training policy's (``load_weights`` on the engine's model; a
sharded FSDP2 policy is gathered tensor by tensor first); with ``sleep_between_rollouts`` the engine
releases its GPU memory (weights and KV cache) while training runs (``release``) and wakes up for the
next rollout, so training and rollout fit on one GPU. Under several processes every rank runs its own
engine on its own GPU (``distributed_executor_backend="external_launcher"``, colocated as in TRL's
colocate mode) and generates its share of the prompts.

The engine is built from the policy's directory when it has one, otherwise from its config written to
a temporary directory (weights come from the sync). Token ids go in and out: the engine needs no
tokenizer, texts are decoded with the policy's tokenizer, and EOS is given as the stop token.

Without vLLM installed, constructing the sampler works (recipes parse on any machine) and the first
rollout raises a one-line error saying how to install it. There is no fallback to another sampler.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from gvmlit.errors import GvmlitError
from gvmlit.sampling.base import Completion, Sampler


def _import_vllm():
    try:
        import vllm
    except ImportError as err:
        raise GvmlitError(
            "VLLMSampler needs vLLM, which is not installed: pip install 'gvmlit[vllm]' on a CUDA machine "
            "(or choose data.sampler=gvmlit.sampling.HFSampler)"
        ) from err
    return vllm


class VLLMSampler(Sampler):
    """vLLM generation with weight sync from the training policy.

    Args:
        temperature, top_p, max_new_tokens: sampling settings (as HFSampler).
        gpu_memory_utilization: share of GPU memory vLLM may take while awake.
        tensor_parallel_size: GPUs per engine (1 when colocated with FSDP2 training, one engine per rank).
        dtype: engine dtype.
        sleep_between_rollouts: release the engine's GPU memory while training runs.
        enforce_eager: disable CUDA graphs (less memory, slower).
        seed: engine seed (each rank adds its rank).
    """

    accepts_sharded_policy = True

    def __init__(
        self,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 1024,
        gpu_memory_utilization: float = 0.4,
        tensor_parallel_size: int = 1,
        dtype: str = "bfloat16",
        sleep_between_rollouts: bool = True,
        enforce_eager: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
        self.gpu_memory_utilization = gpu_memory_utilization
        self.tensor_parallel_size = tensor_parallel_size
        self.dtype = dtype
        self.sleep_between_rollouts = sleep_between_rollouts
        self.enforce_eager = enforce_eager
        self.seed = seed
        self._llm = None
        self._asleep = False
        self._model_dir: tempfile.TemporaryDirectory | None = None

    def _build_engine(self, policy):
        vllm = _import_vllm()
        from gvmlit.parallel import world

        path = getattr(policy.config, "name_or_path", "") or ""
        if not (Path(path) / "config.json").is_file():  # a policy built from a config: give vLLM the config
            self._model_dir = tempfile.TemporaryDirectory(prefix="gvmlit-vllm-")
            policy.config.save_pretrained(self._model_dir.name)
            path = self._model_dir.name
        rank, size = world()
        extra = {"distributed_executor_backend": "external_launcher"} if size > 1 else {}
        if "logprobs_mode" in {f.name for f in dataclasses.fields(vllm.EngineArgs)}:
            extra["logprobs_mode"] = "processed_logprobs"  # log-probs at the sampling temperature (vLLM ≥ 0.10.2)
        return vllm.LLM(
            model=path,
            skip_tokenizer_init=True,
            load_format="dummy",  # weights come from the training policy (sync_weights)
            dtype=self.dtype,
            gpu_memory_utilization=self.gpu_memory_utilization,
            tensor_parallel_size=self.tensor_parallel_size,
            enable_sleep_mode=self.sleep_between_rollouts,
            enforce_eager=self.enforce_eager,
            max_model_len=getattr(policy.config, "max_position_embeddings", None),
            seed=self.seed + rank,
            **extra,
        )

    def prepare(self, policy) -> None:
        """Build or wake the engine and load the policy's current weights into it."""
        if self._llm is None:
            self._llm = self._build_engine(policy)
        elif self._asleep:
            self._llm.wake_up()
            self._asleep = False
        self.sync_weights(policy)

    def release(self) -> None:
        if self._llm is not None and self.sleep_between_rollouts and not self._asleep:
            self._llm.sleep(level=1)
            self._asleep = True

    def sync_weights(self, policy) -> None:
        """Load the training policy's full state dict into the engine (gathered if sharded: a
        collective, every rank calls it in the same order)."""
        from torch.distributed.tensor import DTensor

        weights = [
            (name, tensor.full_tensor() if isinstance(tensor, DTensor) else tensor)
            for name, tensor in policy.state_dict().items()
        ]

        def load(worker, weights=weights):
            worker.model_runner.model.load_weights(weights)

        self._llm.collective_rpc(load)

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
                max_tokens=self.max_new_tokens,
                logprobs=0,  # the sampled token's log-prob
                stop_token_ids=[eos] if eos is not None else None,
                detokenize=False,
            )
            for n in num_samples
        ]
        requests = [{"prompt_token_ids": list(p)} for p in prompts]
        outputs = self._llm.generate(requests, params, use_tqdm=True)
        results = []
        for output in outputs:
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
