"""Every verifier runs under the same protection: worker processes, a hard per-answer limit on the answer's
own work, faults counted (issues 12 and 15).

The verifiers below are defined in this module on purpose: a user's verifier lives in the user's own
module, and the workers must import it (spawn passes ``sys.path``). This module therefore imports
nothing heavy (no torch, no test helpers), so that its workers stay light too.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gvmlit.records import PromptRecord, Verdict
from gvmlit.verifiers import ArithmeticVerifier, MathVerifier, Verifier
from gvmlit.verifiers.pool import OwnClock, WorkerStartError

HEAVY = ("torch", "transformers", "lightning", "pytorch_lightning")
HERE = Path(__file__).resolve().parent


def records(golds) -> list[PromptRecord]:
    return [PromptRecord(f"p{i}", "", gold) for i, gold in enumerate(golds)]


class MoodyVerifier(Verifier):
    """A user's verifier: "ok" is correct, "hang" never returns, "raise" raises, "die" kills its process,
    "tuple" returns the wrong type; anything else is wrong."""

    def score_one(self, response: str, record: PromptRecord) -> Verdict:
        if response == "hang":
            time.sleep(3600)  # waiting, not computing: only the own-time clock (wall minus run-queue) sees it
        if response == "raise":
            raise ValueError("boom")
        if response == "die":
            os._exit(3)
        if response == "tuple":
            return (1.0, "correct")  # type: ignore[return-value]
        return Verdict(1.0, "correct") if response == "ok" else Verdict(0.0, "wrong")


class HeavyModulesProbe(Verifier):
    """Correct unless the worker it runs in has imported torch, transformers or Lightning."""

    def score_one(self, response: str, record: PromptRecord) -> Verdict:
        heavy = [name for name in HEAVY if name in sys.modules]
        if heavy:
            raise RuntimeError(f"the worker imported {heavy}")
        return Verdict(1.0, "correct")


class FailsToWarmUp(Verifier):
    def warm_up(self) -> None:
        raise RuntimeError("no model file")

    def score_one(self, response: str, record: PromptRecord) -> Verdict:
        return Verdict(1.0, "correct")


class Unpicklable(Verifier):
    def __init__(self) -> None:
        super().__init__(progress=False)
        self.rule = lambda text: text == "ok"  # a lambda cannot be pickled into a worker

    def score_one(self, response: str, record: PromptRecord) -> Verdict:
        return Verdict(1.0, "correct") if self.rule(response) else Verdict(0.0, "wrong")


def test_a_users_hanging_verifier_is_cut_off_and_costs_one_timeout():
    verifier = MoodyVerifier(progress=False, workers=1, timeout_seconds=1.0)
    try:
        verdicts = verifier.score(["ok", "hang", "ok", "nope"], records("xxxx"))
        assert [v.outcome for v in verdicts] == ["correct", "timeout", "correct", "wrong"]
        assert verifier._pool.killed == 1
        assert "timeout" in verifier.last_error
        # the same pair again is remembered: no second timeout paid, no second worker killed
        again = verifier.score(["hang", "ok"], records("xx"))
        assert [v.outcome for v in again] == ["timeout", "correct"]
        assert verifier._pool.killed == 1
        assert verifier.outcomes == {"correct": 3, "timeout": 2, "wrong": 1}
    finally:
        verifier.close()


def test_exceptions_dead_workers_and_bad_returns_are_errors_with_a_reason():
    verifier = MoodyVerifier(progress=False, workers=1, timeout_seconds=30.0)
    try:
        verdicts = verifier.score(["raise", "ok"], records("xx"))
        assert [v.outcome for v in verdicts] == ["error", "correct"]
        assert "ValueError('boom')" in verifier.last_error and "MoodyVerifier" in verifier.last_error
        verdicts = verifier.score(["die", "ok", "ok"], records("xyz"))
        assert [v.outcome for v in verdicts] == ["error", "correct", "correct"]
        assert "exited with code 3" in verifier.last_error
        assert verifier._pool.crashed == 1
        verdicts = verifier.score(["tuple"], records("x"))
        assert verdicts[0] == Verdict(0.0, "error") and "not a Verdict" in verifier.last_error
        assert verifier.outcomes == {"error": 3, "correct": 3}
    finally:
        verifier.close()


def test_in_process_scoring_counts_errors_too():
    verifier = MoodyVerifier(progress=False, workers=0)
    verdicts = verifier.score(["raise", "ok", "tuple"], records("xyz"))
    assert [v.outcome for v in verdicts] == ["error", "correct", "error"]
    assert verifier._pool is None
    assert verifier.outcomes == {"error": 2, "correct": 1}


def test_correct_answers_survive_a_busy_machine_and_a_hang_still_costs_one_timeout():
    """Other processes keep every core busy while the workers start and score (the start-up of a worker,
    and of the replacement of a killed one, is not charged to any answer; busy neighbours slow answers
    in wall time only). A sympy hang is still cut off, once."""
    golds = [json.loads(line)["answer"] for line in (HERE.parent / "fixtures" / "math500_answers.jsonl").open()][:40]
    responses = [r"\boxed{9^{9^{9^{9}}}}"] + [f"So the answer is $\\boxed{{{g}}}$." for g in golds]
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(min(16, 2 * (os.cpu_count() or 2)))]
    verifier = MathVerifier(workers=2, timeout_seconds=2.0, progress=False)
    try:
        verdicts = verifier.score(responses, records(["3", *golds]))
        assert verdicts[0].outcome == "timeout"
        lost = [(g, v.outcome) for g, v in zip(golds, verdicts[1:]) if v.outcome != "correct"]
        assert lost == []
        assert verifier._pool.killed == 1
        # scored again (under load, by the replacement worker): the hang is remembered, nothing is lost
        verdicts = verifier.score(responses[:5], records(["3", *golds[:4]]))
        assert [v.outcome for v in verdicts] == ["timeout"] + ["correct"] * 4
        assert verifier._pool.killed == 1
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait()
        verifier.close()


def test_worker_start_up_is_not_charged_to_the_first_answers():
    """A worker needs about a second of CPU to import sympy and math-verify, more than this timeout: the
    first answers would all time out if start-up counted."""
    verifier = MathVerifier(workers=2, timeout_seconds=1.0, progress=False, cache_size=0)
    try:
        responses = [rf"\boxed{{\frac{{{n}}}{{{n + 1}}}}}" for n in range(1, 11)]
        verdicts = verifier.score(responses, records([rf"\frac{{{2 * n}}}{{{2 * n + 2}}}" for n in range(1, 11)]))
        assert [v.outcome for v in verdicts] == ["correct"] * 10
    finally:
        verifier.close()


def test_own_clock_does_not_count_waiting_for_a_cpu():
    """Two busy processes share one CPU: each runs about half of the wall time, and its own time is about
    its CPU time, not the wall time (on kernels that report run-queue delay)."""
    if not Path(f"/proc/{os.getpid()}/schedstat").exists() or not hasattr(os, "sched_setaffinity"):
        pytest.skip("this system does not report run-queue delay; the clock is wall time")
    cpu = min(os.sched_getaffinity(0))
    spin = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"
    busy = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(2)]
    try:
        clocks = [OwnClock(p.pid) for p in busy]
        time.sleep(1.5)
        if all(clock._run_delay() == clock.delay_start for clock in clocks):
            pytest.skip("this kernel reports no run-queue delay; the clock is wall time")
        for clock in clocks:
            assert clock.elapsed() < 0.8 * clock.wall()
    finally:
        for process in busy:
            process.kill()
            process.wait()


def test_a_verifier_defined_in_a_users_module_runs_in_workers_without_torch():
    verifier = HeavyModulesProbe(progress=False, workers=1)
    try:
        assert verifier.score(["x"], records("x")) == [Verdict(1.0, "correct")], verifier.last_error
    finally:
        verifier.close()


def test_workers_do_not_import_the_parents_main_script(tmp_path):
    """Under the ``gvmlit`` console script the main module imports the CLI (torch, Lightning); spawn would
    import it again in every worker. Here the main script imports torch itself."""
    stdout = run_main_script(
        tmp_path / "train.py",
        "import sys\n"
        f"sys.path[:0] = [{str(HERE)!r}, {str(HERE.parent)!r}]\n"
        "import torch  # noqa: F401 — the heavy main module\n"
        "from gvmlit.records import PromptRecord\n"
        "from test_verifier_pool import HeavyModulesProbe\n"
        "if __name__ == '__main__':\n"
        "    verifier = HeavyModulesProbe(progress=False, workers=1)\n"
        "    verdict = verifier.score(['x'], [PromptRecord('u', '', '1')])[0]\n"
        "    verifier.close()\n"
        "    print(verdict.outcome, verifier.last_error)\n",
    )
    assert stdout.split()[0] == "correct", stdout


def test_a_verifier_defined_in_the_main_script_runs_in_workers(tmp_path):
    stdout = run_main_script(
        tmp_path / "score.py",
        "from gvmlit.records import PromptRecord, Verdict\n"
        "from gvmlit.verifiers import Verifier\n"
        "class Exact(Verifier):\n"
        "    def score_one(self, response, record):\n"
        "        return Verdict(float(response == record.answer), 'correct' if response == record.answer else 'wrong')\n"
        "if __name__ == '__main__':\n"
        "    verifier = Exact(progress=False, workers=1)\n"
        "    print(*[v.outcome for v in verifier.score(['7', '8'], [PromptRecord('u', '', '7')] * 2)])\n"
        "    verifier.close()\n",
    )
    assert stdout.split() == ["correct", "wrong"]


def run_main_script(path, text: str) -> str:
    """Run ``text`` as the main script ``path`` (in its directory); its standard output."""
    path.write_text(text)
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300, cwd=path.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_verifier_that_cannot_reach_its_workers_fails_loudly():
    with pytest.raises(WorkerStartError, match="workers=0"):
        Unpicklable().score(["ok"], records("x"))
    verifier = FailsToWarmUp(progress=False, workers=1)
    with pytest.raises(WorkerStartError, match="no model file"):
        verifier.score(["ok"], records("x"))
    in_process = Unpicklable()
    in_process.workers = 0
    assert in_process.score(["ok"], records("x")) == [Verdict(1.0, "correct")]


def test_pool_and_caches_are_not_pickled():
    verifier = MathVerifier(workers=1, progress=False)
    try:
        verifier.score([r"\boxed{x^2+1}", r"\boxed{x+2}"], records(["1+x^2", "x+3"]))
        assert verifier._pool is not None and len(verifier._cache) == 2
        copy = pickle.loads(pickle.dumps(verifier))
        assert copy._pool is None and len(copy._cache) == 0 and len(copy._timed_out) == 0
        assert copy.policy == verifier.policy and copy.gold_format == verifier.gold_format
    finally:
        verifier.close()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MathVerifier(workers=-1), "workers"),
        (lambda: MathVerifier(timeout_seconds=0), "timeout_seconds"),
        (lambda: ArithmeticVerifier(workers=1.5), "workers"),
        (lambda: MathVerifier(gold_format="python"), "auto, latex, sympy, text"),
        (lambda: MathVerifier(answer_formats=("boxed", "bold")), "answer_tag, boxed, hashes, answer_is, final_line"),
        (lambda: MathVerifier(choose="first"), "last, format_order"),
        (lambda: MathVerifier(min_significant_digits=0), "min_significant_digits"),
    ],
)
def test_bad_settings_are_rejected_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_long_responses_cannot_block_the_pool_behind_a_hang():
    """Four quick answers, a hang, then responses of 400 kB each: the worker's queue runs low while it
    hangs, and a batch that does not fit the pipe must wait for an idle worker instead of blocking the
    pool in a send it cannot finish (the hang would then never be cut off)."""
    verifier = MoodyVerifier(progress=False, workers=1, timeout_seconds=1.0)
    long = "ok" + "x" * 400_000
    try:
        responses = ["ok"] * 4 + ["hang"] + [long, "ok"] * 4
        verdicts = verifier.score(responses, records([f"gold {i}" for i in range(len(responses))]))  # 13 tasks
        assert [v.outcome for v in verdicts] == ["correct"] * 4 + ["timeout"] + ["wrong", "correct"] * 4
    finally:
        verifier.close()
