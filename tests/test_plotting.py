"""Tests of harmonic_seg.plotting (matplotlib's Agg backend, small synthetic arrays)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harmonic_seg.guides import embedding_map
from harmonic_seg.guides import coordinate_guides, random_guides
from harmonic_seg.plotting import (
    embedding_to_rgb,
    label_to_rgb,
    overlay_instances,
    plot_comparison,
    plot_embedding,
    plot_guides,
)

ROOT = Path(__file__).resolve().parents[1]


def _labels(shape=(40, 48)):
    lab = np.zeros(shape, np.int32)
    lab[2:15, 3:20] = 1
    lab[20:35, 5:18] = 2
    lab[5:30, 25:40] = 7
    lab[32:38, 30:46] = 3
    return lab


@pytest.fixture
def scene():
    lab = _labels()
    guides = random_guides(6, lab.shape, random_state=0)
    rng = np.random.default_rng(0)
    emb = embedding_map(lab, guides) + rng.normal(0, 0.02, (6,) + lab.shape).astype(np.float32)
    image = (lab > 0) * 100.0 + rng.normal(0, 5, lab.shape)
    return image, lab, guides, emb


@pytest.fixture(autouse=False)
def mpl():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    return matplotlib


# --------------------------------------------------------------------------- numpy helpers
def test_embedding_to_rgb_range_background_and_determinism(scene):
    _, lab, _, emb = scene
    fg = lab > 0
    for method in ("pca", "random"):
        a = embedding_to_rgb(emb, fg, random_state=0, method=method)
        b = embedding_to_rgb(emb.copy(), fg, random_state=0, method=method)
        assert a.shape == lab.shape + (3,) and a.dtype == np.float32
        assert np.array_equal(a, b)
        assert a.min() >= 0.0 and a.max() <= 1.0
        assert np.all(a[~fg] == 0.0)
        assert a[fg].max() > 0.5  # the foreground is actually coloured
    # distinct instances get distinct colours (PCA of a clean target map)
    clean = embedding_to_rgb(embedding_map(lab, random_guides(6, lab.shape, random_state=1)))
    means = [clean[lab == i].mean(axis=0) for i in (1, 2, 3, 7)]
    dists = [np.abs(means[i] - means[j]).sum() for i in range(4) for j in range(i + 1, 4)]
    assert min(dists) > 0.05


def test_embedding_to_rgb_default_foreground_is_nonzero_embedding():
    lab = _labels()
    emb = embedding_map(lab, random_guides(4, lab.shape, random_state=0))
    rgb = embedding_to_rgb(emb)
    assert np.all(rgb[lab == 0] == 0)
    assert rgb[lab > 0].max() > 0.5


def test_embedding_to_rgb_subsampled_pca_is_deterministic(monkeypatch):
    import harmonic_seg.plotting as plotting

    monkeypatch.setattr(plotting, "_PCA_MAX_POINTS", 50)
    lab = _labels()
    emb = embedding_map(lab, random_guides(5, lab.shape, random_state=0))
    a = embedding_to_rgb(emb, lab > 0, random_state=3)
    assert np.array_equal(a, embedding_to_rgb(emb, lab > 0, random_state=3))
    assert 0 <= a.min() and a.max() <= 1


@pytest.mark.parametrize("n", [1, 2])
def test_embedding_to_rgb_few_channels(n):
    lab = _labels()
    emb = embedding_map(lab, random_guides(n, lab.shape, random_state=0))
    rgb = embedding_to_rgb(emb, lab > 0)
    assert rgb.shape == lab.shape + (3,)
    assert np.all(rgb[lab == 0] == 0) and 0 <= rgb.min() and rgb.max() <= 1
    if n == 1:
        assert np.array_equal(rgb[..., 0], rgb[..., 1])


def test_embedding_to_rgb_empty_foreground_and_constant():
    emb = np.ones((3, 10, 12), np.float32)
    assert np.all(embedding_to_rgb(emb, np.zeros((10, 12), bool)) == 0)
    rgb = embedding_to_rgb(emb)  # a single constant instance: mid grey
    assert np.allclose(rgb, 0.5)


def test_embedding_to_rgb_errors():
    emb = np.zeros((3, 10, 12))
    with pytest.raises(ValueError, match="embedding"):
        embedding_to_rgb(np.zeros((10, 12)))
    with pytest.raises(ValueError, match="embedding"):
        embedding_to_rgb(np.zeros((1, 3, 10, 12)))
    with pytest.raises(ValueError, match="foreground"):
        embedding_to_rgb(emb, np.ones((12, 10), bool))
    with pytest.raises(ValueError, match="method"):
        embedding_to_rgb(emb, method="tsne")
    with pytest.raises(ValueError, match="NaN"):
        embedding_to_rgb(np.full((3, 4, 4), np.nan))
    with pytest.raises(ValueError, match="percentiles"):
        embedding_to_rgb(emb, percentiles=(50, 10))


def test_label_to_rgb():
    lab = _labels()
    rgb = label_to_rgb(lab)
    assert rgb.shape == lab.shape + (3,) and rgb.dtype == np.float32
    assert np.all(rgb[lab == 0] == 0) and rgb.min() >= 0 and rgb.max() <= 1
    colours = {tuple(rgb[lab == i][0]) for i in (1, 2, 3, 7)}
    assert len(colours) == 4
    for i in (1, 2, 3, 7):  # one colour per instance, never black
        assert np.all(rgb[lab == i] == rgb[lab == i][0]) and rgb[lab == i][0].max() > 0.5
    # colour depends on the id only
    other = np.zeros_like(lab)
    other[lab == 7] = 7
    assert np.array_equal(label_to_rgb(other)[lab == 7], rgb[lab == 7])
    assert np.array_equal(label_to_rgb(lab.astype(bool)), label_to_rgb((lab > 0).astype(int)))
    with pytest.raises(ValueError, match="labels"):
        label_to_rgb(np.zeros((2, 3, 4), int))
    with pytest.raises(TypeError, match="labels"):
        label_to_rgb(np.zeros((3, 4)) + 0.5)
    with pytest.raises(ValueError, match="labels"):
        label_to_rgb(-np.ones((3, 4), int))


# --------------------------------------------------------------------------- matplotlib
def test_plot_guides(mpl, scene, tmp_path):
    _, lab, guides, _ = scene
    axes = plot_guides(guides, lab.shape, n=3)
    assert len(axes) == 3
    fig = axes[0].figure
    out = tmp_path / "guides.png"
    fig.savefig(out)
    assert out.stat().st_size > 0
    # one Axes: montage; a list of Axes: one map each; linear guides
    from matplotlib.figure import Figure

    f2 = Figure()
    ax = f2.add_subplot()
    assert plot_guides(guides, (16, 20), n=2, ax=ax) is ax
    assert ax.images[0].get_array().shape == (16, 2 * 20 + 1)
    axs = Figure().subplots(1, 2)
    plot_guides(coordinate_guides(lab.shape), lab.shape, n=2, ax=list(axs))
    assert all(len(a.images) == 1 for a in axs)


def test_plot_guides_errors(mpl, scene):
    _, lab, guides, _ = scene
    with pytest.raises(ValueError, match="n must"):
        plot_guides(guides, lab.shape, n=7)
    with pytest.raises(ValueError, match="n must"):
        plot_guides(guides, lab.shape, n=0)
    with pytest.raises((ValueError, TypeError), match="shape"):
        plot_guides(guides, (0, 5))
    with pytest.raises(TypeError, match="guides"):
        plot_guides(np.zeros((3, 2)), lab.shape)
    from matplotlib.figure import Figure

    with pytest.raises(ValueError, match="ax"):
        plot_guides(guides, lab.shape, n=3, ax=list(Figure().subplots(1, 2)))


def test_plot_embedding_and_overlay(mpl, scene, tmp_path):
    image, lab, _, emb = scene
    ax = plot_embedding(emb, lab > 0, title="emb")
    assert np.array_equal(ax.images[0].get_array(), embedding_to_rgb(emb, lab > 0))
    ax2 = overlay_instances(image, lab, alpha=0.4)
    shown = np.asarray(ax2.images[0].get_array())
    assert shown.shape == lab.shape + (3,) and 0 <= shown.min() and shown.max() <= 1
    # alpha=0 without outlines shows the image unchanged (grey)
    plain = np.asarray(overlay_instances(image, lab, alpha=0.0, boundaries=False).images[0].get_array())
    assert np.allclose(plain[..., 0], plain[..., 1])
    # RGB image and a (K, H, W) mask stack
    rgb_im = np.stack([image, image * 0.5, image * 0.2], axis=-1)
    masks = np.stack([lab == i for i in (1, 2, 3, 7)])
    overlay_instances(rgb_im, masks)
    out = tmp_path / "overlay.png"
    ax2.figure.savefig(out)
    assert out.stat().st_size > 0


def test_overlay_errors(mpl, scene):
    image, lab, _, _ = scene
    with pytest.raises(ValueError, match="labels"):
        overlay_instances(image, lab[:-1])
    with pytest.raises(ValueError, match="alpha"):
        overlay_instances(image, lab, alpha=1.5)
    with pytest.raises(ValueError, match="image"):
        overlay_instances(np.zeros(lab.shape + (2,)), lab)
    with pytest.raises(TypeError, match="ax"):
        overlay_instances(image, lab, ax="not an axes")


@pytest.mark.parametrize("suffix", ["png", "pdf"])
def test_plot_comparison_writes_file(mpl, scene, tmp_path, suffix):
    image, lab, _, emb = scene
    pred = lab.copy()
    pred[pred == 7] = 4
    out = tmp_path / f"cmp.{suffix}"
    fig = plot_comparison(image, lab, pred, embedding=emb, path=out)
    assert out.exists() and out.stat().st_size > 0
    assert len(fig.axes) == 4
    assert [a.get_title() for a in fig.axes] == ["image", "ground truth (4)", "prediction (4)", "predicted embedding"]
    fig3 = plot_comparison(image, lab, pred, titles=("a", "b", "c"))
    assert [a.get_title() for a in fig3.axes] == ["a", "b", "c"]


def test_plot_comparison_errors(mpl, scene):
    image, lab, _, emb = scene
    with pytest.raises(ValueError, match="y_pred"):
        plot_comparison(image, lab, lab[:, :-1])
    with pytest.raises(ValueError, match="y_true"):
        plot_comparison(image, lab.T, lab)
    with pytest.raises(ValueError, match="embedding"):
        plot_comparison(image, lab, lab, embedding=emb[:, :-1])
    with pytest.raises(ValueError, match="embedding"):
        plot_comparison(image, lab, lab, embedding=emb[0])
    with pytest.raises(ValueError, match="titles"):
        plot_comparison(image, lab, lab, titles=("a", "b"))
    with pytest.raises(ValueError, match="titles"):
        plot_comparison(image, lab, lab, embedding=emb, titles=("a", "b", "c"))
    with pytest.raises(ValueError, match="image"):
        plot_comparison(np.zeros((2, 3, 4, 5)), lab, lab)


def test_no_pyplot_state(mpl, scene):
    """Library figures are not registered with pyplot (nothing to show, nothing leaks)."""
    import matplotlib.pyplot as plt

    image, lab, _, _ = scene
    before = plt.get_fignums()
    plot_comparison(image, lab, lab)
    assert plt.get_fignums() == before


def test_import_without_matplotlib():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["matplotlib"] = None
        import numpy as np
        import harmonic_seg.plotting as p
        lab = np.zeros((8, 8), int); lab[2:5, 2:5] = 1
        assert p.label_to_rgb(lab).shape == (8, 8, 3)
        assert p.embedding_to_rgb(np.random.default_rng(0).normal(size=(3, 8, 8)), lab).shape == (8, 8, 3)
        for call in (lambda: p.plot_comparison(lab, lab, lab), lambda: p.plot_embedding(np.ones((3, 8, 8)))):
            try:
                call()
            except ImportError as exc:
                assert "pip install matplotlib" in str(exc), exc
            else:
                raise AssertionError("no ImportError without matplotlib")
        print("ok")
        """
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
