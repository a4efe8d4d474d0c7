"""Stopping on SIGTERM and SIGINT at the next boundary, even in the middle of a rollout.

A scheduler (SLURM before a kill or a requeue) sends SIGTERM, a user presses Ctrl-C (SIGINT). While a
gvmlit learner trains, both only raise a flag; the long steps look at it between their own small steps
— the transformers sampler between generated tokens, vLLM between chunks of prompts, the verifier
between answers, training between optimiser steps — and end early. At the next point every rank passes
(the end of a collection, the start of a training step, the end of an evaluation) the ranks agree and
raise :class:`Interrupted`, so that no rank is left waiting in a collective. The run's last consistent
state is the checkpoint written at the end of the previous epoch; the CLI prints how to resume from it
and exits with 128 + the signal's number (143 for SIGTERM, 130 for SIGINT). A second Ctrl-C stops at
once (KeyboardInterrupt).
"""

from __future__ import annotations

import signal
import threading

#: the signal received (None: none yet)
_received: int | None = None
_installed: dict[int, object] = {}


class Interrupted(Exception):
    """The run was stopped by a signal at a consistent point (``where``: what it was doing)."""

    def __init__(self, signum: int, where: str) -> None:
        self.signum, self.where = signum, where
        super().__init__(f"stopped by {signal.Signals(signum).name} while {where}")

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process ended by this signal: 128 + its number (SIGTERM: 143)."""
        return 128 + self.signum


def _on_signal(signum, frame) -> None:
    global _received
    if signum == signal.SIGINT and _received is not None:
        raise KeyboardInterrupt  # asked twice: stop now
    _received = signum


def install() -> None:
    """Raise the flag on SIGTERM and SIGINT instead of dying (main thread only; earlier handlers are
    restored by :func:`uninstall`)."""
    global _received
    if threading.current_thread() is not threading.main_thread() or _installed:
        return
    _received = None
    for signum in (signal.SIGTERM, signal.SIGINT):
        _installed[signum] = signal.signal(signum, _on_signal)


def uninstall() -> None:
    for signum, previous in list(_installed.items()):
        signal.signal(signum, previous)
        del _installed[signum]


def requested() -> bool:
    """Whether a stop was asked for (the long steps end early when it was)."""
    return _received is not None


def check(where: str, across_ranks: bool = True) -> None:
    """Raise :class:`Interrupted` if a stop was asked for — on any rank, when ``across_ranks`` (a collective:
    every rank must call it at the same point)."""
    from gvmlit.parallel import all_gather_objects, world

    signals = all_gather_objects(_received) if across_ranks and world()[1] > 1 else [_received]
    received = next((s for s in signals if s is not None), None)
    if received is not None:
        raise Interrupted(received, where)


def reset() -> None:
    """Forget a received signal (tests)."""
    global _received
    _received = None
