"""Tests of harmonic_seg.io: readers/writers on tiny files, loaders on the real data."""

import logging

import numpy as np
import pytest
import tifffile
from PIL import Image

from .conftest import data_path
from harmonic_seg.io import (
    Dataset,
    default_data_root,
    load_bbbc010,
    load_ctc,
    load_cvppp,
    load_folder,
    load_split,
    masks_to_label_map,
    read_image,
    read_label_map,
    write_label_map,
)


# ---------------------------------------------------------------- readers

def test_palette_png_keeps_indices(tmp_path):
    ids = np.array([[0, 1, 2], [3, 3, 7]], np.uint8)
    im = Image.fromarray(ids, mode="P")
    im.putpalette([255, 0, 0] * 256)  # all-red palette: RGB conversion would lose ids
    im.save(tmp_path / "lab.png")
    assert Image.open(tmp_path / "lab.png").mode == "P"
    np.testing.assert_array_equal(read_image(tmp_path / "lab.png"), ids)
    np.testing.assert_array_equal(read_label_map(tmp_path / "lab.png"), ids)


def test_rgba_png_drops_alpha(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 256, (5, 6, 4), dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "x.png")
    out = read_image(tmp_path / "x.png")
    assert out.shape == (5, 6, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgba[..., :3])
    np.testing.assert_array_equal(read_image(tmp_path / "x.png", drop_alpha=False), rgba)


def test_16bit_tif_roundtrip(tmp_path):
    arr = np.array([[0, 1000], [40000, 65535]], np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", arr)
    out = read_image(tmp_path / "a.tif")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, arr)


def test_missing_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        read_image(tmp_path / "nothere.png")
    with pytest.raises(FileNotFoundError, match="nothere.tif"):
        read_label_map(tmp_path / "nothere.tif")


def test_unsupported_suffix(tmp_path):
    (tmp_path / "a.bmp").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"\.bmp"):
        read_image(tmp_path / "a.bmp")


def test_rgb_label_png_is_error(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[1, 1] = (255, 0, 0)
    rgb[2, 2] = (0, 255, 0)
    Image.fromarray(rgb).save(tmp_path / "col.png")
    with pytest.raises(ValueError, match="colour-coded"):
        read_label_map(tmp_path / "col.png")
    grey = np.repeat(np.array([[0, 2], [5, 5]], np.uint8)[..., None], 3, axis=2)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_label_map(tmp_path / "grey.png"), grey[..., 0])


def test_label_map_3d_tif_is_error(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 4, 5), np.uint16), photometric="minisblack")
    with pytest.raises(ValueError, match="2-D"):
        read_label_map(tmp_path / "stack.tif")


@pytest.mark.parametrize("name", ["out.png", "out.tif"])
def test_write_label_map_roundtrip_and_overwrite(tmp_path, name):
    lab = np.zeros((6, 7), np.int64)
    lab[1:3, 1:4] = 300
    lab[4, 5] = 2
    path = write_label_map(tmp_path / name, lab)
    back = read_label_map(path)
    assert np.issubdtype(back.dtype, np.integer)
    np.testing.assert_array_equal(back, lab)
    with pytest.raises(FileExistsError, match=name):
        write_label_map(tmp_path / name, lab)
    write_label_map(tmp_path / name, lab + 1, overwrite=True)
    np.testing.assert_array_equal(read_label_map(path), lab + 1)


def test_write_label_map_png_16bit_and_too_large(tmp_path):
    lab = np.array([[0, 65535]], np.int32)
    write_label_map(tmp_path / "a.png", lab)
    assert Image.open(tmp_path / "a.png").mode.startswith("I")
    with pytest.raises(ValueError, match="65536"):
        write_label_map(tmp_path / "b.png", lab + 1)
    write_label_map(tmp_path / "b.tif", lab + 1)
    np.testing.assert_array_equal(read_label_map(tmp_path / "b.tif"), lab + 1)


def test_write_label_map_rejects_bad_labels(tmp_path):
    with pytest.raises(ValueError):
        write_label_map(tmp_path / "a.tif", -np.ones((3, 3), int))
    with pytest.raises(ValueError, match="suffix|format"):
        write_label_map(tmp_path / "a.jpg", np.ones((3, 3), int))


# ---------------------------------------------------------------- Dataset + helpers

def test_dataset_len_subset_and_checks():
    imgs = [np.zeros((4, 5)), np.ones((4, 5)), np.ones((3, 3))]
    labs = [np.zeros((4, 5), np.int32), np.ones((4, 5), np.int32), np.ones((3, 3), np.int32)]
    ds = Dataset(images=imgs, labels=labs, names=["a", "b", "c"])
    assert len(ds) == 3
    sub = ds.subset([2, 0])
    assert sub.names == ["c", "a"] and sub.images[0].shape == (3, 3) and sub.masks is None
    assert ds.subset(np.array([False, True, False])).names == ["b"]
    with pytest.raises(IndexError):
        ds.subset([3])
    with pytest.raises(ValueError, match="labels"):
        Dataset(images=imgs, labels=labs[:2], names=["a", "b", "c"])
    with pytest.raises(ValueError, match="'b'"):
        Dataset(images=imgs, labels=[labs[0], labs[2], labs[2]], names=["a", "b", "c"])
    with pytest.raises(AttributeError):
        ds.names = []  # frozen
    assert "n=3" in repr(ds)


def test_masks_to_label_map_policies():
    m = np.zeros((2, 1, 6), bool)
    m[0, 0, 0:4] = True  # worm 1: 4 pixels
    m[1, 0, 2:5] = True  # worm 2: 3 pixels, overlap at 2, 3
    lab, ign = masks_to_label_map(m, "ignore")
    np.testing.assert_array_equal(lab[0], [1, 1, 0, 0, 2, 0])
    np.testing.assert_array_equal(ign[0], [0, 0, 1, 1, 0, 0])
    lab, ign = masks_to_label_map(m, "first")
    np.testing.assert_array_equal(lab[0], [1, 1, 1, 1, 2, 0])
    assert not ign.any()
    lab, _ = masks_to_label_map(m, "smallest")
    np.testing.assert_array_equal(lab[0], [1, 1, 2, 2, 2, 0])
    with pytest.raises(ValueError, match="policy"):
        masks_to_label_map(m, "union")


def test_default_data_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HARMONIC_SEG_DATA", str(tmp_path))
    assert default_data_root() == tmp_path


# ---------------------------------------------------------------- load_folder

def _write_pair(folder_img, folder_lab, stem_img, stem_lab, shape=(5, 6), lab_shape=None):
    Image.fromarray(np.full(shape, 7, np.uint8)).save(folder_img / f"{stem_img}.png")
    lab = np.zeros(lab_shape or shape, np.uint16)
    lab[1, 1] = 3
    tifffile.imwrite(folder_lab / f"{stem_lab}.tif", lab)


def test_load_folder_pairs_by_stem(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    _write_pair(tmp_path / "img", tmp_path / "lab", "a", "a")
    _write_pair(tmp_path / "img", tmp_path / "lab", "b", "b_label")
    _write_pair(tmp_path / "img", tmp_path / "lab", "c_rgb", "c_masks")
    _write_pair(tmp_path / "img", tmp_path / "lab", "t002", "man_seg002")
    ds = load_folder(tmp_path / "img", tmp_path / "lab")
    assert sorted(ds.names) == ["002", "a", "b", "c"]
    assert all(lab[1, 1] == 3 and lab.dtype == np.int32 for lab in ds.labels)
    ds2 = load_folder(str(tmp_path / "img" / "[ab].png"), tmp_path / "lab", label_pattern="[ab]*.tif")
    assert sorted(ds2.names) == ["a", "b"]


def test_load_folder_renumbers_wide_ids_instead_of_wrapping(tmp_path):
    # The int32 cast used to merge id 2**32 + 1 with id 1 and turn 3e9 into -1294967296.
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    wide = np.zeros((5, 6), np.uint64)
    wide[0, :2], wide[1, :2], wide[3, 3:] = 1, 2**32 + 1, 5
    big = np.zeros((5, 6), np.uint32)
    big[0, 0], big[4, 4] = 3_000_000_000, 7
    for stem, lab in (("w", wide), ("b", big)):
        Image.fromarray(np.zeros((5, 6), np.uint8)).save(tmp_path / "img" / f"{stem}.png")
        tifffile.imwrite(tmp_path / "lab" / f"{stem}.tif", lab)
    ds = load_folder(tmp_path / "img", tmp_path / "lab")
    labels = dict(zip(ds.names, ds.labels))
    assert all(lab.dtype == np.int32 for lab in ds.labels)
    expected_w = np.zeros((5, 6), np.int32)
    expected_w[0, :2], expected_w[1, :2], expected_w[3, 3:] = 1, 3, 2  # 1 < 5 < 2**32 + 1
    np.testing.assert_array_equal(labels["w"], expected_w)
    expected_b = np.zeros((5, 6), np.int32)
    expected_b[0, 0], expected_b[4, 4] = 2, 1  # 7 < 3e9
    np.testing.assert_array_equal(labels["b"], expected_b)
    # negative ids of a signed file: refused, naming the file
    tifffile.imwrite(tmp_path / "lab" / "b.tif", big.astype(np.int64) - 2)
    with pytest.raises(ValueError, match=r"b\.tif.*non-negative"):
        load_folder(tmp_path / "img", tmp_path / "lab")


def test_load_folder_same_folder(tmp_path):
    _write_pair(tmp_path, tmp_path, "p1_rgb", "p1_label")
    _write_pair(tmp_path, tmp_path, "p2_rgb", "p2_label")
    ds = load_folder(tmp_path, tmp_path, pattern="*_rgb.png")
    assert ds.names == ["p1", "p2"]


def test_load_folder_reports_unpaired(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    _write_pair(tmp_path / "img", tmp_path / "lab", "a", "a")
    Image.fromarray(np.zeros((5, 6), np.uint8)).save(tmp_path / "img" / "lonely.png")
    tifffile.imwrite(tmp_path / "lab" / "orphan_mask.tif", np.zeros((5, 6), np.uint16))
    with pytest.raises(ValueError) as err:
        load_folder(tmp_path / "img", tmp_path / "lab")
    assert "lonely.png" in str(err.value) and "orphan_mask.tif" in str(err.value)


def test_load_folder_shape_mismatch_and_missing(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    _write_pair(tmp_path / "img", tmp_path / "lab", "a", "a", lab_shape=(4, 6))
    with pytest.raises(ValueError, match=r"a\.png.*a\.tif|shape"):
        load_folder(tmp_path / "img", tmp_path / "lab")
    with pytest.raises(FileNotFoundError, match="nope"):
        load_folder(tmp_path / "nope", tmp_path / "lab")


def test_loaders_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing_cvppp"):
        load_cvppp(root=tmp_path / "missing_cvppp")
    (tmp_path / "bb").mkdir()
    with pytest.raises(FileNotFoundError, match="foreground"):
        load_bbbc010(root=tmp_path / "bb")
    with pytest.raises(FileNotFoundError, match="01_GT"):
        load_ctc(root=tmp_path / "bb", sequences=("01",))


# ---------------------------------------------------------------- real data (skipped without it)

def test_cvppp_real():
    root = data_path("cvppp_a1")
    train = load_split("cvppp_a1", "train", root)
    test = load_split("cvppp_a1", "test", root)
    assert len(train) == 96 and len(test) == 32 and not set(train) & set(test)
    ds = load_cvppp(root, split="train", ids=train[:4])
    assert ds.names == train[:4]
    for img, lab in zip(ds.images, ds.labels):
        assert img.shape == (530, 500, 3) and img.dtype == np.uint8
        assert lab.shape == (530, 500) and lab.dtype == np.int32
        assert 11 <= len(np.unique(lab)) - 1 <= 20
    with pytest.raises(ValueError, match="not in"):
        load_cvppp(root, split="train", ids=[test[0]])


def test_bbbc010_real():
    root = data_path("bbbc010")
    train = load_split("bbbc010", "train", root)
    test = load_split("bbbc010", "test", root)
    assert len(train) == 50 and len(test) == 50 and not set(train) & set(test)
    ds = load_bbbc010(root, ids=["A01", "A02"])
    assert ds.names == ["A01", "A02"]
    for img, lab, m, ign in zip(ds.images, ds.labels, ds.masks, ds.ignore):
        assert img.dtype == np.uint8 and set(np.unique(img)) <= {0, 1} and img.shape == (520, 696)
        assert m.dtype == bool and m.ndim == 3 and 11 <= m.shape[0] <= 15
        overlap = m.sum(0) > 1
        np.testing.assert_array_equal(ign, overlap)
        assert not lab[overlap].any()
        assert len(np.unique(lab)) - 1 == m.shape[0]
    assert any(i.any() for i in ds.ignore)  # overlapping worms present
    first = load_bbbc010(root, ids=["A01"], overlap="first")
    assert (first.labels[0] > 0).sum() == (ds.masks[0].any(0)).sum()
    bf = load_bbbc010(root, ids=["A01"], input="brightfield")
    assert bf.images[0].dtype == np.uint16 and bf.images[0].shape == (520, 696)
    with pytest.raises(FileNotFoundError, match="C13"):
        load_bbbc010(root, ids=["C13"], input="brightfield")


def test_bbbc010_skips_wells_without_image(caplog, tmp_path):
    root = data_path("bbbc010")
    # a small root with two wells, one without a bright-field image, via symlinks
    for sub in ("images", "foreground", "foreground_eachworm"):
        (tmp_path / sub).mkdir()
    for well in ("C12", "C13"):
        for f in (root / "foreground_eachworm").glob(f"{well}_*"):
            (tmp_path / "foreground_eachworm" / f.name).symlink_to(f)
        for f in (root / "images").glob(f"*_{well}_w1_*"):
            (tmp_path / "images" / f.name).symlink_to(f)
        (tmp_path / "foreground" / f"{well}_binary.png").symlink_to(root / "foreground" / f"{well}_binary.png")
    with caplog.at_level(logging.WARNING, logger="harmonic_seg.io.benchmarks"):
        ds = load_bbbc010(tmp_path, input="brightfield")
    assert ds.names == ["C12"]
    assert "C13" in caplog.text
    assert load_bbbc010(tmp_path).names == ["C12", "C13"]


def test_ctc_real(caplog):
    root = data_path("ctc_dic_c2dh_hela")
    train = load_split("ctc_dic_c2dh_hela", "train", root)
    test = load_split("ctc_dic_c2dh_hela", "test", root)
    assert len(train) == 9 and len(test) == 9
    with caplog.at_level(logging.WARNING, logger="harmonic_seg.io.benchmarks"):
        ds = load_ctc(root, split="train")
    assert ds.names == train
    assert ds.partial == [n == "01/t067" for n in ds.names]
    assert "man_seg067" in caplog.text
    for img, lab in zip(ds.images, ds.labels):
        assert img.shape == (512, 512) and img.dtype == np.uint8 and lab.dtype == np.int32
    assert len(load_ctc(root, split="train", drop_partial=True)) == 8
    te = load_ctc(root, ids=["02/t006"])
    assert te.names == ["02/t006"] and te.partial == [False]
    silver = load_ctc(root, sequences=("01",), truth="silver", frames=[0, "t067"])
    assert silver.names == ["01/t000", "01/t067"]
    assert len(np.unique(silver.labels[1])) - 1 > 10
    with pytest.raises(FileNotFoundError, match="man_seg000"):
        load_ctc(root, sequences=("01",), truth="gold", frames=[0])
