"""``harmonic-seg predict MODEL IMAGE.zarr --out LABELS.zarr``: blockwise prediction from the command line."""

import numpy as np
import pytest

pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")

from harmonic_seg.cli import main  # noqa: E402
from harmonic_seg.distributed import predict_to_zarr  # noqa: E402
from harmonic_seg.synthetic import make_instances  # noqa: E402


@pytest.fixture
def zarr_image(tmp_path):
    image = make_instances(n_images=1, shape=(96, 80), random_state=2).images[0].astype(np.float32)
    z = zarr.open_array(store=str(tmp_path / "image.zarr"), mode="w", shape=image.shape, chunks=(48, 40),
                        dtype=np.float32)
    z[...] = image
    return tmp_path / "image.zarr"


def test_cli_predicts_a_zarr_image_on_a_running_scheduler(tiny_model, zarr_image, tmp_path, capsys):
    tiny_model.save(tmp_path / "model")
    out = tmp_path / "labels.zarr"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        argv = ["predict", str(tmp_path / "model"), str(zarr_image), "--out", str(out), "--scheduler",
                cluster.scheduler_address, "--overlap", "8"]
        assert main(argv) == 0
        printed = capsys.readouterr().out
        assert "instances" in printed and "1 dask workers" in printed
        labels = zarr.open_array(store=str(out), mode="r")
        assert labels.shape == (96, 80) and labels.chunks == (48, 40)
        with distributed.Client(cluster):  # the same labels as the Python function
            again = predict_to_zarr(tiny_model.set_params(num_threads=1), str(zarr_image), tmp_path / "again.zarr",
                                    overlap=8)
        np.testing.assert_array_equal(labels[...], again[...])
        assert main(argv) == 2  # the output exists: refused before any work
        assert "--overwrite" in capsys.readouterr().err
        assert main(argv + ["--overwrite"]) == 0


def test_cli_zarr_errors(tiny_model, tmp_path, capsys):
    tiny_model.save(tmp_path / "model")
    assert main(["predict", str(tmp_path / "model"), str(tmp_path / "absent.zarr"), "--out",
                 str(tmp_path / "labels.zarr")]) == 2
    assert "does not exist" in capsys.readouterr().err
