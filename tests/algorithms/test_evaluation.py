"""`gvmlit test` on benchmark files: per-benchmark table on stdout and in TensorBoard."""

import json

from gvmlit.data import ArithmeticTask
from helpers import QUIET, ROOT, read_scalars, run_cli


def test_gvmlit_test_reports_each_benchmark(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    records = ArithmeticTask(num_train=10, num_val=120, seed=9).records("val")
    files = {}
    for name, levels in (("easy", {1, 2}), ("hard", {5, 6})):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"problem": r.problem, "answer": r.answer}) + "\n" for r in records if r.meta["level"] in levels))
        files[name] = str(path)
    run_cli(
        "test", "--config", "recipes/cpu/raft_uniform.yaml",
        "--data.init_args.eval_source=gvmlit.data.BenchmarkFiles",
        f"--data.init_args.eval_source.init_args.files={json.dumps(files)}",
        "--model.init_args.evaluation.samples=4", "--model.init_args.evaluation.ks=[1,2,4]",
        f"--trainer.logger.init_args.save_dir={tmp_path}", *QUIET,
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "| benchmark | problems | accuracy | mean@4 | pass@1 | maj@1 | pass@2 | maj@2 | pass@4 | maj@4 |" in out
    assert "| easy | 40 |" in out and "| hard | 40 |" in out and "| average | 80 |" in out
    scalars = read_scalars(tmp_path)
    easy, hard = scalars["test/easy/accuracy"][-1][1], scalars["test/hard/accuracy"][-1][1]
    assert easy > hard + 0.2  # the warm start solves short sums far more often
    # pass@k rises with k; pass@1 is the mean@4 of the same samples
    assert scalars["test/easy/pass@1"][-1][1] <= scalars["test/easy/pass@2"][-1][1] <= scalars["test/easy/pass@4"][-1][1]
    assert abs(scalars["test/easy/pass@1"][-1][1] - scalars["test/easy/mean@4"][-1][1]) < 1e-6
    assert abs(scalars["test/accuracy"][-1][1] - (easy + hard) / 2) < 1e-6
