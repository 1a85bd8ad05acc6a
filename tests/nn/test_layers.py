import numpy as np
import pytest
import torch

from harmonic_seg.guides import coordinate_guides, guide_maps, random_guides
from harmonic_seg.nn.layers import GuideMapper, SinConv, make_guide_mapper


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("stride", [1, 2, 4, 8])
@pytest.mark.parametrize("kind", ["sin", "linear"])
def test_guide_mapper_matches_numpy(stride, kind):
    g = random_guides(7, (300, 200), random_state=1) if kind == "sin" else coordinate_guides((300, 200))
    mapper = GuideMapper(g)
    origins = torch.tensor([[0.0, 0.0], [13.0, -7.0], [1024.0, 2048.0]])
    maps = mapper(origins, (9, 11), stride).numpy()
    assert maps.shape == (3, g.n_guides, 9, 11) and maps.dtype == np.float32
    for b, o in enumerate(origins.tolist()):
        ref = guide_maps(g, (9, 11), origin=tuple(o), stride=stride)
        np.testing.assert_allclose(maps[b], ref, atol=1e-5, rtol=0)


def test_guide_mapper_float32_buffers_and_dtype():
    g = random_guides(3, (64, 64), random_state=0)
    mapper = GuideMapper(g, dtype=torch.float32)
    out = mapper(torch.zeros(1, 2), (5, 6), 2, dtype=torch.float64)
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out[0].numpy(), guide_maps(g, (5, 6), stride=2), atol=1e-5)
    assert set(mapper.state_dict()) == {"frequencies", "phases"}


def test_sinconv_channels_and_variants():
    g = random_guides(5, (64, 64), random_state=0)
    x = torch.randn(2, 3, 10, 12)
    conv = SinConv(3, 4, GuideMapper(g), stride=2)
    assert conv.conv.in_channels == 8
    assert conv(x, torch.zeros(2, 2)).shape == (2, 4, 10, 12)
    assert conv(x).shape == (2, 4, 10, 12)  # default origin zeros
    plain = SinConv(3, 4, make_guide_mapper("none"))
    assert plain.conv.in_channels == 3 and plain(x).shape == (2, 4, 10, 12)
    coord = SinConv(3, 4, make_guide_mapper("coord", reference_shape=(64, 64)))
    assert coord.conv.in_channels == 5


def test_sinconv_depends_on_origin():
    g = random_guides(5, (64, 64), random_state=0)
    conv = SinConv(1, 2, GuideMapper(g))
    x = torch.zeros(1, 1, 8, 8)
    assert not torch.allclose(conv(x, torch.tensor([[0.0, 0.0]])), conv(x, torch.tensor([[3.0, 5.0]])))


def test_make_guide_mapper_errors():
    with pytest.raises(ValueError, match="guides"):
        make_guide_mapper("sin")
    with pytest.raises(ValueError, match="reference_shape"):
        make_guide_mapper("coord")
    with pytest.raises(ValueError, match="variant"):
        make_guide_mapper("bogus")
