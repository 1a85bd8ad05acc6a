"""Blockwise prediction of one large image on dask equals the whole image's prediction."""

import logging

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
zarr = pytest.importorskip("zarr")

from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from harmonic_seg import HarmonicSegmenter  # noqa: E402
from harmonic_seg.distributed import global_intensity_range, predict_blockwise, predict_to_zarr  # noqa: E402

CHUNK = 64


@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


def agreement(whole, blocks, chunk=CHUNK):
    """ARI over the foreground of either, instance counts, and whole-image instances crossing a block border
    that the blocks split (two labels with at least 10 % of the instance each)."""
    fg = (whole > 0) | (blocks > 0)
    pairs, counts = np.unique(np.stack([whole[fg], blocks[fg]]), axis=1, return_counts=True)
    area = np.bincount(whole.ravel())
    big = (pairs[0] > 0) & (pairs[1] > 0) & (counts >= 0.1 * area[pairs[0]])
    parts = np.bincount(pairs[0][big], minlength=area.size)
    ys, xs = np.nonzero(whole)
    cell = (ys // chunk) * 1000 + xs // chunk
    lo = np.full(area.size, 10**9)
    hi = np.full(area.size, -1)
    np.minimum.at(lo, whole[ys, xs], cell)
    np.maximum.at(hi, whole[ys, xs], cell)
    return {
        "ari": adjusted_rand_score(whole[fg], blocks[fg]),
        "n_whole": len(np.unique(whole)) - 1,
        "n_blocks": len(np.unique(blocks)) - 1,
        "crossing": int((hi > lo).sum()),
        "split_at_borders": int(((parts >= 2) & (hi > lo)).sum()),
    }


@pytest.fixture(scope="module")
def whole(oracle, crowded):
    return oracle.predict([crowded.astype(np.float32)])[0]


@pytest.mark.parametrize("stitch", ["embedding", "iou"])
def test_blockwise_equals_whole_image(oracle, crowded, whole, stitch):
    image = da.from_array(crowded.astype(np.float32), chunks=CHUNK)
    lazy = predict_blockwise(oracle, image, stitch=stitch)
    assert isinstance(lazy, da.Array) and lazy.shape == crowded.shape and lazy.dtype == np.int32
    assert lazy.chunks == image.chunks
    labels = lazy.compute()
    got = agreement(whole, labels)
    assert got["crossing"] >= 10  # many instances are cut by the 16 blocks
    assert got["ari"] >= 0.999
    assert got["n_blocks"] == got["n_whole"]
    assert got["split_at_borders"] == 0
    assert labels.max() == got["n_blocks"]  # ids 1..K, unique over the image


def test_touch_stitching_joins_touching_neighbours(oracle, crowded, whole):
    """Joining every pair that touches across a face (after shrinking) merges distinct touching cells."""
    image = da.from_array(crowded.astype(np.float32), chunks=CHUNK)
    labels = predict_blockwise(oracle, image, stitch="touch").compute()
    by_embedding = predict_blockwise(oracle, image).compute()
    assert agreement(whole, labels)["ari"] < agreement(whole, by_embedding)["ari"]


def test_blocks_are_normalised_with_the_whole_image_percentiles(crowded):
    """The oracle decodes instance ids from the normalised image with the whole image's range; a block
    normalised with its own percentiles would decode wrong ids."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import OracleNet, oracle_segmenter

    seg = oracle_segmenter(crowded)
    seg.set_params(percentiles=(0.0, 100.0))
    lo, hi = 100.0, 100.0 + 3.0 * crowded.max()
    image = (100.0 + 3.0 * crowded).astype(np.float32)

    class Decoding(OracleNet):
        def forward(self, x, origin):
            return super().forward(((x * (hi - lo) + lo) - 100.0) / 3.0, origin)

    seg.module_ = Decoding(seg.module_.table).eval()
    whole = seg.predict([image])[0]
    assert len(np.unique(whole)) - 1 == len(np.unique(crowded)) - 1
    rng = global_intensity_range(seg, da.from_array(image, chunks=CHUNK)).compute()
    np.testing.assert_allclose([float(rng[0].ravel()[0]), float(rng[1].ravel()[0])], [lo, hi])
    labels = predict_blockwise(seg, da.from_array(image, chunks=CHUNK)).compute()
    assert agreement(whole, labels)["ari"] >= 0.999


def test_predict_to_zarr(oracle, crowded, tmp_path, whole):
    src = zarr.open_array(store=str(tmp_path / "in.zarr"), mode="w", shape=crowded.shape, chunks=(CHUNK, CHUNK),
                          dtype=np.float32)
    src[...] = crowded
    out = predict_to_zarr(oracle, str(tmp_path / "in.zarr"), tmp_path / "labels.zarr")
    assert out.shape == crowded.shape and out.chunks == (CHUNK, CHUNK) and out.dtype == np.int32
    labels = out[...]
    lazy = predict_blockwise(oracle, da.from_zarr(str(tmp_path / "in.zarr"))).compute()
    np.testing.assert_array_equal(labels, lazy)  # the same numbering as the lazy result
    assert out.attrs["n_instances"] == labels.max() == len(np.unique(labels)) - 1
    assert out.attrs["stitch"] == "embedding"
    seconds = out.attrs["seconds"]  # where the time went: the blocks' steps summed, then the stitching passes
    assert set(seconds) == {"normalise", "network", "clustering", "blocks", "stitching", "renumbering"}
    assert all(v >= 0 for v in seconds.values()) and seconds["network"] > 0 and seconds["clustering"] > 0
    assert seconds["blocks"] >= seconds["normalise"] + seconds["network"] + seconds["clustering"]
    with pytest.raises(FileExistsError, match="overwrite"):
        predict_to_zarr(oracle, str(tmp_path / "in.zarr"), tmp_path / "labels.zarr")
    again = predict_to_zarr(oracle, src, tmp_path / "labels.zarr", chunks=128, overwrite=True, stitch="iou")
    assert again.chunks == (128, 128)
    assert agreement(whole, again[...], 128)["ari"] >= 0.999


def test_objects_larger_than_the_overlap_are_reported(oracle, crowded, caplog):
    with caplog.at_level(logging.WARNING, logger="harmonic_seg.distributed"):
        predict_blockwise(oracle, da.from_array(crowded.astype(np.float32), chunks=CHUNK), overlap=2).compute()
    assert "larger than the overlap" in caplog.text


def test_errors_before_any_work(oracle, crowded, tiny_model, tmp_path):
    image = da.from_array(crowded.astype(np.float32), chunks=CHUNK)
    with pytest.raises(NotFittedError):
        predict_blockwise(HarmonicSegmenter(), image)
    halved = HarmonicSegmenter(scale=0.5)
    halved.__dict__.update({k: v for k, v in tiny_model.__dict__.items() if k.endswith("_")})
    halved.scale_ = 0.5
    with pytest.raises(ValueError, match="scale 1"):
        predict_blockwise(halved, image)
    with pytest.raises(ValueError, match="channel"):
        predict_blockwise(oracle, da.zeros((64, 64, 3), chunks=32))
    with pytest.raises(ValueError, match="stitch"):
        predict_blockwise(oracle, image, stitch="nearest")
    with pytest.raises(ValueError, match="iou_threshold"):
        predict_blockwise(oracle, image, stitch="iou", iou_threshold=0)
    with pytest.raises(ValueError, match="overlap"):
        predict_blockwise(oracle, image, overlap=-1)
    with pytest.raises(ValueError, match="shape"):
        predict_blockwise(oracle, da.zeros((4, 4, 4, 4), chunks=2))
    with pytest.raises(TypeError, match="real numbers"):
        predict_blockwise(oracle, da.zeros((64, 64), dtype=complex, chunks=32))
    with pytest.raises(ValueError, match="regular chunks"):
        predict_to_zarr(oracle, da.zeros((100, 100), chunks=((30, 70), (50, 50))), tmp_path / "x.zarr")
    assert not (tmp_path / "x.zarr").exists()


def test_segmenter_predict_of_a_dask_array_is_blockwise(oracle, crowded, whole):
    image = da.from_array(crowded.astype(np.float32), chunks=CHUNK)
    lazy = oracle.predict(image)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), predict_blockwise(oracle, image).compute())
    with pytest.raises(ValueError, match="foreground"):
        oracle.predict(image, return_scores=True)


def test_a_mosaic_has_its_copies_instances_blockwise_and_whole():
    """16 x 16 copies of a label map with 30 touching cells have 7680 instances, blockwise and whole. Above
    ``max_points`` foreground pixels the mode search runs in each connected component on its own, so a cell
    has its modes wherever the image is cut (a sample of a fixed size drawn from the whole mosaic left many
    cells without a pixel in the search and merged them into a neighbour: 7220 instances)."""
    import sys
    from pathlib import Path

    from harmonic_seg.synthetic import make_instances

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import oracle_segmenter

    tile = make_instances(n_images=1, shape=(64, 64), n_instances=(30, 30), random_state=3).labels[0]
    tile = tile.astype(np.int32)
    tile[[0, -1], :] = 0
    tile[:, [0, -1]] = 0  # copies do not touch
    seg = oracle_segmenter(tile)
    seg.recovery_ = "split"  # the default of fitted models
    per_copy = int(seg.predict([tile.astype(np.float32)])[0].max())
    assert per_copy == len(np.unique(tile)) - 1 == 30
    mosaic = np.tile(tile, (16, 16)).astype(np.float32)
    blocks = predict_blockwise(seg, da.from_array(mosaic, chunks=128)).compute()
    assert blocks.max() == len(np.unique(blocks)) - 1 == 256 * per_copy
    whole = seg.predict([mosaic])[0]
    assert whole.max() == 256 * per_copy
    assert agreement(whole, blocks, 128)["ari"] >= 0.999
