"""Fixtures shared by the tests of harmonic_seg.clustering."""

import pytest

from ._scenes import make_scene


@pytest.fixture(scope="module")
def scene():
    """Label map (128, 128) of 12 cells and its noisy 12-D embedding, instances more than the bandwidth apart."""
    return make_scene()
