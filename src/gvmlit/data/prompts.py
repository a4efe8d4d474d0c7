"""How a problem becomes the token ids the policy is given: template, system prompt, chat template."""

from __future__ import annotations

from gvmlit.errors import GvmlitError
from gvmlit.records import PromptRecord


def encode_prompt(record: PromptRecord, template: str, system_prompt: str | None, tokenizer, chat_template: bool) -> list[int]:
    """``template.format(problem=…)``, wrapped with the system prompt in the tokenizer's chat template
    when the policy uses one. Characters the tokenizer does not know are an error, not silent ``<unk>``s."""
    text = template.format(problem=record.problem)
    if chat_template:
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [{"role": "user", "content": text}]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    else:
        ids = tokenizer(text)["input_ids"]
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
        where = record.meta.get("source", record.uid)
        raise GvmlitError(f"prompt {where} has characters the tokenizer does not know (they would become {tokenizer.unk_token}): {text!r}")
    return ids
