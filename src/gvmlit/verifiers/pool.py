"""A small pool of worker processes with a hard per-task timeout.

math-verify (sympy) can hang on inputs such as ``9^{9^{9^{9}}}``: the computation sits inside C code
where neither a thread nor a signal can stop it. Each task therefore runs in a worker process; a
worker that overruns its deadline is killed and replaced, and the task is reported as timed out.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import wait
from typing import Any

TIMEOUT = object()  #: result marker of a task that ran past the deadline
CRASH = object()  #: result marker of a task whose worker died


def _serve(conn, function: Callable) -> None:
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        key, args = task
        try:
            result = function(*args)
        except Exception as err:  # noqa: BLE001 — reported to the parent as this task's outcome
            result = ("exception", repr(err))
        conn.send((key, result))


class _Worker:
    def __init__(self, ctx, function: Callable) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, function), daemon=True)
        self.process.start()
        child.close()
        self.task: tuple[Any, float] | None = None  # (key, deadline)

    def kill(self) -> None:
        self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class WorkerPool:
    """Runs ``function(*args)`` for many tasks on ``workers`` processes, each task with a hard deadline.

    Args:
        function: a module-level (picklable) function.
        workers: number of processes.
        timeout: seconds one task may run before its worker is killed.
        start_method: multiprocessing start method (``spawn`` is safe with torch's threads in the parent).
    """

    def __init__(self, function: Callable, workers: int, timeout: float, start_method: str = "spawn") -> None:
        self.function = function
        self.size = max(1, workers)
        self.timeout = timeout
        self.ctx = mp.get_context(start_method)
        self.workers: list[_Worker] = []
        self.killed = 0

    def _ensure_started(self) -> None:
        while len(self.workers) < self.size:
            self.workers.append(_Worker(self.ctx, self.function))

    def map(self, tasks: Iterable[tuple[Any, tuple]], on_result: Callable[[Any, Any], None]) -> None:
        """Run every ``(key, args)`` task; ``on_result(key, result)`` receives each result as it comes,
        or ``TIMEOUT`` / ``CRASH`` for a task that overran or whose worker died."""
        self._ensure_started()
        pending = list(tasks)[::-1]
        busy: dict[Any, _Worker] = {}
        while pending or busy:
            for worker in self.workers:
                if worker.task is None and pending:
                    key, args = pending.pop()
                    worker.conn.send((key, args))
                    worker.task = (key, time.monotonic() + self.timeout)
                    busy[worker.conn] = worker
            if not busy:
                break
            nearest = min(w.task[1] for w in busy.values())
            ready = wait(list(busy), timeout=max(0.0, nearest - time.monotonic()))
            for conn in ready:
                worker = busy.pop(conn)
                key = worker.task[0]
                worker.task = None
                try:
                    _, result = conn.recv()
                except (EOFError, OSError):
                    result = CRASH
                    self._replace(worker)
                on_result(key, result)
            now = time.monotonic()
            for conn, worker in list(busy.items()):
                if worker.task[1] <= now:
                    busy.pop(conn)
                    key = worker.task[0]
                    self._replace(worker)
                    on_result(key, TIMEOUT)

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        self.killed += 1
        self.workers[self.workers.index(worker)] = _Worker(self.ctx, self.function)

    def close(self) -> None:
        for worker in self.workers:
            try:
                worker.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
            worker.process.join(timeout=2)
            if worker.process.is_alive():
                worker.process.kill()
        self.workers = []

    def __del__(self) -> None:  # best effort; workers are daemons anyway
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
