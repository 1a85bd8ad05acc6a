"""Synthetic scenes shared by the clustering tests: label maps and their noisy harmonic embeddings."""

import numpy as np
from scipy import ndimage as ndi

from harmonic_seg.guides import embedding_map
from harmonic_seg.guides import random_guides

EPS = 0.5


def make_labels(shape=(128, 128), n=12, seed=15, radius=15):
    """Voronoi cells of ``n`` random centres, cut to discs of ``radius`` (0 = background)."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, shape[0], size=(n, 2))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    d = (yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2
    lab = d.argmin(-1) + 1
    lab[d.min(-1) > radius**2] = 0
    return lab


def noisy_embedding(labels, seed=15, noise=0.05, blur=0.7):
    """Perfect harmonic embedding, blurred across boundaries, plus Gaussian noise."""
    emb, _, inst = embedding_map(labels, random_guides(12, labels.shape, random_state=seed), return_embeddings=True)
    if blur:
        emb = ndi.gaussian_filter(emb, (0, blur, blur))
    emb = emb + np.random.default_rng(seed).normal(0.0, noise, emb.shape).astype(np.float32)
    return emb.astype(np.float32), inst


def make_scene():
    """Label map and its noisy 12-D embedding, instances more than the bandwidth apart."""
    labels = make_labels()
    emb, inst = noisy_embedding(labels)
    # the instances are separated by more than the bandwidth in L2 (and so in L1)
    d = np.sqrt(((inst[:, None] - inst[None]) ** 2).sum(-1))
    assert d[np.triu_indices(len(inst), 1)].min() > 0.8
    return labels, emb
