"""Tests of harmonic_seg.synthetic.make_instances."""

import time

import numpy as np
import pytest

from harmonic_seg.io import Dataset
from harmonic_seg.synthetic import make_instances


def _n_instances(lab):
    return len(np.unique(lab[lab > 0]))


def _touching_pairs(lab):
    """Pairs of different non-zero labels that are 4-adjacent."""
    pairs = set()
    for a, b in ((lab[1:], lab[:-1]), (lab[:, 1:], lab[:, :-1])):
        sel = (a != b) & (a > 0) & (b > 0)
        pairs |= {tuple(sorted(p)) for p in zip(a[sel].tolist(), b[sel].tolist())}
    return pairs


@pytest.mark.parametrize("kind", ["blobs", "ellipses"])
def test_basic_output(kind):
    ds = make_instances(n_images=3, shape=(64, 80), n_instances=(4, 8), kind=kind, random_state=0)
    assert isinstance(ds, Dataset) and len(ds) == 3
    assert ds.masks is None and ds.ignore is None
    for img, lab in zip(ds.images, ds.labels):
        assert img.shape == (64, 80) and img.dtype == np.float32
        assert img.min() >= 0 and img.max() <= 1
        assert lab.shape == (64, 80) and lab.dtype == np.int32
        # ids are sequential 1..K
        ids = np.unique(lab[lab > 0])
        np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))


@pytest.mark.parametrize("kind", ["blobs", "ellipses"])
@pytest.mark.parametrize("overlap", [False, True])
def test_deterministic(kind, overlap):
    a = make_instances(2, (48, 48), kind=kind, overlap=overlap, random_state=7)
    b = make_instances(2, (48, 48), kind=kind, overlap=overlap, random_state=7)
    c = make_instances(2, (48, 48), kind=kind, overlap=overlap, random_state=8)
    for x, y in zip(a.images + a.labels, b.images + b.labels):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.labels[0], c.labels[0])


def test_blob_counts_in_range_and_touching():
    ds = make_instances(n_images=6, shape=(128, 128), n_instances=(5, 15), random_state=1)
    counts = [_n_instances(lab) for lab in ds.labels]
    assert all(5 <= c <= 15 for c in counts), counts
    assert len(set(counts)) > 1  # the count is drawn per image
    assert all(_touching_pairs(lab) for lab in ds.labels)


def test_blob_instances_connected_and_have_borders():
    from scipy import ndimage as ndi

    ds = make_instances(n_images=2, shape=(96, 96), n_instances=10, random_state=2, noise=0.0)
    for img, lab in zip(ds.images, ds.labels):
        assert _n_instances(lab) == 10
        for k in range(1, lab.max() + 1):
            assert ndi.label(lab == k)[1] == 1
        # borders between touching cells are darker than cell interiors
        border = np.zeros(lab.shape, bool)
        border[1:] |= (lab[1:] != lab[:-1]) & (lab[1:] > 0) & (lab[:-1] > 0)
        interior = ndi.binary_erosion(lab > 0, iterations=3)
        assert img[border].mean() < img[interior].mean() - 0.1
        assert img[lab == 0].mean() < img[interior].mean()


def test_fixed_instance_count_ellipses_separate():
    ds = make_instances(n_images=3, shape=(128, 128), n_instances=6, kind="ellipses", random_state=3)
    for lab in ds.labels:
        assert _n_instances(lab) == 6
        assert not _touching_pairs(lab)  # separate worms do not touch


@pytest.mark.parametrize("kind", ["blobs", "ellipses"])
def test_overlap_mode(kind):
    ds = make_instances(n_images=4, shape=(96, 96), n_instances=(8, 12), kind=kind, overlap=True,
                        random_state=4)
    assert len(ds.masks) == len(ds.ignore) == 4
    any_overlap = False
    for lab, m, ign in zip(ds.labels, ds.masks, ds.ignore):
        assert m.dtype == bool and m.shape[1:] == lab.shape and m.shape[0] >= 1
        assert ign.dtype == bool and ign.shape == lab.shape
        count = m.sum(axis=0)
        np.testing.assert_array_equal(ign, count > 1)
        assert not lab[ign].any()
        single = count == 1
        np.testing.assert_array_equal(lab[single], m.argmax(axis=0)[single] + 1)
        any_overlap |= bool(ign.any())
    assert any_overlap


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        make_instances(kind="squares")
    with pytest.raises(ValueError, match="n_instances"):
        make_instances(n_instances=(5, 2))
    with pytest.raises(TypeError, match="n_images"):
        make_instances(n_images=1.5)
    with pytest.raises(ValueError, match="shape"):
        make_instances(shape=(0, 10))
    with pytest.raises(ValueError, match="noise"):
        make_instances(noise=-1)


def test_fast_enough():
    make_instances(1, random_state=0)  # warm imports
    best = min(_timed() for _ in range(3))
    assert best < 0.3, best


def _timed():
    t = time.perf_counter()
    make_instances(n_images=8, shape=(128, 128), random_state=0)
    return time.perf_counter() - t
