"""Malformed inputs found by benchmarks/fuzz.py get a clear error that names the argument.

Each of these used to fail deep inside numpy, torch, pathlib, tifffile or a Python operation (an
IndexError, a KeyError, a ZeroDivisionError, a struct.error, "could not convert string to float", ...).
"""

import numpy as np
import pytest

from harmonic_seg.guides import embedding_map, instance_embeddings, lookup_embeddings
from harmonic_seg.guides import GuideFunctions, guide_maps, random_guides


def labels(h=12, w=12):
    lab = np.zeros((h, w), np.int32)
    lab[2:6, 2:6] = 1
    lab[7:11, 5:10] = 2
    return lab


@pytest.fixture
def guides():
    return random_guides(3, (16, 16), random_state=0)


# ------------------------------------------------------------------------------------ guide functions
@pytest.mark.parametrize(
    ("freqs", "phases", "name"),
    [("x", [0.0], "frequencies"), ([[0.1, 0.2]], "p", "phases"), ([[0.1, 0.2]], [{}], "phases")],
)
def test_guide_functions_reject_non_numbers(freqs, phases, name):
    with pytest.raises((TypeError, ValueError), match=name):
        GuideFunctions(freqs, phases)


@pytest.mark.parametrize("d", [{"frequencies": [[0.1, 0.2]]}, None, [], "guides"])
def test_guide_functions_from_dict_needs_both_keys(d):
    with pytest.raises(ValueError, match="'frequencies', 'phases'"):
        GuideFunctions.from_dict(d)


@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [
        (dict(n_guides=np.inf), ValueError, "n_guides"),
        (dict(n_guides=-2**63), ValueError, "n_guides"),
        (dict(n_guides=2.0), ValueError, "n_guides"),
        (dict(random_state=-1), ValueError, "random_state"),
        (dict(random_state=2**40), ValueError, "random_state"),
        (dict(kind=None), ValueError, "kind"),
        (dict(kind=(0, np.inf)), ValueError, "range"),
    ],
)
def test_random_guides_names_the_bad_argument(kwargs, exc, name):
    args = dict(n_guides=3, reference_shape=(32, 32))
    args.update(kwargs)
    with pytest.raises(exc, match=name):
        random_guides(**args)


@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [
        (dict(stride=np.nan), ValueError, "stride"),
        (dict(stride=None), ValueError, "stride"),
        (dict(origin=(0,)), TypeError, "origin"),
        (dict(origin=None), TypeError, "origin"),
        (dict(origin="00"), TypeError, "origin"),
        (dict(origin=(np.nan, 0)), ValueError, "origin"),
    ],
)
def test_guide_maps_names_the_bad_argument(guides, kwargs, exc, name):
    with pytest.raises(exc, match=name):
        guide_maps(guides, (8, 8), **kwargs)


# --------------------------------------------------------------------------------------- embeddings
@pytest.mark.parametrize("origin", [None, (0,), (0, 0, 0), "00"])
def test_embeddings_check_origin(guides, origin):
    with pytest.raises(TypeError, match="origin"):
        instance_embeddings(labels(), guides, origin)
    with pytest.raises(TypeError, match="origin"):
        embedding_map(labels(), guides, origin)


@pytest.mark.parametrize("dtype", ["bogus", np.int32, bool, complex])
def test_embedding_map_needs_a_float_dtype(guides, dtype):
    with pytest.raises(TypeError, match="dtype must be a numpy floating dtype"):
        embedding_map(labels(), guides, dtype=dtype)
    with pytest.raises(TypeError, match="dtype must be a numpy floating dtype"):
        lookup_embeddings(np.zeros((3, 3)), labels(), dtype=dtype)
    assert embedding_map(labels(), guides, dtype="f4").dtype == np.float32


# ---------------------------------------------------------------------------------------- clustering
def test_mean_shift_refuses_points_whose_distances_overflow_float32():
    from harmonic_seg.clustering import MeanShift, mean_shift

    points = np.random.default_rng(0).random((50, 3)) * 1e30
    with pytest.raises(ValueError, match="too large for float32 distances"):
        mean_shift(points, 0.5)
    with pytest.raises(ValueError, match="too large for float32 distances"):
        MeanShift().fit(np.arange(20.0).reshape(10, 2) * 1e20)


@pytest.mark.parametrize("bandwidth", [1e-30, 1e-300])
def test_mean_shift_refuses_a_seeding_grid_too_fine_for_int64(bandwidth):
    from harmonic_seg.clustering import mean_shift

    with pytest.raises(ValueError, match="bin_size"):
        mean_shift(np.random.default_rng(0).random((50, 3)), bandwidth)
    assert mean_shift(np.zeros((5, 2)), bandwidth, seeds=None)[1].tolist() == [0] * 5  # no grid, no limit


# --------------------------------------------------------------------------------------- postprocess
@pytest.mark.parametrize(
    ("embedding", "exc", "match"),
    [(np.zeros((0, 12, 12)), ValueError, "N >= 1"), (np.full((2, 12, 12), "a"), TypeError, "real numbers")],
)
def test_instance_scores_checks_the_embedding(embedding, exc, match):
    from harmonic_seg.postprocess import instance_scores

    with pytest.raises(exc, match=match):
        instance_scores(labels(), embedding, 0.5)


# ------------------------------------------------------------------------------------------------ io
@pytest.mark.parametrize("call", ["load_folder", "load_label_pairs"])
@pytest.mark.parametrize("bad", [None, 5])
def test_folder_readers_check_the_path_type(call, bad, tmp_path):
    import harmonic_seg.io as hio

    hio.write_label_map(tmp_path / "a.tif", labels())  # the other argument is a valid folder
    with pytest.raises(TypeError, match="must be a str or pathlib.Path"):
        getattr(hio, call)(bad, tmp_path)
    with pytest.raises(TypeError, match="must be a str or pathlib.Path"):
        getattr(hio, call)(tmp_path, bad)


def test_load_folder_checks_the_pattern_type(tmp_path):
    from harmonic_seg.io import load_folder

    with pytest.raises(TypeError, match="pattern must be a str"):
        load_folder(tmp_path, tmp_path, pattern=5)


def test_write_label_map_checks_the_path(tmp_path):
    from harmonic_seg.io import write_label_map

    with pytest.raises(TypeError, match="path must be a str or pathlib.Path"):
        write_label_map(5, labels())
    (tmp_path / "folder.tif").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        write_label_map(tmp_path / "folder.tif", labels(), overwrite=True)
    assert (tmp_path / "folder.tif").is_dir()


@pytest.mark.parametrize(("name", "data"), [("a.tif", b"II*\x00"), ("b.tiff", b"MM\x00*\x00")])
def test_damaged_image_files_give_a_value_error(tmp_path, name, data):
    from harmonic_seg.io import read_image, read_label_map

    (tmp_path / name).write_bytes(data)
    for read in (read_image, read_label_map):
        with pytest.raises(ValueError, match="could not read"):
            read(tmp_path / name)


def test_masks_to_label_map_refuses_masks_of_different_shapes():
    from harmonic_seg.io import masks_to_label_map

    with pytest.raises(ValueError, match=r"\(K, H, W\) stack"):
        masks_to_label_map([labels() == 1, labels(9, 9) == 1])


# ------------------------------------------------------------------------------------------- metrics
@pytest.mark.parametrize(("thresh", "exc"), [([1], TypeError), ("abc", TypeError), ([0.5, 0.7], TypeError)])
def test_ap_score_needs_one_threshold(thresh, exc):
    from harmonic_seg.metrics import ap_score

    with pytest.raises(exc, match="thresh"):
        ap_score([labels()], [labels()], thresh=thresh)
    assert ap_score([labels()], [labels()], thresh=np.float32(0.5)) == 1.0


# -------------------------------------------------------------------------------------- guide fitter
@pytest.mark.parametrize("init_range", [(0,), (0, np.inf), ("a", "b")])
def test_fitter_init_range_must_be_a_pair(init_range):
    from harmonic_seg import GuideFunctionFitter

    with pytest.raises((TypeError, ValueError), match="init_range"):
        GuideFunctionFitter(init_range=init_range, max_iter=2).fit([labels()])


# ----------------------------------------------------------------------------------------- inference
@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [(dict(tile_size=np.nan), TypeError, "tile_size"), (dict(tile_size="16"), TypeError, "tile_size"),
     (dict(tile_size=16, overlap=np.nan), TypeError, "overlap"), (dict(batch_size=1.5), TypeError, "batch_size"),
     (dict(batch_size=0), ValueError, "batch_size")],
)
def test_predict_embeddings_checks_its_tiling(kwargs, exc, name):
    from harmonic_seg.nn import HarmonicUNet, predict_embeddings

    net = HarmonicUNet(1, 2, random_guides(2, (16, 16), random_state=0), depth=1, base_width=2)
    image = np.zeros((1, 20, 20), np.float32)
    with pytest.raises(exc, match=name):
        predict_embeddings(net, image, **kwargs)
    with pytest.raises(TypeError, match="real numbers"):
        predict_embeddings(net, image.astype(str))


# ----------------------------------------------------------------------------------------- callbacks
@pytest.mark.parametrize("callbacks", [[None], ["cb"], "cb", [object()]])
def test_trainer_checks_callbacks_before_training(callbacks):
    from harmonic_seg.nn import Callback, HarmonicUNet, Trainer

    g = random_guides(2, (16, 16), random_state=0)
    net = HarmonicUNet(1, 2, g, depth=1, base_width=2)
    with pytest.raises(TypeError, match="callbacks"):
        Trainer(net, g, callbacks=callbacks)
    assert Trainer(net, g, callbacks=(Callback(),)).callbacks[0].__class__ is Callback
