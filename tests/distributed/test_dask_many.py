"""Many images over a dask cluster: the model sent once to each worker, failures reported, the rest written."""

import numpy as np
import pytest

pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
pytest.importorskip("zarr")

from harmonic_seg.distributed import predict_many  # noqa: E402
from harmonic_seg.io import read_label_map  # noqa: E402
from harmonic_seg.synthetic import make_instances  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        yield c


def test_predict_many_scatters_the_model_once_and_reports_failures(tiny_model, client, tmp_path, monkeypatch):
    images = make_instances(n_images=3, shape=(48, 40), random_state=1).images
    bad = tmp_path / "missing.png"  # read on a worker: fails there
    scattered = []
    original = client.scatter

    def spy(data, **kwargs):
        fut = original(data, **kwargs)
        scattered.append((kwargs.get("broadcast"), set(client.who_has(fut)[fut.key])))
        return fut

    monkeypatch.setattr(client, "scatter", spy)
    result = predict_many(tiny_model, [images[0], str(bad), images[1], images[2]], tmp_path / "out", client=client)
    assert [b for b, _ in scattered] == [True]  # one scatter, to every worker
    assert scattered[0][1] == set(client.scheduler_info()["workers"])
    assert not result.ok and len(result.failures) == 1
    index, name, error = result.failures[0]
    assert (index, name) == (1, "missing") and "missing.png" in error
    assert result.outputs[1] is None and result.n_instances[1] is None
    for i in (0, 2, 3):
        written = read_label_map(result.outputs[i])
        np.testing.assert_array_equal(written, tiny_model.predict([[images[0], None, images[1], images[2]][i]])[0])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "image_00000_label.tif", "image_00002_label.tif", "image_00003_label.tif"]


def test_predict_many_checks_before_any_work(tiny_model, tmp_path):
    images = make_instances(n_images=1, shape=(32, 32), random_state=1).images
    out = tmp_path / "out"
    out.mkdir()
    (out / "image_00000_label.tif").write_text("precious")
    with pytest.raises(FileExistsError, match="overwrite"):
        predict_many(tiny_model, images, out)  # no client is started
    assert (out / "image_00000_label.tif").read_text() == "precious"
    with pytest.raises(ValueError, match="same file name"):
        predict_many(tiny_model, ["a/x.png", "b/x.png"], out)
    with pytest.raises(TypeError, match="list"):
        predict_many(tiny_model, images[0], out)
    with pytest.raises(ValueError, match="format"):
        predict_many(tiny_model, images, out, format="jpg")
