"""Worker processes that score answers with a hard per-answer time limit counting only the answer's own work.

Why processes: a check can hang where nothing in-process can stop it (sympy on ``9^{9^{9^{9}}}`` sits in C
code that neither a thread nor a signal interrupts; a user's verifier may block on a lock or a socket).
Each answer therefore runs in a worker process, and a worker that overruns is killed and replaced.

The deadline protocol (what makes a correct answer safe from load):

1. A worker is started with ``spawn`` and receives the verifier pickled. It unpickles it, calls its
   ``warm_up()`` (MathVerifier imports sympy and math-verify and parses once) and only then reports
   ``ready``. Tasks go to ready, idle workers only, so start-up (seconds on a loaded machine) is never
   charged to an answer; the same holds for the replacement of a killed worker.
2. A worker works through a short queue of tasks in order, sending each result as soon as it has it
   (the queue keeps it busy while the parent, on a loaded machine, is slow to answer). The clock of the
   task in progress starts when it was sent to an idle worker, or when the result of the task before
   it arrived; a late parent makes the deadline later, never earlier.
3. The clock counts the task's *own* time: wall time minus the time the worker spent runnable but
   waiting for a CPU (the kernel's run-queue delay in ``/proc/<pid>/schedstat``). Busy-looping
   neighbours slow a correct answer down in wall time, not in own time; a sympy hang (CPU) and a user
   verifier asleep on a lock (waiting, not runnable) both accumulate own time. Where the kernel does not
   report run-queue delay (not Linux), the clock is wall time.
4. A task whose own time reaches the limit is reported as timed out; its worker is killed and replaced.
   A worker that dies while scoring is reported as a crash and replaced.

Tasks waiting for a busy worker are kept below ``PIPE_SAFE_BYTES`` so that a send never blocks the parent
while that worker hangs. A worker started from the main thread dies with the parent (Linux), so that a
hung worker does not outlive a training process that crashed.

Start-up has its own, generous limit (``STARTUP_LIMIT_SECONDS`` of own time); a worker that cannot start
(the verifier does not unpickle, ``warm_up`` raises) is a configuration error and raises
:class:`WorkerStartError` instead of scoring every answer 0.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from multiprocessing import get_context, spawn
from multiprocessing.connection import wait
from typing import Any, Literal

#: own seconds a worker may take to import and warm up before the pool gives up on it
STARTUP_LIMIT_SECONDS = 120.0
#: bytes of tasks that may wait in a busy worker's pipe: below any platform's socket buffer, so that sending
#: never blocks the parent while a worker hangs (a larger batch waits until the worker is idle and reading)
PIPE_SAFE_BYTES = 8192
#: name prefix of worker processes; such workers skip re-importing the parent's ``__main__`` (see below)
WORKER_NAME = "gvmlit-verifier-worker"

Status = Literal["ok", "error", "timeout"]


class WorkerStartError(RuntimeError):
    """A worker process could not start: the verifier does not pickle, unpickle or warm up."""


def _skip_main_module_in_workers() -> None:
    """Keep ``spawn`` from importing the parent's ``__main__`` script in verifier workers.

    ``spawn`` re-imports the parent's main script in every child so that objects defined there unpickle.
    Under the ``gvmlit`` console script that import pulls in the CLI, and with it torch and Lightning:
    seconds of start-up and hundreds of MB per worker, for nothing. Workers are named ``WORKER_NAME…``;
    only their preparation data loses the main-module entry (a verifier class defined in ``__main__``
    keeps it: its workers are named differently). Installed once; other processes are untouched.
    """
    original = spawn.get_preparation_data
    if getattr(original, "_gvmlit_lean", False):
        return

    def preparation_data(name: str) -> dict:
        data = original(name)
        if name.startswith(WORKER_NAME):
            data.pop("init_main_from_name", None)
            data.pop("init_main_from_path", None)
        return data

    preparation_data._gvmlit_lean = True  # type: ignore[attr-defined]
    spawn.get_preparation_data = preparation_data


def describe_exception(err: BaseException) -> str:
    """A short, single-line description of an exception for logs and ``last_error``."""
    text = repr(err)
    return text if len(text) <= 300 else text[:297] + "..."


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when its parent dies: a worker stuck in a hang (sympy spinning in C)
    would otherwise outlive a training process that crashed or was killed, and keep burning a core."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def serve(conn, blob: bytes, die_with_parent: bool = True) -> None:
    """Worker main loop: unpickle the scorer, warm it up, report ready, then run the tasks it is sent,
    in order, sending each result as soon as it is computed.

    ``scorer.run_task(payload)`` computes one result; an exception is returned as that task's error.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes the pool
    if die_with_parent:
        _die_with_parent()
    try:
        scorer = pickle.loads(blob)
        scorer.warm_up()
    except BaseException as err:  # noqa: BLE001 — reported to the parent, which raises WorkerStartError
        conn.send(("failed", describe_exception(err)))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            batch = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if batch is None:
            return
        for key, payload in batch:
            try:
                reply = ("done", key, "ok", scorer.run_task(payload))
            except Exception as err:  # noqa: BLE001 — one bad answer costs that answer only
                reply = ("done", key, "error", describe_exception(err))
            try:
                conn.send(reply)
            except (pickle.PicklingError, TypeError, AttributeError) as err:
                conn.send(("done", key, "error", f"result could not be sent back: {describe_exception(err)}"))


class OwnClock:
    """Seconds of a process's own time since :meth:`restart`: wall time minus run-queue delay.

    The run-queue delay (``/proc/<pid>/schedstat``, second field, ns) is the time the process was ready
    to run but waited for a CPU; on a loaded machine that is where a correct answer's wall time goes.
    Without that file the clock is plain wall time.
    """

    def __init__(self, pid: int | None) -> None:
        self.path = f"/proc/{pid}/schedstat" if pid else None
        self.restart()

    def _run_delay(self) -> float | None:
        if self.path is None:
            return None
        try:
            with open(self.path, encoding="ascii") as f:
                return int(f.read().split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return None

    def restart(self) -> None:
        self.wall_start = time.monotonic()
        self.delay_start = self._run_delay()

    def wall(self) -> float:
        return time.monotonic() - self.wall_start

    def elapsed(self) -> float:
        wall = self.wall()
        if self.delay_start is None:
            return wall
        delay = self._run_delay()
        if delay is None:
            return wall
        return max(0.0, wall - (delay - self.delay_start))


class _Worker:
    """One worker process and the pool's view of it: ``starting`` → ``ready`` → ``dead``.

    A ready worker holds a queue of tasks it works through in order (the pipe keeps it busy while the
    parent is slow to answer on a loaded machine). The head of the queue is the task in progress: its
    clock starts when it was sent to an empty queue, or when the result of the task before it arrived.
    """

    def __init__(self, ctx, blob: bytes, name: str) -> None:
        self.conn, child = ctx.Pipe()
        # the kernel's parent-death signal fires when the *thread* that started the worker ends: ask for
        # it only from the main thread, which lives as long as the process
        in_main_thread = threading.current_thread() is threading.main_thread()
        self.process = ctx.Process(target=serve, args=(child, blob, in_main_thread), daemon=True, name=name)
        self.process.start()
        child.close()
        self.state = "starting"
        self.queue: deque[tuple[Any, Any]] = deque()
        self.batches: deque[int] = deque()  # sizes of the batches in the queue; the first one is being read
        self.clock = OwnClock(self.process.pid)
        self.limit = STARTUP_LIMIT_SECONDS
        self.check_at = time.monotonic() + self.limit  # own time never runs faster than wall time

    @property
    def watched(self) -> bool:
        """Whether the pool is waiting on this worker (starting, or working on a task)."""
        return self.state == "starting" or (self.state == "ready" and bool(self.queue))

    def start_clock(self, limit: float) -> None:
        self.limit = limit
        self.clock.restart()
        self.check_at = time.monotonic() + limit

    def can_take(self, size: int) -> bool:
        """Whether a batch of ``size`` bytes can be sent now without the parent ever blocking on the pipe:
        to an idle worker (it is reading), or as the only batch waiting behind the one in progress."""
        return not self.queue or (len(self.batches) == 1 and size <= PIPE_SAFE_BYTES)

    def send(self, tasks: list[tuple[Any, Any]], blob: bytes, limit: float) -> None:
        idle = not self.queue
        self.conn.send_bytes(blob)
        self.queue.extend(tasks)
        self.batches.append(len(tasks))
        if idle:
            self.start_clock(limit)

    def finished_one(self) -> tuple[Any, Any]:
        """The task in progress is done (or abandoned): drop it from the queue."""
        self.batches[0] -= 1
        if self.batches[0] == 0:
            self.batches.popleft()
        return self.queue.popleft()

    def take_back(self) -> list[tuple[Any, Any]]:
        """Every queued task, for another worker (this one is being replaced)."""
        tasks = list(self.queue)
        self.queue.clear()
        self.batches.clear()
        return tasks

    def overran(self) -> bool:
        """Whether the task in progress (or start-up) has used up its own-time limit; reschedules the check."""
        used = self.clock.elapsed()
        if used >= self.limit:
            return True
        self.check_at = time.monotonic() + (self.limit - used)
        return False

    def exit_description(self) -> str:
        self.process.join(timeout=1)
        code = self.process.exitcode
        if code is not None and code < 0:
            try:
                return f"worker process was killed by {signal.Signals(-code).name}"
            except ValueError:
                pass
        return f"worker process exited with code {code}"

    def kill(self) -> None:
        self.state = "dead"
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class MapStopped(Exception):
    """A map ended early because its ``should_stop`` said so."""


#: how often a map looks at its ``should_stop`` while it waits for workers
STOP_POLL_SECONDS = 0.25


class WorkerPool:
    """Runs ``scorer.run_task(payload)`` for many tasks on ``workers`` processes, each with a hard limit.

    Args:
        scorer: a picklable object with ``warm_up()`` and ``run_task(payload)`` (a Verifier).
        workers: number of processes (at least 1).
        timeout: own seconds one task may take before its worker is killed (see module docstring).
        depth: tasks queued to one worker at a time.
    """

    def __init__(self, scorer: Any, workers: int, timeout: float, depth: int = 8) -> None:
        if workers < 1:
            raise ValueError(f"a worker pool needs at least 1 worker, got {workers}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        try:
            self.blob = pickle.dumps(scorer)
        except Exception as err:  # noqa: BLE001 — re-raised with the remedy
            raise WorkerStartError(
                f"{type(scorer).__name__} cannot be sent to worker processes ({describe_exception(err)}); "
                "make its attributes picklable, or score in-process with workers=0"
            ) from err
        self.size = workers
        self.timeout = timeout
        self.depth = max(1, depth)
        self.ctx = get_context("spawn")
        # a scorer whose class lives in the parent's __main__ needs that module in the worker
        in_main = type(scorer).__module__ == "__main__"
        self.name = f"gvmlit-verifier-main-{os.getpid()}" if in_main else f"{WORKER_NAME}-{os.getpid()}"
        _skip_main_module_in_workers()
        self.workers: list[_Worker] = []
        #: workers killed for overrunning, and workers that died while scoring
        self.killed = 0
        self.crashed = 0

    def _start(self) -> _Worker:
        return _Worker(self.ctx, self.blob, self.name)

    def map(self, tasks: Iterable[tuple[Any, Any]], on_result: Callable[[Any, Status, Any], None], should_stop: Callable[[], bool] | None = None) -> None:
        """Run every ``(key, payload)`` task; ``on_result(key, status, value)`` receives each outcome as it
        comes: ``("ok", result)``, ``("error", description)`` (an exception or a dead worker) or
        ``("timeout", None)``. ``should_stop`` is asked several times a second: when it says so, the map
        ends early with :class:`MapStopped` (the tasks not reported are abandoned, the workers stopped)."""
        pending = deque(tasks)
        while len(self.workers) < self.size:
            self.workers.append(self._start())
        try:
            self._run(pending, on_result, should_stop)
        except BaseException:
            self.close()  # a half-finished map leaves workers in unknown states
            raise

    def _fill(self, pending: deque) -> None:
        """Hand pending tasks to ready workers whose queue is at most half full: an even share each, at
        most ``depth`` queued per worker, consecutive tasks together (they often share a gold)."""
        if not pending:
            return
        share = -(-len(pending) // len(self.workers))
        for worker in self.workers:
            if worker.state != "ready" or len(worker.queue) > self.depth // 2 or not pending:
                continue
            batch = [pending[i] for i in range(min(self.depth - len(worker.queue), share, len(pending)))]
            blob = pickle.dumps(batch)
            while len(batch) > 1 and not worker.can_take(len(blob)):  # large payloads: fewer at a time
                batch = batch[: len(batch) // 2]
                blob = pickle.dumps(batch)
            if worker.can_take(len(blob)):
                for _ in batch:
                    pending.popleft()
                worker.send(batch, blob, self.timeout)

    def _run(self, pending: deque, on_result: Callable[[Any, Status, Any], None], should_stop: Callable[[], bool] | None = None) -> None:
        while True:
            if should_stop is not None and should_stop():
                raise MapStopped
            self._fill(pending)
            watched = [w for w in self.workers if w.watched]
            if not pending and not any(w.queue for w in watched):
                return
            nearest = min(w.check_at for w in watched)
            # wake at least every STOP_POLL_SECONDS to look at should_stop (a SIGTERM mid-verification)
            ready = wait([w.conn for w in watched], timeout=min(max(0.0, nearest - time.monotonic()), STOP_POLL_SECONDS))
            for conn in ready:
                self._drain(next(w for w in watched if w.conn is conn), pending, on_result)
            now = time.monotonic()
            for worker in watched:
                if worker.watched and worker.check_at <= now and worker.overran():
                    self._overran(worker, pending, on_result)

    def _drain(self, worker: _Worker, pending: deque, on_result: Callable[[Any, Status, Any], None]) -> None:
        """Handle every message waiting from ``worker``."""
        while worker.state != "dead":
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                message = None
            if worker.state == "starting":
                if message is not None and message[0] == "ready":
                    worker.state = "ready"
                else:
                    reason = message[1] if message is not None else worker.exit_description()
                    raise WorkerStartError(f"a verifier worker process could not start: {reason}")
            elif message is None:  # the worker died while scoring: its current task is at fault
                key, _ = worker.finished_one()
                reason = worker.exit_description()
                self.crashed += 1
                self._replace(worker, pending)
                on_result(key, "error", f"{reason} while scoring")
                return
            else:
                _, key, status, value = message
                worker.finished_one()
                if worker.queue:  # the worker moved on to the next task as it sent this result
                    worker.start_clock(self.timeout)
                on_result(key, status, value)
            if not worker.conn.poll():
                return

    def _overran(self, worker: _Worker, pending: deque, on_result: Callable[[Any, Status, Any], None]) -> None:
        if worker.state == "starting":
            raise WorkerStartError(f"a verifier worker process did not start within {STARTUP_LIMIT_SECONDS:.0f} s")
        key, _ = worker.finished_one()
        self.killed += 1
        self._replace(worker, pending)
        on_result(key, "timeout", None)

    def _replace(self, worker: _Worker, pending: deque) -> None:
        """Kill ``worker``, give its queued tasks back (uncharged) and start its replacement, which takes
        tasks once it reports ready."""
        pending.extendleft(reversed(worker.take_back()))
        worker.kill()
        self.workers[self.workers.index(worker)] = self._start()

    def close(self) -> None:
        """Stop every worker: an idle one is asked to exit, a busy or starting one is killed."""
        workers, self.workers = self.workers, []
        for worker in workers:
            if worker.state == "ready" and not worker.queue:
                try:
                    worker.conn.send_bytes(pickle.dumps(None))
                    worker.process.join(timeout=2)
                except (OSError, ValueError):
                    pass
            worker.kill()

    def __del__(self) -> None:  # best effort; workers are daemons and also end with this process
        try:
            if sys.is_finalizing():
                return
            self.close()
        except Exception:  # noqa: BLE001
            pass
