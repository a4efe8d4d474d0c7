"""VLLMSampler: rollouts with vLLM (optional extra ``gvmlit[vllm]``, GPU only), imported lazily.

Ragged requests become one ``SamplingParams(n=n_i)`` per prompt. Before each rollout the engine's
weights are replaced by the training policy's (``load_weights`` on the engine's model); with
``sleep_between_rollouts`` the engine releases its GPU memory (weights and KV cache) while training
runs and wakes up for the next rollout, so training and rollout fit on one GPU.

Status: written against vLLM's offline ``LLM`` API (0.8+: ``generate``, ``sleep``/``wake_up``,
``collective_rpc``); it has not been run in gvmlit's CI, which has no GPU. Without vLLM installed,
constructing the sampler works (recipes parse on any machine) and the first ``generate`` raises a
one-line error saying how to install it. There is no fallback to another sampler.
"""

from __future__ import annotations

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
        tensor_parallel_size: GPUs per engine.
        dtype: engine dtype.
        sleep_between_rollouts: release the engine's GPU memory while training runs.
        enforce_eager: disable CUDA graphs (less memory, slower).
        seed: engine seed.
    """

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

    def _engine(self, policy):
        vllm = _import_vllm()
        if self._llm is None:
            self._llm = vllm.LLM(
                model=policy.config.name_or_path,
                dtype=self.dtype,
                gpu_memory_utilization=self.gpu_memory_utilization,
                tensor_parallel_size=self.tensor_parallel_size,
                enable_sleep_mode=self.sleep_between_rollouts,
                enforce_eager=self.enforce_eager,
                max_model_len=getattr(policy.config, "max_position_embeddings", None),
                seed=self.seed,
            )
        elif self.sleep_between_rollouts:
            self._llm.wake_up()
        self.sync_weights(policy)
        return self._llm

    def sync_weights(self, policy) -> None:
        """Load the training policy's full state dict into the engine (gathered if sharded)."""
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
        llm = self._engine(policy)
        params = [
            vllm.SamplingParams(
                n=n,
                temperature=0.0 if greedy else self.temperature,
                top_p=1.0 if greedy else self.top_p,
                max_tokens=self.max_new_tokens,
                logprobs=0,  # the sampled token's log-prob
                seed=None,
            )
            for n in num_samples
        ]
        requests = [{"prompt_token_ids": list(p)} for p in prompts]
        outputs = llm.generate(requests, params, use_tqdm=True)
        results = []
        for output in outputs:
            group = []
            for sample in output.outputs:
                ids = list(sample.token_ids)
                logprobs = [float(step[token].logprob) for step, token in zip(sample.logprobs or [], ids)]
                group.append(
                    Completion(
                        token_ids=ids,
                        text=sample.text,
                        logprobs=logprobs,
                        finish_reason="stop" if sample.finish_reason == "stop" else "length",
                    )
                )
            results.append(group)
        if self.sleep_between_rollouts:
            llm.sleep(level=1)
        return results
