import numpy as np
import pytest
import torch

from harmonic_seg.guides import random_guides
from harmonic_seg.nn.inference import predict_embeddings, tile_starts
from harmonic_seg.nn.unet import HarmonicUNet


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_net(norm="batch"):
    torch.manual_seed(0)
    net = HarmonicUNet(2, 5, random_guides(5, (100, 100), random_state=0), depth=2, base_width=8, norm=norm)
    if norm == "batch":  # non-trivial running statistics
        net.train()
        with torch.no_grad():
            for _ in range(3):
                net(torch.randn(2, 2, 32, 32))
    return net.eval()


def test_tile_starts():
    starts, ends = tile_starts(150, 64, 16, multiple=4)
    assert starts[0] == 0 and ends[-1] == 150
    assert all(s % 4 == 0 for s in starts)
    assert all(e - s <= 64 for s, e in zip(starts, ends))
    assert all(ends[i] - starts[i + 1] >= 16 for i in range(len(starts) - 1))
    assert tile_starts(50, 64, 16) == ([0], [50])
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(200, 64, 64, multiple=4)


def test_untiled_shapes_and_range():
    net = make_net()
    img = np.random.default_rng(0).standard_normal((2, 37, 53)).astype(np.float32)
    emb, fg = predict_embeddings(net, img)
    assert emb.shape == (5, 37, 53) and fg.shape == (37, 53)
    assert emb.dtype == np.float32 and fg.dtype == np.float32
    assert (fg >= 0).all() and (fg <= 1).all()
    assert not net.training


@pytest.mark.parametrize("norm", ["batch", None])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_tiled_equals_untiled(norm, batch_size):
    net = make_net(norm)
    img = np.random.default_rng(1).standard_normal((2, 150, 171)).astype(np.float32)
    emb, fg = predict_embeddings(net, img)
    emb_t, fg_t = predict_embeddings(net, img, tile_size=96, overlap=64, batch_size=batch_size)
    assert np.abs(emb - emb_t).max() < 1e-4
    assert np.abs(fg - fg_t).max() < 1e-4


def test_bfloat16_on_cpu_close_to_float32():
    net = make_net()
    img = np.random.default_rng(0).standard_normal((2, 40, 48)).astype(np.float32)
    emb, fg = predict_embeddings(net, img, device="cpu")
    emb_bf, fg_bf = predict_embeddings(net, img, device="cpu", amp=True)
    assert emb_bf.dtype == np.float32 and emb_bf.shape == emb.shape
    diff = np.abs(emb_bf - emb).max()
    assert 0 < diff < 5e-2 and np.abs(fg_bf - fg).max() < 5e-2  # bfloat16 did run, and stays close


def test_tiles_use_global_origin():
    """Without passing origins the guide maps would repeat per tile and differ."""
    net = make_net(None)
    img = np.zeros((2, 128, 128), np.float32)
    emb, _ = predict_embeddings(net, img)
    emb_t, _ = predict_embeddings(net, img, tile_size=80, overlap=48)
    assert np.abs(emb - emb_t).max() < 1e-4
    assert np.abs(emb[:, 10, 10] - emb[:, 74, 74]).max() > 1e-3  # position-dependent output


def test_bad_input():
    net = make_net()
    with pytest.raises(ValueError, match="channel"):
        predict_embeddings(net, np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="C, H, W"):
        predict_embeddings(net, np.zeros((8, 8), np.float32))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp", [False, True])
def test_cuda_matches_cpu(amp):
    net = make_net()
    img = np.random.default_rng(2).standard_normal((2, 100, 120)).astype(np.float32)
    emb, fg = predict_embeddings(net, img, device="cpu")
    emb_c, fg_c = predict_embeddings(net, img, device="cuda", amp=amp)
    tol = 5e-2 if amp else 1e-3
    assert np.abs(emb - emb_c).max() < tol and np.abs(fg - fg_c).max() < tol
    emb_t, _ = predict_embeddings(net, img, device="cuda", amp=amp, tile_size=64, overlap=32, batch_size=4)
    assert np.abs(emb_c - emb_t).max() < (5e-2 if amp else 1e-3)


@pytest.mark.parametrize("device", ["", "meta", "gpu", "cuda:7", "mps"])
def test_predict_embeddings_refuses_devices_it_cannot_use(device):
    if device in ("cuda:7",) and torch.cuda.device_count() > 7 or device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has that device")
    net = make_net()
    img = np.zeros((2, 32, 32), np.float32)
    with pytest.raises(ValueError, match="device"):  # were torch RuntimeErrors ("Device string must not be empty")
        predict_embeddings(net, img, device=device)


def test_predict_embeddings_reads_device_names_as_the_segmenter_does():
    net = make_net()
    img = np.zeros((2, 32, 32), np.float32)
    with pytest.raises(TypeError, match="device must be a string"):
        predict_embeddings(net, img, device=0)
    emb, _ = predict_embeddings(net, img, device="CPU")  # torch refused upper case
    assert emb.shape[1:] == (32, 32)


@pytest.mark.parametrize("n, tile, overlap, multiple", [(2048, 1024, 118, 8), (2402, 1024, 118, 8), (1378, 1024, 118, 8),
                                                        (150, 64, 16, 4), (8192, 1024, 118, 8), (50, 64, 16, 1)])
def test_balanced_tile_covers_the_axis_with_the_fewest_pixels(n, tile, overlap, multiple):
    from harmonic_seg.nn.inference import balanced_tile

    t = balanced_tile(n, tile, overlap, multiple)
    assert t <= tile
    starts, ends = tile_starts(n, t, overlap, multiple)
    full_starts, full_ends = tile_starts(n, tile, overlap, multiple)
    assert starts[0] == 0 and ends[-1] == n and all(s % multiple == 0 for s in starts)
    assert all(ends[i] - starts[i + 1] >= overlap for i in range(len(starts) - 1))
    assert len(starts) <= len(full_starts)
    total = sum(e - s for s, e in zip(starts, ends))
    assert total <= sum(e - s for s, e in zip(full_starts, full_ends))
    if (n, tile) == (2048, 1024):  # full tiles: 0-1024, 904-1928, 1024-2048 (3072 pixels); balanced: 2292
        assert total <= 2048 + 2 * overlap + 2 * multiple


class PixelwiseNet(torch.nn.Module):
    """A stand-in network whose outputs at a pixel depend on that pixel alone: tiling cannot change them."""

    n_outputs, size_multiple, receptive_field, in_channels = 2, 4, 8, 1

    def forward(self, x, origin):
        return torch.cat([x, 2 * x], 1), 7 * x - 1


def test_tiled_fg_prob_is_the_untiled_one_bit_for_bit():
    """The sigmoid runs once over the assembled map: a tile-by-tile sigmoid differed from the untiled one in
    the last bit at some pixels (its vectorised rounding depends on where a pixel sits in the buffer)."""
    img = np.random.default_rng(3).standard_normal((1, 203, 187)).astype(np.float32)
    emb, fg = predict_embeddings(PixelwiseNet(), img)
    for tile in (24, 64, 96, 150):
        emb_t, fg_t = predict_embeddings(PixelwiseNet(), img, tile_size=tile, overlap=8)
        assert np.array_equal(emb, emb_t)
        assert np.array_equal(fg, fg_t), f"tile {tile}: {int((fg != fg_t).sum())} pixels differ"
