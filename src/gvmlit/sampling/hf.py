"""HFSampler: batched ``transformers`` generation with KV cache, for CPU and small GPU runs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteria, StoppingCriteriaList

from gvmlit import stopping
from gvmlit.errors import GvmlitError
from gvmlit.policy import max_model_length
from gvmlit.progress import progress_bar
from gvmlit.sampling.base import Completion, Sampler


class _StopRequested(StoppingCriteria):
    """Ends ``generate`` at the next token once SIGTERM / SIGINT arrived (gvmlit.stopping)."""

    def __call__(self, input_ids, scores, **kwargs) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), stopping.requested(), dtype=torch.bool, device=input_ids.device)


class HFSampler(Sampler):
    """Ragged batched sampling with ``model.generate`` (KV cache, left padding).

    All requested sequences are flattened (prompt i repeated n_i times), sorted by prompt length so
    that a batch holds prompts of similar length (little padding), and generated ``batch_size`` at a time.

    Log-probs are those of the scores ``generate`` sampled from (its processors and warpers applied:
    temperature, top-k, top-p, min-p), from the policy itself: they equal the trainer's to float error.

    Args:
        temperature: softmax temperature.
        top_p: nucleus sampling mass (1.0 = off).
        max_new_tokens: longest response, in tokens.
        top_k: sample among the k most likely tokens only (0 = off).
        min_p: drop tokens less likely than min_p × the most likely one (0 = off).
        batch_size: sequences per ``generate`` call; lower it if generation runs out of memory.
        progress: show a progress bar over generation batches.
    """

    def __init__(
        self,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 64,
        top_k: int = 0,
        min_p: float = 0.0,
        batch_size: int = 256,
        progress: bool = True,
    ) -> None:
        super().__init__(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, top_k=top_k, min_p=min_p)
        self.batch_size = batch_size
        self.progress = progress

    def _generate(self, policy, tokenizer, prompts, num_samples, greedy, desc):
        limit = max_model_length(policy)
        for i, p in enumerate(prompts):
            if len(p) + self.max_new_tokens > limit:
                raise GvmlitError(
                    f"prompt {i} has {len(p)} tokens; with max_new_tokens={self.max_new_tokens} it exceeds "
                    f"the model's maximum length {limit}"
                )
        flat = [i for i, n in enumerate(num_samples) for _ in range(n)]
        flat.sort(key=lambda i: len(prompts[i]))
        results: list[list[Completion]] = [[] for _ in prompts]
        was_training = policy.training
        policy.eval()
        try:
            starts = range(0, len(flat), self.batch_size)
            bar = progress_bar(starts, desc=desc, unit="batch", enabled=self.progress)
            for start in bar:
                rows = flat[start : start + self.batch_size]
                if stopping.requested():  # a stop was asked for: the rest is never used (gvmlit.stopping)
                    for i in rows:
                        results[i].append(Completion([], "", [], "length"))
                    continue
                try:
                    batch = self._generate_batch(policy, tokenizer, [prompts[i] for i in rows], greedy)
                except (torch.OutOfMemoryError, RuntimeError) as err:
                    if not isinstance(err, torch.OutOfMemoryError) and "out of memory" not in str(err).lower():
                        raise
                    raise GvmlitError(
                        f"HFSampler ran out of memory generating {len(rows)} sequences of up to {self.max_new_tokens} "
                        f"new tokens: lower model.sampler.init_args.batch_size (now {self.batch_size}) or "
                        f"max_new_tokens, or free memory for generation"
                    ) from err
                for i, completion in zip(rows, batch):
                    results[i].append(completion)
        finally:
            policy.train(was_training)
        return results

    @torch.inference_mode()
    def _generate_batch(
        self,
        policy: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[Sequence[int]],
        greedy: bool,
    ) -> list[Completion]:
        device = next(policy.parameters()).device
        width = max(len(p) for p in prompts)
        pad = tokenizer.pad_token_id
        input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):  # left padding
            input_ids[row, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            attention_mask[row, width - len(p) :] = 1
        config = GenerationConfig(
            do_sample=not greedy,
            temperature=None if greedy else self.temperature,
            # explicit "off" values: a model's own generation_config.json (top_k 20, top_p 0.8, …) must not leak in
            top_p=None if greedy else self.top_p,
            top_k=None if greedy else self.top_k,
            min_p=None if greedy or self.min_p <= 0 else self.min_p,
            max_new_tokens=self.max_new_tokens,
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
            return_dict_in_generate=True,
            output_scores=True,
        )
        out = policy.generate(
            input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), generation_config=config,
            stopping_criteria=StoppingCriteriaList([_StopRequested()]),
        )
        new_tokens = out.sequences[:, width:]  # [B, T]
        scores = torch.stack(out.scores, dim=1).float()  # [B, T, V]: what was sampled from (T, top-k/p, min-p applied)
        logprobs = torch.log_softmax(scores, dim=-1).gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)
        eos = tokenizer.eos_token_id
        completions = []
        for row in range(len(prompts)):
            ids = new_tokens[row].tolist()
            if eos in ids:
                length, finish = ids.index(eos) + 1, "stop"
            else:
                length, finish = len(ids), "length"
            ids = ids[:length]
            completions.append(
                Completion(
                    token_ids=ids,
                    text=tokenizer.decode(ids, skip_special_tokens=True),
                    logprobs=logprobs[row, :length].tolist(),
                    finish_reason=finish,
                )
            )
        return completions
