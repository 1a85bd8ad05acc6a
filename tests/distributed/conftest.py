"""Fixtures of the dask tests: a segmenter whose "network" returns exact harmonic embeddings.

The oracle network reads instance ids from the image (one channel) and
returns, at every pixel, the instance's harmonic embedding (the mean of the
fitted guide functions over the instance, in whole-image coordinates) plus a
small ripple that depends on the whole-image position (so that a block embedded
with a wrong origin differs), and a foreground logit of +-8. The clustering,
the blocks and the stitching are the library's; only the network is ideal.
"""

import numpy as np
import pytest
import torch

from harmonic_seg import GuideFunctionFitter, HarmonicSegmenter, Network
from harmonic_seg.clustering import EmbeddingClusterer
from harmonic_seg.guides import embedding_table
from harmonic_seg.synthetic import make_instances


class OracleNet(torch.nn.Module):
    receptive_field = 1
    size_multiple = 4
    in_channels = 1

    def __init__(self, table, ripple=0.02):
        super().__init__()
        self.register_buffer("table", torch.as_tensor(table, dtype=torch.float32))
        self.weight = torch.nn.Parameter(torch.zeros(1))  # a parameter: the device the clustering uses
        self.ripple = ripple
        self.n_outputs = self.table.shape[1]

    def forward(self, x, origin):
        ids = x[:, 0].round().long().clamp(0, self.table.shape[0] - 1)
        emb = self.table[ids].permute(0, 3, 1, 2)
        _, _, h, w = x.shape
        origin = torch.as_tensor(origin, dtype=torch.float32).reshape(-1, 2)
        ys = origin[:, 0, None, None] + torch.arange(h, dtype=torch.float32)[None, :, None]
        xs = origin[:, 1, None, None] + torch.arange(w, dtype=torch.float32)[None, None, :]
        emb = emb + self.ripple * torch.sin(0.37 * ys + 0.11 * xs)[:, None]
        return emb, torch.where(ids > 0, 8.0, -8.0)[:, None]


def oracle_segmenter(labels, *, n_guides=8, margin=0.5, split_components=True, min_size=5, random_state=0):
    """A "fitted" HarmonicSegmenter with the oracle network for the label map ``labels`` (the image is ``labels``)."""
    guides = GuideFunctionFitter(n_guides=n_guides, margin=margin, max_iter=60, random_state=random_state).fit([labels])
    seg = HarmonicSegmenter(percentiles=None, device="cpu", num_threads=1,
                            clustering=EmbeddingClusterer(split_components=split_components, min_size=min_size))
    table = embedding_table(labels, guides.guides_)
    seg.module_ = OracleNet(table).eval()
    seg.guides_ = guides
    seg.n_channels_in_, seg.scale_ = 1, 1.0
    # a bandwidth below half the closest pair of instances: every instance is one mean-shift mode
    rows = table[1:][np.bincount(labels.ravel(), minlength=len(table))[1:] > 0]
    dist = np.sqrt(((rows[:, None] - rows[None]) ** 2).sum(-1)) + np.eye(len(rows)) * 1e9
    seg.bandwidth_, seg.min_size_, seg.metric_ = float(0.4 * dist.min()), int(min_size), "euclidean"
    seg.core_fraction_, seg.fg_threshold_ = None, 0.5
    seg.recovery_ = "mean_shift"  # every cluster an instance (split into components): local, like the blocks
    return seg


@pytest.fixture(scope="session")
def crowded():
    """A 256x256 label map of about 70 touching cells (the image is the label map itself)."""
    data = make_instances(n_images=1, shape=(256, 256), n_instances=(70, 70), random_state=3)
    return data.labels[0].astype(np.int32)


@pytest.fixture(scope="session")
def oracle(crowded):
    return oracle_segmenter(crowded)


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture(scope="session")
def tiny_model():
    """A real HarmonicSegmenter fitted in about a second (its predictions are poor; the mechanics are tested)."""
    data = make_instances(n_images=2, shape=(64, 64), random_state=0)
    seg = HarmonicSegmenter(guides=GuideFunctionFitter(n_guides=4, max_iter=10),
                            network=Network(depth=1, base_width=4), epochs=1,
                            steps_per_epoch=1, crop_size=32, batch_size=2, validation_fraction=0, device="cpu",
                            num_threads=1, random_state=0)
    return seg.fit(data.images, data.labels)
