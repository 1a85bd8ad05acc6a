import numpy as np
import pytest

from harmonic_seg.guides import embedding_map, embedding_table, instance_embeddings, lookup_embeddings
from harmonic_seg.guides import random_guides


def _labels():
    lab = np.zeros((40, 60), dtype=np.int32)
    lab[2:12, 3:20] = 5
    lab[20:38, 30:58] = 2
    lab[15:18, 0:4] = 9
    return lab


def test_embedding_is_mean_of_guides_over_instance():
    g = random_guides(8, (40, 60), random_state=0)
    lab = _labels()
    maps = g.evaluate(lab.shape, dtype=np.float64)
    ids, emb = instance_embeddings(lab, g)
    assert ids.tolist() == [2, 5, 9]
    for i, k in enumerate(ids):
        np.testing.assert_allclose(emb[i], maps[:, lab == k].mean(axis=1), atol=1e-12)


def test_embedding_map_assigns_instance_embedding_and_zero_background():
    g = random_guides(8, (40, 60), random_state=0)
    lab = _labels()
    target, ids, emb = embedding_map(lab, g, return_embeddings=True)
    assert target.shape == (8, 40, 60) and target.dtype == np.float32
    assert np.all(target[:, lab == 0] == 0)
    for i, k in enumerate(ids):
        np.testing.assert_allclose(target[:, lab == k], np.repeat(emb[i][:, None], (lab == k).sum(), 1), atol=1e-6)


def test_origin_shifts_coordinates():
    g = random_guides(4, (40, 60), random_state=0)
    big = np.zeros((100, 100), dtype=int)
    big[50:90, 30:90] = _labels()
    _, e_big = instance_embeddings(big, g)
    _, e_win = instance_embeddings(_labels(), g, origin=(50, 30))
    np.testing.assert_allclose(e_big, e_win, atol=1e-12)


def test_empty_label_map_gives_no_instances():
    g = random_guides(4, (10, 10), random_state=0)
    ids, emb = instance_embeddings(np.zeros((10, 10), int), g)
    assert ids.size == 0 and emb.shape == (0, 4)
    assert np.all(embedding_map(np.zeros((10, 10), int), g) == 0)


@pytest.mark.parametrize(
    "labels, exc, match",
    [
        (np.zeros((4, 4), dtype=float), TypeError, "integer instance ids"),
        (-np.ones((4, 4), dtype=int), ValueError, "non-negative"),
        (np.zeros((2, 4, 4), dtype=int), ValueError, "2-D label map"),
        (np.full((4, 4), 2**63, dtype=np.uint64), ValueError, "relabel"),
    ],
)
def test_bad_label_maps(labels, exc, match):
    g = random_guides(4, (10, 10), random_state=0)
    with pytest.raises(exc, match=match):
        embedding_map(labels, g)


def test_bad_guides_argument():
    with pytest.raises(TypeError, match="guides must be a GuideFunctions"):
        embedding_map(np.zeros((4, 4), int), np.zeros((4, 2)))


@pytest.mark.parametrize("kind", ["sin", "linear"])
@pytest.mark.parametrize("texture", ["blocks", "noise"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (33, 47), (40, 300)])
def test_sums_match_direct_evaluation(kind, texture, shape):
    # Block maps take the path of sums per horizontal run (prefix sums); noise
    # maps, whose runs are a pixel or two, the per-guide evaluation. Both are
    # checked against the guides evaluated on every pixel, with runs that end
    # at row ends, labels absent from the map, and an origin.
    rng = np.random.default_rng(3)
    g = random_guides(6, (40, 60), random_state=1)
    if kind == "linear":
        g = type(g)(frequencies=g.frequencies, phases=g.phases, kind="linear")
    if texture == "blocks":
        lab = np.kron(rng.integers(0, 9, (shape[0] // 8 + 1, shape[1] // 8 + 1)), np.ones((8, 8), int))
        lab = lab[: shape[0], : shape[1]]
    else:
        lab = rng.integers(0, 5, shape)
        lab[: shape[0] // 2] = 7
    origin = (2.5, -11.0)
    maps = g.evaluate(shape, origin=origin, dtype=np.float64)
    ids, emb = instance_embeddings(lab, g, origin=origin)
    assert ids.tolist() == sorted(set(np.unique(lab).tolist()) - {0})
    for i, k in enumerate(ids):
        np.testing.assert_allclose(emb[i], maps[:, lab == k].mean(axis=1), rtol=1e-10, atol=1e-10)
    table = embedding_table(lab, g, origin=origin)
    np.testing.assert_allclose(table[ids], emb, rtol=0, atol=0)
    assert np.all(np.delete(table, ids, axis=0) == 0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint64, np.int8, bool])
def test_label_dtypes_give_the_same_embeddings(dtype):
    g = random_guides(4, (40, 60), random_state=0)
    lab = _labels() % 2 if dtype is bool else _labels()
    ref = embedding_map(lab.astype(np.int64), g)
    out = embedding_map(lab.astype(dtype), g)
    np.testing.assert_array_equal(out, ref)
    assert out.flags.c_contiguous and out.dtype == np.float32


def test_lookup_in_a_window_equals_window_of_full_map():
    g = random_guides(8, (40, 60), random_state=0)
    lab = _labels()
    table = embedding_table(lab, g)
    assert table.shape == (10, 8) and np.all(table[[0, 1, 3]] == 0)
    window = (slice(5, 30), slice(10, 50))
    np.testing.assert_array_equal(lookup_embeddings(table, lab[window]), embedding_map(lab, g)[:, window[0], window[1]])


def test_lookup_rejects_labels_beyond_the_table():
    g = random_guides(4, (40, 60), random_state=0)
    table = embedding_table(_labels(), g)
    assert lookup_embeddings(table, np.full((3, 3), 9)).shape == (4, 3, 3)
    with pytest.raises(ValueError, match="beyond the 10 rows"):
        lookup_embeddings(table, np.full((3, 3), 10))
    with pytest.raises(ValueError, match="2-D array"):
        lookup_embeddings(table[0], _labels())


def _sparse_labels(big):
    """A 32x32 map of three instances, one of them with the id ``big``, and its 1..3 relabelling."""
    lab = np.zeros((32, 32), dtype=np.int64)
    lab[2:10, 2:10] = 3
    lab[15:25, 15:25] = big
    lab[2:8, 20:30] = 7
    _, inv = np.unique(lab, return_inverse=True)
    return lab, inv.reshape(lab.shape)


def _peak_bytes(fn):
    import tracemalloc

    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("big", [10**7, 2**31 - 1, 2**40])
def test_sparse_ids_cost_memory_of_the_instances_not_of_the_largest_id(big):
    # An id of 10**7 used to cost 0.8-2.8 GB (arrays of max id + 1 rows), 2**31 - 1 a MemoryError.
    g = random_guides(12, (32, 32), random_state=0)
    lab, compact = _sparse_labels(big)
    (ids, emb), peak = _peak_bytes(lambda: instance_embeddings(lab, g))
    assert peak < 2**21
    assert ids.tolist() == [3, 7, big]
    np.testing.assert_array_equal(emb, instance_embeddings(compact, g)[1])
    (target, ids2, emb2), peak = _peak_bytes(lambda: embedding_map(lab, g, return_embeddings=True))
    assert peak < 2**21
    ref_target, _, ref_emb = embedding_map(compact, g, return_embeddings=True)
    np.testing.assert_array_equal(target, ref_target)
    np.testing.assert_array_equal(emb2, ref_emb)
    assert ids2.tolist() == [3, 7, big]


def test_crop_sampler_renumbers_sparse_ids():
    pytest.importorskip("torch")
    from harmonic_seg.nn.data import CropSampler

    g = random_guides(12, (32, 32), random_state=0)
    lab, compact = _sparse_labels(2**31 - 1)
    image = np.random.default_rng(0).random((1, 32, 32), dtype=np.float32)

    def draw(labels):
        sampler = CropSampler([image], [labels], g, crop_size=24)
        return sampler.batch(np.random.default_rng(1), 3), sampler.center_crops()

    (batch, centre), peak = _peak_bytes(lambda: draw(lab))
    assert peak < 2**22  # the embedding table of every sample used to have 2**31 rows
    ref_batch, ref_centre = draw(compact)
    for a, b in zip(batch + centre[0], ref_batch + ref_centre[0]):
        np.testing.assert_array_equal(a, b)


def test_embedding_table_of_huge_ids_is_refused_before_allocating():
    from harmonic_seg.guides import embedding_table
    from harmonic_seg.guides import random_guides

    labels = np.zeros((16, 16), np.int64)
    labels[2:6, 2:6] = 1
    labels[8:12, 8:12] = 2
    guides = random_guides(4, (16, 16), random_state=0)
    with pytest.raises(ValueError, match="relabel_sequential"):  # was a MemoryError (2**41 rows)
        embedding_table(labels * 2**40, guides)
    sparse = embedding_table(labels * 1000, guides)  # sparse but small: still one row per id
    assert sparse.shape == (2001, 4) and np.allclose(sparse[[1000, 2000]], embedding_table(labels, guides)[1:])
