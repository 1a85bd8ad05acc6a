import subprocess
import sys

import numpy as np
import pytest
import torch

from harmonic_seg import HarmonicSegmenter, Network
from harmonic_seg._validation import check_device, check_image, check_images


def test_3d_array_with_first_axis_shorter_than_last_is_refused_as_a_stack():
    # a (Z=3, H, W=8) stack used to be read as an 8-channel (H=3, W=64) image
    with pytest.raises(ValueError, match=r"X\[0\] has shape \(3, 64, 8\).*stack of 3 planes.*np\.moveaxis"):
        check_images([np.zeros((3, 64, 8))], "X")
    with pytest.raises(ValueError, match=r"\(2, 5, 16\).*channels-first image"):
        check_image(np.zeros((2, 5, 16)))
    with pytest.raises(ValueError, match="17 channels in the last axis.*np.moveaxis"):
        check_image(np.zeros((40, 40, 17)))
    for shape in ((64, 48, 3), (64, 48, 4), (20, 30, 16), (2, 2, 2), (5, 4, 1)):  # (H, W, C) up to 16 channels
        assert check_image(np.zeros(shape)).shape == shape


@pytest.mark.parametrize("device", ["auto", "cpu", "CPU", "cuda", "cuda:0", "cuda:12", "mps"])
def test_check_device_accepts_torch_device_names(device):
    assert check_device(device, require_available=False) == device.lower()


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "tpu", "", "cuda0"])
def test_check_device_refuses_unknown_names(device):
    with pytest.raises(ValueError, match=rf"device must be 'auto', 'cpu', 'cuda', 'cuda:k'.*got '{device}'"):
        check_device(device)
    with pytest.raises(TypeError, match="my_device must be a string"):
        check_device(0, "my_device")


def test_check_device_refuses_a_gpu_torch_cannot_use(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device='cuda' but this torch .*is_available\(\) is False.*'cpu'.*'auto'"):
        check_device("cuda")
    assert check_device("auto") == "auto" and check_device("auto", resolve=True) == "cpu"
    assert check_device(torch.device("cpu")) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1") == "cuda:1" and check_device("auto", resolve=True) == "cuda"
    with pytest.raises(ValueError, match="device='cuda:2' but this machine has 2 CUDA GPU"):
        check_device("cuda:2")


def test_check_device_imports_torch_only_when_needed():
    code = (
        "import sys; from harmonic_seg._validation import check_device; "
        "check_device('cpu'); check_device('cuda', require_available=False); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_load_refuses_a_bad_device_before_anything_else(tmp_path, monkeypatch):
    # load(path, device="gpu") used to fail in torch after reading the model
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda'.*got 'gpu'"):
        HarmonicSegmenter.load(tmp_path / "missing", device="gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device='cuda' but this torch"):
        HarmonicSegmenter.load(tmp_path / "missing", device="cuda")


def test_cli_reports_a_bad_device_in_one_line_with_rc_2(tmp_path, capsys):
    import tifffile

    from harmonic_seg.cli import main
    from harmonic_seg.synthetic import make_instances

    d = make_instances(n_images=2, shape=(48, 48), n_instances=(3, 6), random_state=0)
    seg = HarmonicSegmenter(network=Network(depth=2, base_width=4), epochs=1, steps_per_epoch=1, batch_size=2,
                            crop_size=32,
                            validation_fraction=0, num_threads=1, random_state=0).fit(d.images, d.labels)
    seg.save(tmp_path / "model")
    (tmp_path / "img").mkdir()
    tifffile.imwrite(tmp_path / "img" / "a.tif", d.images[0])
    argv = ["predict", str(tmp_path / "model"), str(tmp_path / "img"), "--out", str(tmp_path / "out")]
    assert main([*argv, "--device", "gpu"]) == 2  # was a torch RuntimeError with a traceback
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "device must be 'auto', 'cpu', 'cuda'" in err
    assert main([*argv, "--device", "auto"]) == 0  # "auto" is a device load accepts (a GPU when there is one)


@pytest.mark.parametrize("ragged", [[[1, 2], [3]], [[[1, 2], [3, 4]], [[1]]]])
def test_ragged_nested_lists_are_refused_naming_the_argument(ragged):
    from harmonic_seg._validation import check_label_map

    # numpy's "inhomogeneous shape" ValueError named no argument
    with pytest.raises(ValueError, match="labels could not be read as an array"):
        check_label_map(ragged)
    with pytest.raises(ValueError, match="im could not be read as an array"):
        check_image(ragged, "im")


def test_public_functions_refuse_ragged_lists_by_argument_name():
    from harmonic_seg import metrics, postprocess
    from harmonic_seg.guides import instance_embeddings, random_guides

    lab = np.zeros((8, 8), int)
    lab[2:5, 2:5] = 1
    with pytest.raises(ValueError, match="could not be read as an array"):
        instance_embeddings([[1, 2], [3]], random_guides(2, (8, 8), random_state=0))
    with pytest.raises(ValueError, match="could not be read as an array"):
        metrics.symmetric_best_dice(lab, [[1, 2], [3]])
    with pytest.raises(ValueError, match="could not be read as an array"):
        postprocess.relabel_sequential([[1, 2], [3]])


@pytest.mark.parametrize("shape", [(1e300, 4), (4.5, 4), (np.nan, 4), (np.inf, 4), (2**40, 4), (0, 4), (-1, 4)])
def test_check_shape_2d_refuses_fractional_and_absurd_sizes(shape):
    from harmonic_seg._validation import check_shape_2d

    with pytest.raises(ValueError, match="pair of positive integers"):  # 1e300 passed through int() before
        check_shape_2d(shape)


@pytest.mark.parametrize("shape", [("a", 4), (True, 4), (4,), 5, None])
def test_check_shape_2d_refuses_non_numbers(shape):
    from harmonic_seg._validation import check_shape_2d

    with pytest.raises(TypeError, match="pair of positive integers"):
        check_shape_2d(shape)


def test_check_shape_2d_accepts_whole_numbers():
    from harmonic_seg._validation import check_shape_2d

    assert check_shape_2d((64.0, np.int32(32))) == (64, 32)


@pytest.mark.parametrize("pair", [(0.5, np.inf), (-np.inf, 2.0), (np.nan, 1.0)])
def test_check_interval_pair_refuses_non_finite_bounds(pair):
    from harmonic_seg._validation import check_interval_pair

    with pytest.raises(ValueError, match="both finite"):
        check_interval_pair(pair, "scale_range", low_min=0, low_inclusive=False)
