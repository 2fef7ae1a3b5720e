"""Shared test settings: CPU, deterministic, few threads, smoke mode for executed notebooks (nbval)."""
import os

os.environ.setdefault("PROXFLOW_SMOKE", "1")

import torch  # noqa: E402

torch.set_num_threads(1)  # small tensors; avoids oversubscribing shared cores


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of small-batch CNN calls (much faster than two on a busy 2-core machine),
    restored afterwards (other tests may have changed it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def mnist_test_set() -> tuple[torch.Tensor, torch.Tensor]:
    """The 10,000 MNIST test images in [0, 1] and their labels (skips when `make data` has not run)."""
    from pathlib import Path as _Path

    from proxflow_edu.mnist.data import load_mnist_with_labels, mnist_is_ready
    data = _Path(__file__).resolve().parents[1] / "data"
    if not mnist_is_ready(data):
        pytest.skip("MNIST files missing in data/ (run `make data`)")
    return load_mnist_with_labels(data, train=False)
