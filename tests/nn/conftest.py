"""Fixtures shared by the tests of harmonic_seg.nn."""

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture
def one_torch_thread():
    """torch on one thread during the test (small tensors: no thread start-up, repeatable timings)."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
