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
    refuse_unknown(ids, tokenizer, f"prompt {record_name(record)}", text)
    return ids


def record_name(record: PromptRecord) -> str:
    """Where a record came from, for error messages (``file:row`` when the source says, else its uid)."""
    return record.meta.get("source", record.uid)


def refuse_unknown(ids: list[int], tokenizer, what: str, text: str) -> None:
    """One line naming ``what`` when ``text`` has characters the tokenizer maps to its unknown token."""
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
        unknown = sorted({ch for ch in text if tokenizer.unk_token_id in tokenizer(ch, add_special_tokens=False)["input_ids"]})
        shown = text if len(text) <= 80 else text[:77] + "…"
        raise GvmlitError(
            f"{what} has characters the tokenizer does not know (they would become {tokenizer.unk_token}): "
            f"{''.join(unknown)!r} in {shown!r}" + (f" ({len(text)} characters)" if len(text) > 80 else "")
        )
