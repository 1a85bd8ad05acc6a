import json

import numpy as np
import pytest
import torch

from harmonic_seg.guides import random_guides
from harmonic_seg.nn.unet import HarmonicUNet, count_parameters


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def guides():
    return random_guides(6, (64, 64), random_state=0)


@pytest.mark.parametrize("shape", [(37, 53), (1, 1), (65, 130), (64, 64)])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shapes(guides, shape, channels):
    net = HarmonicUNet(channels, 6, guides, depth=2, base_width=8)
    emb, fg = net(torch.randn(2, channels, *shape))
    assert emb.shape == (2, 6, *shape) and fg.shape == (2, 1, *shape)


@pytest.mark.parametrize("variant", ["sin", "coord", "none"])
@pytest.mark.parametrize("norm", ["batch", "group", "instance", None])
@pytest.mark.parametrize("upsample", ["bilinear", "transpose"])
def test_variants(guides, variant, norm, upsample):
    net = HarmonicUNet(2, 6, guides if variant == "sin" else None, variant=variant, depth=2, base_width=8,
                       norm=norm, reference_shape=(64, 64), upsample=upsample)
    emb, fg = net(torch.randn(2, 2, 21, 34), origin=torch.tensor([[5.0, 7.0], [0.0, 0.0]]))
    assert emb.shape == (2, 6, 21, 34) and fg.shape == (2, 1, 21, 34)


def test_decoder_sinconv_strides(guides):
    net = HarmonicUNet(1, 6, guides, depth=3, base_width=8)
    strides = [up.block.conv1.level_stride for up in net.decoder]
    assert strides == [4, 2, 1]
    assert all(up.block.conv1.n_extra == 6 for up in net.decoder)
    assert all(b.conv1.n_extra == 0 for b in net.encoder)


def test_origin_matters_and_translation(guides):
    torch.manual_seed(0)
    net = HarmonicUNet(1, 6, guides, depth=2, base_width=8, norm=None).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        a, _ = net(x)
        b, _ = net(x, origin=torch.tensor([[0.0, 0.0]]))
        c, _ = net(x, origin=(8.0, 4.0))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_config_roundtrip(guides):
    net = HarmonicUNet(3, 6, guides, depth=2, base_width=8, norm="group", max_width=12)
    cfg = json.loads(json.dumps(net.config))
    net2 = HarmonicUNet.from_config(cfg)
    net2.load_state_dict(net.state_dict())
    assert net2.config == net.config
    x = torch.randn(1, 3, 16, 16)
    net.eval(), net2.eval()
    with torch.no_grad():
        assert torch.equal(net(x)[0], net2(x)[0])
    assert net.n_parameters() == count_parameters(net2) > 0
    assert max(net.widths) == 12


def test_default_network_size(guides):
    net = HarmonicUNet(1, 6, guides)
    assert net.depth == 4 and net.widths[0] == 32 and net.size_multiple == 16
    assert 1e6 < net.n_parameters() < 2e7


def test_bad_arguments(guides):
    with pytest.raises(ValueError):
        HarmonicUNet(0, 6, guides)
    with pytest.raises(ValueError, match="norm"):
        HarmonicUNet(1, 6, guides, norm="layer")
    with pytest.raises(ValueError, match="guides"):
        HarmonicUNet(1, 6, None, variant="sin")
    net = HarmonicUNet(1, 6, guides, depth=1, base_width=4)
    with pytest.raises(ValueError, match="shape"):
        net(torch.randn(1, 2, 8, 8))


def test_receptive_field_bounds_gradient_support(guides):
    torch.manual_seed(0)
    net = HarmonicUNet(1, 6, guides, depth=2, base_width=8, norm=None).eval()
    with torch.no_grad():  # positive weights: no accidental cancellation of gradients
        for p in net.parameters():
            p.abs_()
    radius = 0
    for c in (46, 47, 48, 49):
        x = torch.randn(1, 1, 96, 96, requires_grad=True)
        emb, fg = net(x)
        (emb[0, :, c, c].sum() + fg[0, 0, c, c]).backward()
        support = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
        radius = max(radius, c - support.min().item(), support.max().item() - c)
    assert 0.8 * (net.receptive_field // 2) < radius <= net.receptive_field // 2
