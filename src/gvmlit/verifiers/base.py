"""The Verifier seam: a reward in [0, 1] for each response, judged against its prompt record.

Rejection sampling (RAFT's E-step) accepts a completion when its reward reaches the acceptance
threshold (1.0 by default); GRPO uses the reward itself. A verifier sees the whole
:class:`~gvmlit.records.PromptRecord` (the reference answer is ``record.answer``; the problem and
``meta`` are there for tasks whose check needs them).

Every verifier, built-in or a user's own, is protected the same way: :meth:`Verifier.score` runs
``score_one`` in worker processes (:mod:`gvmlit.verifiers.pool`) with a hard per-answer limit on the
answer's own work. One bad response never ends or stalls the run: a hanging check costs that response
(reward 0, outcome ``timeout``), an exception or a dead worker costs it too (outcome ``error``, with
``last_error`` saying why), and both are counted in ``outcomes`` for the learner to report.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter, OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any

from gvmlit.progress import progress_bar
from gvmlit.records import OUTCOMES, PromptRecord, Verdict
from gvmlit.verifiers.pool import MapStopped, WorkerPool, describe_exception

#: timed-out pairs remembered per verifier (they cost the timeout once, not again)
TIMED_OUT_MEMORY = 10_000


class Verifier(ABC):
    """Scores responses against their prompt records.

    Subclasses implement :meth:`score_one`; :meth:`score` runs it for a batch under the protection
    described in the module docstring. The verifier is pickled into each worker process (its pool and
    caches are not), so its attributes must be picklable and its class importable — a class defined in
    the user's own module works, since workers get the parent's ``sys.path``.

    Args:
        progress: show a progress bar while scoring.
        workers: worker processes that run ``score_one``. ``0`` scores in this process: no start-up
            cost, but no hard timeout either (a hanging check then hangs the run), so use it only for
            checks that cannot hang.
        timeout_seconds: limit on one answer's own work (its CPU time and its own waiting, not time spent
            waiting for a CPU on a loaded machine). An answer that runs longer scores 0 with outcome
            ``timeout``, and the same pair is not tried again.
    """

    #: attributes that are per-process state, never pickled into workers (subclasses extend)
    _transient: tuple[str, ...] = ("_pool", "_timed_out")

    def __init__(self, progress: bool = True, workers: int = 1, timeout_seconds: float = 10.0) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be an integer >= 0 (0 = score in this process), got {workers!r}")
        if not timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds!r}")
        self.progress = progress
        self.workers = workers
        self.timeout_seconds = float(timeout_seconds)
        #: how scoring went, cumulative, by outcome (``correct``, ``wrong``, ``no_answer``, ``timeout`` …)
        self.outcomes: Counter[str] = Counter()
        #: a short description of the most recent fault (exception repr, dead worker), for error messages
        self.last_error: str | None = None
        self._init_transient()

    def _init_transient(self) -> None:
        """(Re)create the per-process state: after construction and after unpickling in a worker."""
        self._pool: WorkerPool | None = None
        self._timed_out: OrderedDict[Hashable, None] = OrderedDict()

    # -- the parts a subclass implements or refines -------------------------------------------------

    @abstractmethod
    def score_one(self, response: str, record: PromptRecord) -> Verdict:
        """Judge one response against ``record`` (its reference answer is ``record.answer``).

        Called in a worker process by :meth:`score`; calling it directly runs it in this process,
        without the timeout.
        """

    def extract(self, response: str) -> str | None:
        """The canonical final answer of a response (majority voting, maj@k); None when there is none."""
        del response
        return None

    def warm_up(self) -> None:
        """Called once in each worker before it takes tasks: import and initialise what scoring needs,
        so that start-up is never charged to an answer's deadline."""

    def plan(self, response: str, record: PromptRecord) -> Verdict | tuple[Hashable, Any]:
        """In the parent, before any work is sent: a verdict already known, or ``(key, payload)``.

        ``key`` identifies the work (equal keys are scored once per batch; a timed-out key is
        remembered); ``payload`` is what :meth:`run_task` receives in the worker.
        """
        return (response, record.problem, record.answer), (response, record)

    def run_task(self, payload: Any) -> Verdict:
        """In the worker: compute one verdict from a payload made by :meth:`plan`."""
        return self.score_one(*payload)

    def affinity(self, key: Hashable) -> Any:
        """Tasks with equal affinity are sent to the workers together (e.g. the same gold, whose parse a
        worker then reuses); the default keeps the order of the batch."""
        del key
        return 0

    def recall(self, key: Hashable) -> Verdict | None:
        """A verdict remembered for ``key`` (timed-out pairs; subclasses add caches), or None."""
        if key in self._timed_out:
            return Verdict(0.0, "timeout")
        return None

    def remember(self, key: Hashable, verdict: Verdict) -> None:
        """Keep what is worth keeping about a fresh verdict (here: timeouts, so they cost once)."""
        if verdict.outcome == "timeout":
            self._timed_out[key] = None
            while len(self._timed_out) > TIMED_OUT_MEMORY:
                self._timed_out.popitem(last=False)

    # -- scoring ------------------------------------------------------------------------------------

    def score(
        self, responses: Sequence[str], records: Sequence[PromptRecord], desc: str = "verifying", max_consecutive_timeouts: int | None = None
    ) -> list[Verdict]:
        """One verdict per ``(responses[j], records[j])``, each scored under the per-answer limit; outcomes
        are counted in ``outcomes`` and the last fault is described in ``last_error``.

        ``max_consecutive_timeouts``: a verifier that hangs costs its whole timeout on every answer; after
        this many timeouts in a row the call stops with one line instead of going through them all. A
        SIGTERM or Ctrl-C (gvmlit.stopping) ends scoring at the next answer; the answers not scored then
        get ``no_answer`` and are never used (the run stops)."""
        if len(responses) != len(records):
            raise ValueError(f"{len(responses)} responses but {len(records)} records")
        plans = [self.plan(response, record) for response, record in zip(responses, records)]
        known: dict[Hashable, Verdict] = {}
        todo: dict[Hashable, Any] = {}
        for plan in plans:
            if isinstance(plan, Verdict):
                continue
            key, payload = plan
            if key in known or key in todo:
                continue
            remembered = self.recall(key)
            if remembered is not None:
                known[key] = remembered
            else:
                todo[key] = payload
        if todo:
            known.update(self._run_all(todo, desc, max_consecutive_timeouts))
        verdicts = [plan if isinstance(plan, Verdict) else known[plan[0]] for plan in plans]
        for verdict in verdicts:
            self.outcomes[verdict.outcome] += 1
        return verdicts

    def _run_all(self, todo: dict[Hashable, Any], desc: str, max_consecutive_timeouts: int | None = None) -> dict[Hashable, Verdict]:
        """Fresh verdicts for every task in ``todo``, in worker processes or (workers=0) in this one."""
        from gvmlit import stopping
        from gvmlit.errors import GvmlitError

        fresh: dict[Hashable, Verdict] = {}
        bar = progress_bar(total=len(todo), desc=desc, enabled=self.progress)
        in_a_row = [0]

        def finish(key: Hashable, status: str, value: Any) -> None:
            verdict = self._to_verdict(status, value)
            self.remember(key, verdict)
            fresh[key] = verdict
            bar.update(1)
            in_a_row[0] = in_a_row[0] + 1 if status == "timeout" else 0
            if max_consecutive_timeouts is not None and in_a_row[0] >= max_consecutive_timeouts:
                raise GvmlitError(
                    f"{type(self).__name__}: {in_a_row[0]} answers in a row ran past timeout_seconds={self.timeout_seconds:g}; the "
                    f"verifier seems to hang — stopping instead of waiting that long for each of the {len(todo) - len(fresh)} left "
                    f"(model.rollout.max_consecutive_timeouts={max_consecutive_timeouts})"
                )

        try:
            if self.workers == 0:
                for key, payload in todo.items():
                    if stopping.requested():
                        break
                    try:
                        finish(key, "ok", self.run_task(payload))
                    except Exception as err:  # noqa: BLE001 — one bad answer costs that answer only
                        finish(key, "error", describe_exception(err))
            else:
                if self._pool is None:
                    self._pool = WorkerPool(self, self.workers, self.timeout_seconds)
                try:
                    self._pool.map(sorted(todo.items(), key=lambda item: self.affinity(item[0])), finish, should_stop=stopping.requested)
                except (MapStopped, GvmlitError):
                    self._pool = None  # the map stopped its workers; the next call starts new ones
                    if not stopping.requested():
                        raise
        finally:
            bar.close()
        for key in todo.keys() - fresh.keys():  # a stop was asked for: never scored, never used, never remembered
            fresh[key] = Verdict(0.0, "no_answer")
        return fresh

    def _to_verdict(self, status: str, value: Any) -> Verdict:
        """The verdict of one finished task; faults are described in ``last_error``."""
        name = type(self).__name__
        if status == "timeout":
            self.last_error = f"{name}: an answer ran past timeout_seconds={self.timeout_seconds:g} and was cut off"
            return Verdict(0.0, "timeout")
        if status == "error":
            self.last_error = f"{name}.score_one: {value}"
            return Verdict(0.0, "error")
        reward = getattr(value, "reward", None)
        if not isinstance(value, Verdict) or value.outcome not in OUTCOMES or isinstance(reward, bool) or not isinstance(reward, (int, float)) or not 0.0 <= reward <= 1.0:
            self.last_error = f"{name}.score_one returned {value!r:.200}, not a Verdict(reward in [0, 1], outcome)"
            return Verdict(0.0, "error")
        return value

    # -- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the worker processes, if any (they are daemons and also stop with this process)."""
        if getattr(self, "_pool", None) is not None:
            self._pool.close()
            self._pool = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for name in self._transient:
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_transient()

    def state_dict(self) -> dict:
        return {"outcomes": dict(self.outcomes)}

    def load_state_dict(self, state: dict) -> None:
        self.outcomes = Counter(state.get("outcomes", {}))
