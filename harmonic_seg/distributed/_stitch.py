"""Stitching block labels into one label map with unique ids (numpy and scipy only).

Every block numbers its instances 1..k. An instance cut by a block border
appears in both blocks; :func:`relabel_table` decides, face by face, which
pairs of labels touching across a shared border are the same instance, joins
them (connected components of the pair graph) and numbers the result 1..K in
raster order of the blocks. Three rules:

``"embedding"``
    The two halves of a cut instance carry the same harmonic embedding (the
    network predicts, at every pixel, the mean of the guide functions over the
    instance, in whole-image coordinates): two labels touching across the face
    are joined when the distance between their mean embeddings is at most the
    mean-shift bandwidth (the rule that puts pixels in one cluster).
``"iou"``
    Both blocks cluster the strip they share (their overlap); two labels are
    joined when their intersection over union in that strip reaches
    ``iou_threshold`` (overlap stitching, as in Cellpose's ``stitch_threshold``).
``"touch"``
    Two labels touching across the face are joined once every label of the
    face is shrunk by one pixel along it (Cellpose's distributed
    segmentation, which merges labels that touch across block faces).
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["RULES", "face_pairs", "iou_pairs", "relabel_table", "apply_table"]

logger = logging.getLogger(__name__)

RULES = ("embedding", "iou", "touch")


def face_pairs(a, b):
    """Unique label pairs (2, P) that sit side by side across a face (``a`` and ``b``: the two 1-D rows)."""
    keep = (a > 0) & (b > 0)
    if not keep.any():
        return np.zeros((2, 0), dtype=np.int64)
    return np.unique(np.stack([a[keep], b[keep]]).astype(np.int64), axis=1)


def shrink_face(face):
    """A face with every label run shortened by one pixel at both ends (Cellpose's in-plane shrinking)."""
    face = np.asarray(face)
    out = face.copy()
    if face.size < 2:
        return np.zeros_like(face)
    change = face[1:] != face[:-1]
    out[1:][change] = 0
    out[:-1][change] = 0
    return out


def iou_pairs(sa, sb, threshold):
    """Label pairs (2, P) of two clusterings of the same strip whose IoU in the strip is at least ``threshold``."""
    a, b = np.asarray(sa, dtype=np.int64).ravel(), np.asarray(sb, dtype=np.int64).ravel()
    both = (a > 0) & (b > 0)
    if not both.any():
        return np.zeros((2, 0), dtype=np.int64)
    pairs, inter = np.unique(np.stack([a[both], b[both]]), axis=1, return_counts=True)
    area_a = np.bincount(a, minlength=int(a.max()) + 1)
    area_b = np.bincount(b, minlength=int(b.max()) + 1)
    iou = inter / (area_a[pairs[0]] + area_b[pairs[1]] - inter)
    return pairs[:, iou >= threshold]


def _distance(x, y, metric):
    d = x - y
    return np.abs(d).sum(axis=1) if metric == "l1" else np.sqrt((d * d).sum(axis=1))


def _face_edges(ma, mb, side_a, side_b, rule, bandwidth, metric, iou_threshold):
    if rule == "iou":
        return iou_pairs(ma["strips"][side_a], mb["strips"][side_b], iou_threshold)
    fa, fb = ma["faces"][side_a], mb["faces"][side_b]
    if rule == "touch":
        return face_pairs(shrink_face(fa), shrink_face(fb))
    pairs = face_pairs(fa, fb)
    if pairs.shape[1] == 0:
        return pairs
    dist = _distance(ma["means"][pairs[0] - 1], mb["means"][pairs[1] - 1], metric)
    return pairs[:, dist <= bandwidth]


def relabel_table(metas, grid, rule="embedding", *, bandwidth=0.5, metric="euclidean", iou_threshold=0.5):
    """Global ids of every block's labels.

    Parameters
    ----------
    metas : list of dict
        The blocks' descriptions (:func:`~harmonic_seg.distributed._block.segment_block`) in raster order.
    grid : tuple of int
        Blocks along rows and columns.
    rule : {"embedding", "iou", "touch"}, default="embedding"
    bandwidth : float, default=0.5
        Largest distance of mean embeddings joined by the ``"embedding"`` rule.
    metric : {"euclidean", "l1"}, default="euclidean"
    iou_threshold : float, default=0.5

    Returns
    -------
    table : ndarray of shape (L + 1,), int32
        ``table[offsets[b] + i]`` is the global id of label ``i`` of block ``b``; ``table[0] = 0``.
    offsets : ndarray of shape (n_blocks,), int64
    stats : dict
        ``labels`` (L), ``instances`` (K), ``candidate_pairs`` (pairs touching
        across faces), ``joined_pairs`` and ``truncated``.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if rule not in RULES:
        raise ValueError(f"stitch must be one of {RULES}; got {rule!r}.")
    rows, cols = grid
    counts = np.array([m["n"] for m in metas], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    n = int(counts.sum())
    src, dst, candidates = [], [], 0
    for i in range(rows):
        for j in range(cols):
            a = i * cols + j
            for b, side_a, side_b in ((a + cols, "bottom", "top") if i + 1 < rows else (None, 0, 0),
                                      (a + 1, "right", "left") if j + 1 < cols else (None, 0, 0)):
                if b is None:
                    continue
                candidates += face_pairs(metas[a]["faces"][side_a], metas[b]["faces"][side_b]).shape[1]
                pairs = _face_edges(metas[a], metas[b], side_a, side_b, rule, bandwidth, metric, iou_threshold)
                src.append(offsets[a] + pairs[0])
                dst.append(offsets[b] + pairs[1])
    src = np.concatenate(src) if src else np.zeros(0, np.int64)
    dst = np.concatenate(dst) if dst else np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(src.size, np.int8), (src, dst)), shape=(n + 1, n + 1))
    _, comp = connected_components(graph, directed=False)
    table = np.zeros(n + 1, dtype=np.int32)
    if n:
        uniq, first = np.unique(comp[1:], return_index=True)
        rank = np.empty(int(comp.max()) + 1, dtype=np.int64)
        rank[uniq[np.argsort(first)]] = np.arange(1, uniq.size + 1)
        table[1:] = rank[comp[1:]]
    stats = {
        "labels": n,
        "instances": int(table.max()) if n else 0,
        "candidate_pairs": int(candidates),
        "joined_pairs": int(src.size),
        "truncated": int(sum(m.get("truncated", 0) for m in metas)),
    }
    if stats["truncated"]:
        logger.warning("%d instance(s) reach the edge of their block's context: objects larger than the overlap "
                       "may be cut; pass a larger overlap.", stats["truncated"])
    logger.info("stitched %d block labels into %d instances (%s rule: %d of %d pairs across faces joined)",
                n, stats["instances"], rule, stats["joined_pairs"], candidates)
    return table, offsets, stats


def apply_table(labels, table, offset):
    """A block's labels 1..k mapped to their global ids (``table[offset + i]``); 0 stays 0."""
    labels = np.asarray(labels)
    return table[np.where(labels > 0, labels.astype(np.int64) + offset, 0)]
