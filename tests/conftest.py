import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One torch thread, here and in every process a test starts: the tests' models are tiny, and on a loaded
# machine a second thread makes them many times slower (measured: a 3-epoch fit 1.8 s on one thread,
# 37 s on two, with two other busy processes on the 2 cores).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest
import torch

from gvmlit.policy import TinyCharPolicy

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_policy():
    """A real tiny Llama (hidden 64, 2 layers) with a character-level tokenizer."""
    model, tokenizer = TinyCharPolicy(hidden_size=64, num_layers=2, num_heads=4, max_length=128, seed=0).load()
    model.eval()
    return model, tokenizer


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run the long end-to-end tests (marked slow); CI does")


def pytest_collection_modifyitems(config, items):
    """Slow tests are opt-in (``--runslow``; CI passes it); GPU tests run only where CUDA is (a GPU machine
    runs them with ``python -m pytest -m gpu --runslow``), and fail instead of skipping with
    GVMLIT_REQUIRE_GPU=1."""
    run_slow = config.getoption("--runslow")
    has_gpu = torch.cuda.is_available()
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow end-to-end test: run with --runslow (CI does)"))
        if "gpu" in item.keywords and not has_gpu and not os.environ.get("GVMLIT_REQUIRE_GPU"):
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU (python -m pytest -m gpu --runslow on a GPU machine)"))
