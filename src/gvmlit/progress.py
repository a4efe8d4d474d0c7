"""Progress bars for the long steps (generation, verification, evaluation), shown once per run.

Under several processes only the first one draws them (launchers set ``RANK`` / ``LOCAL_RANK`` in the
environment before anything runs; reading them keeps this module free of torch and Lightning, so the
verifier's worker processes start fast).
"""

from __future__ import annotations

import os

from tqdm.auto import tqdm


def launcher_rank() -> str:
    """This process's rank as the launcher set it ("0" when there is no launcher)."""
    return os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))


def first_process() -> bool:
    return launcher_rank() == "0"


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs) -> tqdm:
    """``tqdm`` that disappears when done, disabled when ``enabled`` is false or on ranks other than 0."""
    kwargs.setdefault("leave", False)
    return tqdm(iterable, disable=not enabled or not first_process(), **kwargs)
