"""The allocation study: regimes and arms, one JSON file per run, and the analysis that rebuilds every
table and plot from those files (docs/study/PROTOCOL.md; the runner is ``bench/study.py``)."""
