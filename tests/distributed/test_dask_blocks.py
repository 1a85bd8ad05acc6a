"""The pieces of blockwise prediction that need no scheduler: block geometry, whole-image coordinates and
normalisation of a block, and the stitching rules."""

import numpy as np
import pytest
import torch

from harmonic_seg import HarmonicSegmenter, Tiling
from harmonic_seg.distributed._block import embed_region, intensity_range, normalise, segment_block
from harmonic_seg.distributed._geometry import local_slices, plan_blocks
from harmonic_seg.distributed._stitch import apply_table, face_pairs, iou_pairs, relabel_table, shrink_face
from harmonic_seg.guides import random_guides
from harmonic_seg.nn import predict_embeddings
from harmonic_seg.nn.unet import HarmonicUNet
from harmonic_seg.preprocessing import percentile_normalize, to_channels_first


def net_model(tile_size=None):
    """A segmenter around an untrained depth-2 SinConv network with non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    net = HarmonicUNet(1, 4, random_guides(4, (64, 64), random_state=0), depth=2, base_width=4)
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(2, 1, 32, 32))
    seg = HarmonicSegmenter(tiling=Tiling(size=tile_size), device="cpu", amp=False)  # float32: exact equality
    seg.module_ = net.eval()
    return seg


def test_plan_blocks_geometry():
    plan = plan_blocks((150, 170), ((64, 64, 22), (50, 50, 50, 20)), 20, 13, 4)
    assert plan.grid == (3, 4) and len(plan.blocks) == 12
    for b in plan.blocks:
        (y0, y1, x0, x1), (cy0, cy1, cx0, cx1), (iy0, iy1, ix0, ix1) = b.core, b.context, b.input
        assert iy0 % 4 == 0 and ix0 % 4 == 0  # the whole image's pooling grid
        assert cy0 == max(0, y0 - 20) and cy1 == min(150, y1 + 20) and cx0 == max(0, x0 - 20)
        assert iy0 <= max(0, cy0 - 13) and iy1 == min(150, cy1 + 13) and ix1 == min(170, cx1 + 13)
    assert plan.block(2, 3).core == (128, 150, 150, 170)
    # the strip two neighbours share is inside both contexts
    a, b = plan.block(0, 1), plan.block(1, 1)
    s = a.strip("bottom", plan)
    assert s == b.strip("top", plan)
    for blk in (a, b):
        assert blk.context[0] <= s[0] and s[1] <= blk.context[1]
    with pytest.raises(ValueError, match="add up"):
        plan_blocks((150, 170), ((64, 64), (170,)), 0, 0, 1)


@pytest.mark.parametrize("tile_size", [None, 64])
def test_block_embedding_equals_the_whole_image(tile_size):
    seg = net_model(tile_size)
    rng = np.random.default_rng(0)
    image = rng.standard_normal((150, 170)).astype(np.float32)
    emb_w, prob_w = predict_embeddings(seg.module_, image[None], tile_size=tile_size,
                                       overlap=2 * (seg.module_.receptive_field // 2))
    rf = seg.module_.receptive_field
    plan = plan_blocks(image.shape, ((48, 48, 54), (64, 64, 42)), 10, rf // 2, seg.module_.size_multiple)
    worst, worst_no_origin = 0.0, 0.0
    for b in plan.blocks:
        y0, y1, x0, x1 = b.input
        cs = local_slices(b.context, b.input)
        ws = local_slices(b.context, (0, 150, 0, 170))
        emb, prob = embed_region(seg, image[None, y0:y1, x0:x1], (y0, x0))
        worst = max(worst, np.abs(emb[:, cs[0], cs[1]] - emb_w[:, ws[0], ws[1]]).max(),
                    np.abs(prob[cs] - prob_w[ws]).max())
        emb0, _ = embed_region(seg, image[None, y0:y1, x0:x1], (0, 0))  # the guide maps of the block's own frame
        worst_no_origin = max(worst_no_origin, np.abs(emb0[:, cs[0], cs[1]] - emb_w[:, ws[0], ws[1]]).max())
    assert worst < 1e-5
    assert worst_no_origin > 1e-3  # the origin matters: without it the blocks would differ


def test_normalise_uses_the_given_range_like_percentile_normalize():
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 4000, (60, 70)).astype(np.uint16)
    expected = to_channels_first(percentile_normalize(gray, 1.0, 99.8))
    np.testing.assert_array_equal(normalise(gray, intensity_range(gray, (1.0, 99.8))), expected)
    rgb = rng.random((60, 70, 3)) * [1, 10, 100]
    expected = to_channels_first(percentile_normalize(rgb, 2.0, 98.0))
    np.testing.assert_allclose(normalise(rgb, intensity_range(rgb, (2.0, 98.0))), expected, rtol=1e-6)
    # a block is normalised with the whole image's values, not its own
    value_range = intensity_range(gray, (1.0, 99.8))
    block = gray[:20, :20]
    expected_block = normalise(gray, value_range)[:, :20, :20]
    np.testing.assert_array_equal(normalise(block, value_range), expected_block)
    assert not np.allclose(expected_block, to_channels_first(percentile_normalize(block, 1.0, 99.8)))
    with pytest.raises(ValueError, match="NaN"):
        normalise(np.full((4, 4), np.nan), None)


def test_face_rules():
    a = np.array([0, 1, 1, 1, 2, 2, 0, 3])
    b = np.array([5, 5, 6, 6, 6, 6, 6, 0])
    np.testing.assert_array_equal(face_pairs(a, b), [[1, 1, 2], [5, 6, 6]])
    np.testing.assert_array_equal(shrink_face(a), [0, 0, 1, 0, 0, 0, 0, 0])
    sa = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    sb = np.array([[4, 4, 4, 5], [4, 4, 4, 5]])
    np.testing.assert_array_equal(iou_pairs(sa, sb, 0.5), [[1, 2], [4, 5]])  # IoU 4/6 and 2/4
    np.testing.assert_array_equal(iou_pairs(sa, sb, 0.6), [[1], [4]])


def two_blocks(mean_b2):
    """Blocks side by side: block 0 has instances 1 and 2 on its right face, block 1 has 1 and 2 on its left
    face; 1-1 carry the same embedding, 2-2 carry ``mean_b2`` and (1, 0) against block 0's (0, 1)."""
    face0 = np.array([1, 1, 1, 2, 2, 2])
    face1 = np.array([1, 1, 1, 2, 2, 2])
    strip0 = np.tile(face0[:, None], (1, 4))
    meta0 = {"n": 2, "means": np.array([[0.0, 0.0], [0.0, 1.0]]), "truncated": 0,
             "faces": {"right": face0, "left": np.zeros(6, int), "top": np.zeros(1, int), "bottom": np.zeros(1, int)},
             "strips": {"right": strip0}}
    meta1 = {"n": 2, "means": np.array([[0.01, 0.0], mean_b2]), "truncated": 0,
             "faces": {"left": face1, "right": np.zeros(6, int), "top": np.zeros(1, int), "bottom": np.zeros(1, int)},
             "strips": {"left": strip0.copy()}}
    return [meta0, meta1]


def test_relabel_table_rules():
    metas = two_blocks([1.0, 0.0])  # block 1's instance 2 is another object (its embedding is far away)
    table, offsets, stats = relabel_table(metas, (1, 2), "embedding", bandwidth=0.5)
    assert list(offsets) == [0, 2] and stats["labels"] == 4 and stats["candidate_pairs"] == 2
    assert table[offsets[0] + 1] == table[offsets[1] + 1]  # the cut instance is joined
    assert table[offsets[0] + 2] != table[offsets[1] + 2]  # the touching neighbour is not
    assert sorted(table[1:]) == [1, 1, 2, 3] and stats["instances"] == 3
    table, _, stats = relabel_table(metas, (1, 2), "touch")
    assert stats["instances"] == 2  # touching is enough: both pairs joined
    table, _, stats = relabel_table(metas, (1, 2), "iou", iou_threshold=0.5)
    assert stats["instances"] == 2  # the two blocks saw the same strip
    table, _, stats = relabel_table(metas, (1, 2), "embedding", bandwidth=0.5, metric="l1")
    assert stats["instances"] == 3
    np.testing.assert_array_equal(apply_table(np.array([[0, 1], [2, 0]]), table, 2), [[0, table[3]], [table[4], 0]])
    with pytest.raises(ValueError, match="stitch"):
        relabel_table(metas, (1, 2), "nearest")


def test_segment_block_describes_its_instances(oracle, crowded):
    rf = oracle.module_.receptive_field
    plan = plan_blocks(crowded.shape, ((128, 128), (128, 128)), 40, rf // 2, oracle.module_.size_multiple)
    b = plan.block(0, 1)
    y0, y1, x0, x1 = b.input
    labels, meta = segment_block(oracle, crowded[y0:y1, x0:x1].astype(np.float32), None, b, plan, strips=True)
    assert labels.shape == (128, 128) and labels.dtype == np.int32
    assert meta["n"] == labels.max() == len(np.unique(labels)) - 1
    assert meta["means"].shape == (meta["n"], oracle.module_.n_outputs)
    np.testing.assert_array_equal(meta["faces"]["left"], labels[:, 0])
    assert meta["strips"]["bottom"].shape == (80, 168)  # the rows shared with the block below, its context's width
    assert set(meta["seconds"]) == {"normalise", "network", "clustering", "block"}
    assert meta["seconds"]["block"] >= meta["seconds"]["network"] + meta["seconds"]["clustering"] > 0
