"""gvmlit: chain-of-thought reasoners trained with rejection sampling and RL, with the sampling budget
allocated per prompt to minimise gradient variance (GVM, arXiv 2505.02391)."""

__version__ = "0.1.0"
