"""Tests of harmonic_seg.postprocess on hand-made label maps."""

import numpy as np
import pytest

from harmonic_seg.postprocess import (
    instance_scores,
    merge_small_instances,
    relabel_sequential,
    remove_small_instances,
    split_at_modes,
    split_into_components,
)


def test_remove_small_instances():
    lab = np.array([[1, 1, 0, 2], [1, 1, 0, 0], [0, 0, 3, 3]])
    out = remove_small_instances(lab, 2)
    np.testing.assert_array_equal(out, [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 3, 3]])
    assert out.dtype == lab.dtype and lab[0, 3] == 2  # input untouched
    np.testing.assert_array_equal(remove_small_instances(lab, 0), lab)
    np.testing.assert_array_equal(remove_small_instances(lab, 5), np.zeros_like(lab))
    with pytest.raises(ValueError, match="min_size"):
        remove_small_instances(lab, -1)
    with pytest.raises(TypeError, match="labels"):
        remove_small_instances(lab.astype(float) + 0.5, 2)


def test_merge_small_instances():
    # 1 and 3 are kept; 2 (a 3-pixel sliver between them) is merged; 4 touches nothing and is removed;
    # 5 touches only 2, so it reaches a kept instance through it
    lab = np.zeros((5, 11), dtype=np.int32)
    lab[1:4, 0:5] = 1
    lab[1:4, 5] = 2
    lab[1:4, 6:9] = 3
    lab[0, 10] = 4
    lab[4, 5] = 5
    out = merge_small_instances(lab, 4)
    assert out.dtype == lab.dtype and lab[1, 5] == 2  # input untouched
    assert set(np.unique(out)) == {0, 1, 3}
    np.testing.assert_array_equal(out > 0, (lab > 0) & (lab != 4))
    assert out[4, 5] == out[3, 5] and out[1, 5] in (1, 3)
    np.testing.assert_array_equal(out[lab == 1], 1)
    np.testing.assert_array_equal(out[lab == 3], 3)
    np.testing.assert_array_equal(merge_small_instances(lab, 1), lab)
    # nothing kept: all removed, as remove_small_instances does
    np.testing.assert_array_equal(merge_small_instances(lab, 100), np.zeros_like(lab))
    with pytest.raises(ValueError, match="min_size"):
        merge_small_instances(lab, -1)


def test_split_into_components():
    lab = np.array(
        [
            [5, 5, 0, 5],
            [0, 0, 0, 5],
            [7, 2, 2, 0],
            [0, 0, 0, 2],
        ]
    )
    out = split_into_components(lab)
    assert out.dtype == np.int32
    # id 5 in two blobs -> two ids; touching 7 and 2 stay apart; the diagonal 2 is a third piece
    assert len(np.unique(out[out > 0])) == 5
    assert out[0, 0] == out[0, 1] and out[0, 0] != out[0, 3]
    assert out[2, 0] != out[2, 1] and out[2, 1] == out[2, 2] and out[3, 3] != out[2, 2]
    np.testing.assert_array_equal(out > 0, lab > 0)
    out8 = split_into_components(lab, connectivity=2)
    assert out8[3, 3] == out8[2, 2]  # diagonal neighbours with 8-connectivity
    with pytest.raises(ValueError, match="connectivity"):
        split_into_components(lab, connectivity=3)


def test_relabel_sequential():
    lab = np.array([[0, 9, 9], [4, 0, 20]])
    out, ids = relabel_sequential(lab, return_ids=True)
    np.testing.assert_array_equal(out, [[0, 2, 2], [1, 0, 3]])
    np.testing.assert_array_equal(ids, [4, 9, 20])
    assert out.dtype == np.int32
    empty, ids = relabel_sequential(np.zeros((3, 3), int), return_ids=True)
    assert not empty.any() and ids.size == 0


def test_instance_scores_by_hand():
    lab = np.array([[1, 1, 0], [2, 2, 2]])
    emb = np.zeros((2, 2, 3), dtype=np.float32)
    emb[0] = [[0.0, 0.0, 9.0], [1.0, 1.0, 3.0]]  # pixel (1, 2) is 2 away from mode 1
    centers = np.array([[0.0, 0.0], [1.0, 0.0]])
    s = instance_scores(lab, emb, 0.5, centers=centers)
    np.testing.assert_allclose(s, [1.0, 2 / 3])
    prob = np.array([[1.0, 0.5, 0.0], [0.9, 0.9, 0.6]])
    s = instance_scores(lab, emb, 0.5, centers=centers, fg_prob=prob)
    np.testing.assert_allclose(s, [0.75, 0.8 * 2 / 3])
    # no centres: the instance means; instance 2 has mean (5/3, 0), its pixels are 2/3, 2/3 and 4/3 away
    s = instance_scores(lab, emb, 0.7, metric="l1")
    np.testing.assert_allclose(s, [1.0, 2 / 3])


def test_instance_scores_empty_and_errors():
    emb = np.zeros((3, 4, 4))
    assert instance_scores(np.zeros((4, 4), int), emb, 0.5).shape == (0,)
    lab = np.ones((4, 4), int)
    with pytest.raises(ValueError, match="embedding"):
        instance_scores(lab, np.zeros((3, 4, 5)), 0.5)
    bad = emb.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="embedding"):
        instance_scores(lab, bad, 0.5)
    with pytest.raises(ValueError, match="bandwidth"):
        instance_scores(lab, emb, 0.0)
    with pytest.raises(ValueError, match="centers"):
        instance_scores(lab, emb, 0.5, centers=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="fg_prob"):
        instance_scores(lab, emb, 0.5, fg_prob=np.ones((3, 3)))
    with pytest.raises(ValueError, match="metric"):
        instance_scores(lab, emb, 0.5, metric="cosine")


def _pair_modes():
    """A 16 x 36 component: left mode 1 (cols 2-17), right mode 2 (cols 18-37), a 2 x 2 patch of mode 3
    inside the left one, and a separate 3 x 3 component of mode 4; embeddings 0 (left) and 1 (right)."""
    modes = np.zeros((20, 44), np.int64)
    modes[2:18, 2:18] = 1
    modes[2:18, 18:38] = 2
    modes[5:7, 5:7] = 3
    modes[2:5, 40:43] = 4
    emb = np.zeros((2, 20, 44), np.float32)
    emb[0, :, 18:38] = 1.0
    return modes, emb


def test_split_at_modes_rules():
    modes, emb = _pair_modes()
    out = split_at_modes(modes, emb, 0.5)
    assert out.dtype == np.int32 and out.max() == 3
    np.testing.assert_array_equal(out > 0, modes > 0)  # the foreground exactly
    # the patch of mode 3 (4 px, under min_size and the share) joins the left instance; the small component
    # (9 px: one mode, one piece) stays whole: the minimum size does not remove components here
    assert len(np.unique(out[2:18, 2:18])) == 1 and out[3, 3] != out[3, 30]
    assert (out[2:5, 40:43] == out[2, 40]).all() and out[2, 40] not in (out[3, 3], out[3, 30])
    # margin: seeds' mean embeddings 1.0 apart; a margin above that keeps the component whole
    np.testing.assert_array_equal(split_at_modes(modes, emb, 1.01), split_into_components(modes > 0))
    assert split_at_modes(modes, emb, 1.01, metric="l1").max() == 2
    # share: the left piece holds 252 px, 0.79 of the right one (320 px, the largest); a share above that keeps
    # the component whole
    assert split_at_modes(modes, emb, 0.5, min_share=0.8).max() == 2
    assert split_at_modes(modes, emb, 0.5, min_share=0.75).max() == 3
    # size: pieces need min_size pixels to split (and the patch splits off with min_size=0 and no share)
    assert split_at_modes(modes, emb, 0.5, min_size=300).max() == 2
    emb[1, 5:7, 5:7] = 5.0
    assert split_at_modes(modes, emb, 0.5, min_share=0, min_size=0).max() == 4


def test_split_at_modes_floods_the_rest_to_the_nearest_seed_and_merges_through_touching_regions_only():
    # three stripes of one component: modes 1 | 2 | 3, embeddings 0 | 0.3 | 0.6: each neighbour pair is
    # closer than the margin 0.5 (merged, single linkage through the middle), the outer pair is not
    modes = np.zeros((10, 30), np.int64)
    modes[:, 0:10], modes[:, 10:20], modes[:, 20:30] = 1, 2, 3
    emb = np.zeros((1, 10, 30), np.float32)
    emb[0, :, 10:20], emb[0, :, 20:30] = 0.3, 0.6
    assert split_at_modes(modes, emb, 0.5).max() == 1
    # the middle stripe too thin to seed (a border band): the outer stripes are 0.6 apart and stay apart,
    # and the band's pixels go to the nearer one
    modes[:, 10:20] = 0
    modes[:, 14:16] = 2
    modes[:, 10:14], modes[:, 16:20] = 1, 3
    emb[0, :, 10:14], emb[0, :, 16:20] = 0.0, 0.6
    out = split_at_modes(modes, emb, 0.5, min_share=0.2)
    assert out.max() == 2
    np.testing.assert_array_equal(out[:, :15], 1)
    np.testing.assert_array_equal(out[:, 15:], 2)


def test_split_at_modes_edge_cases_and_errors():
    modes, emb = _pair_modes()
    empty = split_at_modes(np.zeros_like(modes), emb, 0.5)
    assert empty.dtype == np.int32 and not empty.any()
    with pytest.raises(ValueError, match="margin"):
        split_at_modes(modes, emb, 0.0)
    with pytest.raises(ValueError, match=r"min_share must be a fraction in \[0, 1\]"):
        split_at_modes(modes, emb, 0.5, min_share=1.5)
    with pytest.raises(ValueError, match="metric must be one of"):
        split_at_modes(modes, emb, 0.5, metric="cosine")
    with pytest.raises(ValueError, match="embedding must have shape"):
        split_at_modes(modes, emb[:, 1:], 0.5)


def test_split_at_modes_share_is_relative_to_the_largest_piece():
    # a clump: one object of 400 px and six of 48 px (an eighth of it, 5 % of the component) touching it,
    # each its own embedding: min_share=0.1 splits them all, 0.2 keeps the small ones with the large one
    modes = np.zeros((30, 60), np.int64)
    modes[5:25, 5:25] = 1
    emb = np.zeros((1, 30, 60), np.float32)
    for j in range(6):
        modes[5:11, 25 + 6 * j : 25 + 6 * j + 6] = j + 2  # 6 x 8 = 48 px each, a touching row
        modes[11:13, 25 + 6 * j : 25 + 6 * j + 6] = j + 2
        emb[0][modes == j + 2] = j + 1.0
    out = split_at_modes(modes, emb, 0.5, min_share=0.1)
    assert out.max() == 7
    assert split_at_modes(modes, emb, 0.5, min_share=0.2).max() == 1


def test_split_at_modes_splits_a_component_the_same_whatever_else_the_image_holds():
    """Unseeded speckles between two seeds are flooded within their own component: a crop that holds the
    component alone splits it as the whole image does (ties broken by the component's own order)."""
    rng = np.random.default_rng(0)

    def component(h, w):
        m = np.ones((h, w), np.int64)
        m[:, w // 2:] = 2
        speckle = rng.random((h, w)) < 0.35
        speckle[:, : w // 2 - 5] = speckle[:, w // 2 + 5:] = False
        m[speckle] = rng.integers(3, 40, speckle.sum())
        return m

    modes = np.zeros((70, 90), np.int64)
    modes[2:32, 5:45] = component(30, 40) + 100  # another splitting component, first in raster order
    modes[40:68, 30:86] = component(28, 56)
    emb = rng.normal(0, 0.01, (2, 70, 90)).astype(np.float32)
    emb[0] += (modes % 2) * 2.0  # modes 1 and 2 (and 101, 102) two units apart
    whole = split_at_modes(modes, emb, 0.5, min_size=5)
    box = np.s_[40:68, 30:86]
    crop = split_at_modes(modes[box], emb[(slice(None),) + box], 0.5, min_size=5)
    from sklearn.metrics import adjusted_rand_score

    assert crop.max() >= 2
    assert adjusted_rand_score(whole[box].ravel(), crop.ravel()) == 1.0
