"""Post-processing of instance label maps (numpy, scipy and scikit-image only).

These helpers turn the raw cluster map produced by mean-shift clustering of
the predicted embeddings (:func:`harmonic_seg.clustering.cluster_embeddings`)
into a clean instance label map and give every instance a confidence score
(used to rank detections for COCO-style average precision).

All functions take and return 2-D integer label maps with 0 = background and
never modify their input.
"""

from __future__ import annotations

import logging

import numpy as np

from ._validation import _describe, check_label_map, check_positive

__all__ = [
    "remove_small_instances",
    "merge_small_instances",
    "split_into_components",
    "split_at_modes",
    "relabel_sequential",
    "instance_scores",
]

logger = logging.getLogger(__name__)

_METRICS = ("euclidean", "l1")


def remove_small_instances(labels, min_size):
    """Set every instance with fewer than ``min_size`` pixels to background.

    Parameters
    ----------
    labels : array-like of shape (H, W)
        Integer label map, 0 = background.
    min_size : int
        Smallest number of pixels an instance must have to be kept
        (``min_size <= 1`` keeps everything).

    Returns
    -------
    labels : ndarray of shape (H, W)
        A copy of ``labels`` (same dtype) with the small instances removed.
        Ids of the kept instances are unchanged (use :func:`relabel_sequential`
        to make them consecutive).
    """
    labels = check_label_map(labels, "labels")
    check_positive(min_size, "min_size", integer=True, allow_zero=True)
    out = labels.copy()
    if min_size <= 1:
        return out
    counts = np.bincount(labels.ravel())
    small = counts < min_size
    small[0] = False
    if small.any():
        out[small[labels]] = 0
    return out


def merge_small_instances(labels, min_size):
    """Give the pixels of every instance smaller than ``min_size`` to a touching larger one.

    The kept instances grow into the small ones through the pixels they
    cover, by a flooding from all kept instances at once (watershed on a flat
    image, 4-connected): a pixel joins the kept instance it reaches first,
    which is a nearest one along paths inside the small instances. Small
    instances that touch no kept instance (directly or through other small
    ones) are removed, as :func:`remove_small_instances` does. With a given
    foreground, every foreground pixel thus stays in some instance; the
    fragments of an instance that the clustering cut off return to it.

    Parameters
    ----------
    labels : array-like of shape (H, W)
        Integer label map, 0 = background.
    min_size : int
        Instances with fewer pixels are merged (``min_size <= 1`` keeps
        everything as it is).

    Returns
    -------
    labels : ndarray of shape (H, W)
        A copy (same dtype); ids of the kept instances unchanged.
    """
    from skimage.segmentation import watershed

    labels = check_label_map(labels, "labels")
    kept = remove_small_instances(labels, min_size)
    if min_size <= 1 or not kept.any() or np.array_equal(kept, labels):
        return kept
    flat = np.zeros(labels.shape, dtype=np.uint8)
    return watershed(flat, markers=kept, mask=labels > 0, connectivity=1).astype(labels.dtype, copy=False)


def split_into_components(labels, connectivity=1):
    """Split every instance into its spatially connected components.

    Parameters
    ----------
    labels : array-like of shape (H, W)
        Integer label map, 0 = background.
    connectivity : {1, 2}, default=1
        1: 4-connectivity (pixels sharing an edge), 2: 8-connectivity.

    Returns
    -------
    labels : ndarray of shape (H, W), int32
        Each connected region of one non-zero value gets its own id; ids are
        consecutive 1..K in raster order of first appearance.

    Notes
    -----
    Uses :func:`skimage.measure.label`, which labels connected regions of
    *equal value*: two touching instances with different ids stay separate,
    and one id split into two blobs becomes two ids. One vectorised pass, no
    loop over instances.
    """
    from skimage.measure import label as sk_label

    labels = check_label_map(labels, "labels")
    if connectivity not in (1, 2):
        raise ValueError(f"connectivity must be 1 (4-connected) or 2 (8-connected); got {connectivity!r}.")
    return sk_label(labels, background=0, connectivity=connectivity).astype(np.int32, copy=False)


#: ``split_at_modes``: a mode's piece of a component is a seed only if it holds at least this share of the
#: pixels of the component's largest piece (and at least ``min_size`` pixels).
MIN_SHARE = 0.1


def _check_min_share(min_share):
    if isinstance(min_share, bool) or not isinstance(min_share, (int, float, np.integer, np.floating)) or not (
        0 <= min_share <= 1
    ):
        raise ValueError(f"min_share must be a fraction in [0, 1]; got {min_share!r}.")


def _pairs(labels):
    """Distinct unordered pairs of different non-zero labels that touch (4-neighbours), shape (E, 2)."""
    pairs = []
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        touch = (a != b) & (a > 0) & (b > 0)
        pairs.append(np.stack([np.minimum(a[touch], b[touch]), np.maximum(a[touch], b[touch])], 1))
    pairs = np.concatenate(pairs)
    return np.unique(pairs, axis=0) if pairs.size else pairs.reshape(0, 2)


def split_at_modes(modes, embedding, margin, *, min_share=MIN_SHARE, min_size=10, metric="euclidean"):
    """Instances from a map of embedding modes: foreground components, split only where the modes differ.

    The embedding may only add to the connected components of the
    foreground: a component is one instance unless its embedding shows
    distinct modes, each holding a meaningful share of its pixels. The rules,
    in this order:

    1. *Components.* The foreground (``modes > 0``) is cut into its
       4-connected components; an instance never spans two of them.
    2. *Pieces.* Each component is cut into pieces: 4-connected regions of
       one mode.
    3. *Meaningful share.* A piece is a seed when it holds at least
       ``min_share`` times as many pixels as the largest piece of its
       component, and at least ``min_size`` pixels. A component with fewer
       than two seeds stays whole. (Measured against the largest piece, not
       the whole component, so that a clump of many objects can still split
       into all of them.)
    4. *The rest joins a seed.* In a component with two seeds or more, every
       other pixel joins the seed it reaches first through the component (a
       flooding from all seeds at once, 4-connected, as
       :func:`merge_small_instances` does; a pixel as near to two seeds goes
       to the one whose flooding reached its neighbour first, decided within
       the component alone), so every instance is connected and every pixel
       of the component belongs to one. A component is split the same way
       wherever it lies and whatever else the image holds.
    5. *Margin.* Two touching regions whose seeds' mean embeddings lie
       closer than ``margin`` are one instance: only modes separated by at
       least the margin split a component.

    Parameters
    ----------
    modes : array-like of shape (H, W)
        Integer map, 0 = background, else the mode (cluster) of the pixel's
        embedding; equal values in different components are different modes.
    embedding : array-like of shape (N, H, W)
        Per-pixel embeddings (the seeds' means are taken over it).
    margin : float
        Smallest distance between the mean embeddings of two seeds that
        keeps them apart (the mean-shift bandwidth, the margin eps), > 0.
    min_share : float in [0, 1], default=0.1
        Smallest size of a seed relative to the largest piece of its
        component.
    min_size : int, default=10
        Smallest number of pixels a piece needs to be a seed (small
        components are not removed here: see :func:`remove_small_instances`).
    metric : {"euclidean", "l1"}, default="euclidean"
        Distance of the margin test.

    Returns
    -------
    labels : ndarray of shape (H, W), int32
        Instances 1..K (0 = background); the foreground of ``modes`` is
        covered exactly.

    Notes
    -----
    Vectorised: two connected-component labellings, one flooding (only when
    some component has two seeds) and ``bincount`` sums; no loop over pixels
    or components.
    """
    modes = check_label_map(modes, "modes")
    check_positive(margin, "margin")
    check_positive(min_size, "min_size", integer=True, allow_zero=True)
    _check_min_share(min_share)
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}; got {metric!r}.")
    out = _split_at_modes(modes, _check_embedding(embedding, modes.shape), margin, min_share, min_size, metric)
    return relabel_sequential(out)


def _split_at_modes(modes, emb, margin, min_share, min_size, metric):
    """:func:`split_at_modes` of checked inputs; instance ids not consecutive."""
    return _Pieces(modes, emb[:, modes > 0].T).split(margin, min_share, min_size, metric)


class _Pieces:
    """The components and pieces of a mode map, computed once; :meth:`split` applies the rules for one
    ``(margin, min_share, min_size, metric)``, so that a grid over the last ones labels the map once."""

    def __init__(self, modes, points):
        """``points`` (P, N): the embeddings of the pixels ``modes > 0``, in row-major order."""
        from skimage.measure import label as sk_label

        self.points = points
        self.fg = fg = modes > 0
        self.comps = sk_label(fg, connectivity=1).astype(np.int64, copy=False)
        self.n_comps = int(self.comps.max())
        if not self.n_comps:
            return
        self.pieces = sk_label(modes, background=0, connectivity=1).astype(np.int64, copy=False)
        self.n_pieces = int(self.pieces.max())
        # the rules work on the foreground pixels (row-major, as ``points``), the grid only where regions grow
        self.fg_idx = np.flatnonzero(fg)
        self.comps_fg = self.comps.ravel()[self.fg_idx]
        fg_pieces = self.pieces_fg = self.pieces.ravel()[self.fg_idx]
        self.comp_of = np.zeros(self.n_pieces + 1, dtype=np.int64)
        self.comp_of[fg_pieces] = self.comps_fg
        self.size = np.bincount(fg_pieces, minlength=self.n_pieces + 1)
        self.largest = np.zeros(self.n_comps + 1, dtype=np.int64)  # the largest piece of every component
        np.maximum.at(self.largest, self.comp_of, self.size)
        self._means = None

    def means(self):
        """Mean embedding of every piece (row 0: background), float64."""
        if self._means is None:
            idx = self.pieces_fg
            sums = np.stack([np.bincount(idx, weights=col, minlength=self.n_pieces + 1) for col in self.points.T], 1)
            self._means = sums / np.maximum(self.size, 1)[:, None]
        return self._means

    def split(self, margin, min_share, min_size, metric):
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        if not self.n_comps:
            return self.comps.astype(np.int32)
        comps, n_pieces, fg_idx = self.comps, self.n_pieces, self.fg_idx
        seed = (self.size >= max(int(min_size), 1)) & (self.size >= min_share * self.largest[self.comp_of])
        seed[0] = False
        multi = np.bincount(self.comp_of[seed], minlength=self.n_comps + 1) >= 2  # components that split
        multi[0] = False
        if not multi.any():
            return comps.astype(np.int32)
        # every foreground pixel: its seed piece in a component that splits (0: none yet), else its component
        in_multi = multi[self.comps_fg]
        marks = np.where(in_multi, np.where(seed[self.pieces_fg], self.pieces_fg, 0), n_pieces + self.comps_fg)
        markers = np.zeros(comps.size, dtype=np.int64)
        markers[fg_idx] = marks
        markers = markers.reshape(comps.shape)
        w = comps.shape[1]
        rows, cols = fg_idx[in_multi] // w, fg_idx[in_multi] % w
        box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))  # the components that split
        unmarked = marks == 0
        if unmarked.any():
            _flood_per_component(markers, comps, np.flatnonzero(multi & (np.bincount(
                self.comps_fg[unmarked], minlength=self.n_comps + 1) > 0)))
            marks = markers.ravel()[fg_idx]
        # margin: touching regions of one component whose seeds' mean embeddings are closer than it merge
        pairs = _pairs(np.where(multi[comps[box]], markers[box], 0))
        if pairs.size:
            means = self.means()
            diff = means[pairs[:, 0]] - means[pairs[:, 1]]
            dist = np.abs(diff).sum(1) if metric == "l1" else np.sqrt((diff * diff).sum(1))
            close = pairs[dist < margin]
            n_lab = n_pieces + self.n_comps + 1
            graph = coo_matrix((np.ones(len(close)), (close[:, 0], close[:, 1])), shape=(n_lab, n_lab))
            root = connected_components(graph, directed=False)[1]
            grown = np.where(marks > 0, root[marks] + 1, 0)
            markers = np.zeros(comps.size, dtype=grown.dtype)
            markers[fg_idx] = grown
            markers = markers.reshape(comps.shape)
        return markers


def _flood_per_component(markers, comps, which):
    """Give the unmarked pixels of the components ``which`` to the marked regions they touch, in place.

    A watershed on a flat image grows the regions one pixel layer at a time; its ties (a pixel as near
    to two regions) are broken by the order in which the pixels were queued. Run in each component's
    own box, that order, and so the result, depends on the component alone: the same in a crop of the
    image as in the whole image.
    """
    from scipy import ndimage
    from skimage.segmentation import watershed

    boxes = ndimage.find_objects(comps, max_label=int(comps.max()))
    for c in which:
        box = boxes[c - 1]
        mask = comps[box] == c
        sub = markers[box]
        flooded = watershed(np.zeros(mask.shape, np.uint8), markers=np.where(mask, sub, 0), mask=mask, connectivity=1)
        sub[mask] = flooded[mask]


def relabel_sequential(labels, *, return_ids=False):
    """Renumber the instances of a label map to consecutive ids 1..K.

    Parameters
    ----------
    labels : array-like of shape (H, W)
        Integer label map, 0 = background.
    return_ids : bool, default=False
        Also return the original id of each new id.

    Returns
    -------
    labels : ndarray of shape (H, W), int32
        Instance ``i`` (1-based) is the ``i``-th smallest original id; 0 stays 0.
    ids : ndarray of shape (K,)
        Original id of new id ``i + 1``. Only when ``return_ids`` is True.
    """
    from skimage.segmentation import relabel_sequential as sk_relabel

    labels = check_label_map(labels, "labels")
    new = sk_relabel(labels)[0].astype(np.int32, copy=False)
    if return_ids:
        # relabel_sequential numbers the ids in increasing order
        return new, np.unique(labels[labels > 0])
    return new


def _check_embedding(embedding, shape, name="embedding"):
    emb = np.asarray(embedding)
    if emb.ndim != 3 or emb.shape[1:] != tuple(shape) or emb.shape[0] == 0:
        raise ValueError(
            f"{name} must have shape (N, H, W) = (N, {shape[0]}, {shape[1]}) with N >= 1 to match labels; "
            f"got {_describe(emb)}."
        )
    if not (np.issubdtype(emb.dtype, np.number) or emb.dtype == bool) or np.iscomplexobj(emb):
        raise TypeError(f"{name} must hold real numbers; got dtype {emb.dtype}.")
    if not np.issubdtype(emb.dtype, np.floating):
        emb = emb.astype(np.float32)
    if not np.all(np.isfinite(emb)):
        raise ValueError(f"{name} contains NaN or infinite values; got {int((~np.isfinite(emb)).sum())} of them.")
    return emb


def instance_scores(labels, embedding, bandwidth, *, centers=None, fg_prob=None, metric="euclidean"):
    """Confidence score of every instance of a label map, in [0, 1].

    The score of instance ``k`` with pixel set ``S_k`` and mode ``c_k`` is::

        score_k = mean_{p in S_k} fg_prob[p]  *  |{p in S_k : d(e_p, c_k) <= bandwidth}| / |S_k|

    i.e. the mean foreground probability over the instance times the
    *tightness* of its cluster: the fraction of its pixels whose embedding
    ``e_p`` lies within ``bandwidth`` of the cluster mode (``d`` is the L2 or
    L1 distance, as chosen by ``metric``). A compact, confidently-foreground
    instance scores close to 1; a diffuse cluster (pixels pulled from several
    modes, typical of merged or hallucinated instances) or a faint one scores
    lower. With ``fg_prob=None`` the first factor is 1.

    Parameters
    ----------
    labels : array-like of shape (H, W)
        Integer label map, 0 = background.
    embedding : array-like of shape (N, H, W)
        Per-pixel embeddings.
    bandwidth : float
        Mean-shift bandwidth (the margin eps of the paper), > 0.
    centers : array-like of shape (K, N) or None, default=None
        Mode of each instance, row ``i`` for the ``i``-th smallest non-zero id
        of ``labels``. ``None`` uses the mean embedding of each instance.
    fg_prob : array-like of shape (H, W) or None, default=None
        Foreground probability of each pixel, in [0, 1].
    metric : {"euclidean", "l1"}, default="euclidean"

    Returns
    -------
    scores : ndarray of shape (K,), float64
        ``scores[i]`` belongs to the ``i``-th smallest non-zero id (the id
        ``i + 1`` after :func:`relabel_sequential`). Empty when ``labels`` has
        no instance.
    """
    labels = check_label_map(labels, "labels")
    check_positive(bandwidth, "bandwidth")
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}; got {metric!r}.")
    emb = _check_embedding(embedding, labels.shape)
    fg = labels > 0
    ids, inv = np.unique(labels[fg], return_inverse=True)
    k = len(ids)
    if k == 0:
        return np.zeros(0, dtype=np.float64)
    inv = inv.ravel()
    e = emb[:, fg].T.astype(np.float64, copy=False)  # (P, N)
    counts = np.bincount(inv, minlength=k).astype(np.float64)
    if centers is None:
        c = np.stack([np.bincount(inv, weights=col, minlength=k) for col in e.T], axis=1) / counts[:, None]
    else:
        c = np.asarray(centers, dtype=np.float64)
        if c.shape != (k, emb.shape[0]):
            raise ValueError(
                f"centers must have shape (K, N) = ({k}, {emb.shape[0]}): one row per instance of labels; "
                f"got {_describe(np.asarray(centers))}."
            )
    diff = e - c[inv]
    if metric == "l1":
        dist = np.abs(diff).sum(axis=1)
    else:
        dist = np.sqrt((diff * diff).sum(axis=1))
    prob = None
    if fg_prob is not None:
        prob = np.asarray(fg_prob, dtype=np.float64)
        if prob.shape != labels.shape:
            raise ValueError(
                f"fg_prob must have shape (H, W) = {labels.shape} to match labels; "
                f"got {_describe(np.asarray(fg_prob))}."
            )
        if not np.all(np.isfinite(prob)):
            raise ValueError("fg_prob contains NaN or infinite values.")
        prob = prob[fg]
    return _membership_scores(inv, dist <= bandwidth, prob, k)


def _membership_scores(inv, within, prob, k):
    """``mean(prob) * mean(within)`` per instance.

    Parameters
    ----------
    inv : ndarray of shape (P,)
        Instance index 0..k-1 of every instance pixel.
    within : ndarray of shape (P,), bool
        Whether the pixel's embedding is within the bandwidth of its mode.
    prob : ndarray of shape (P,) or None
        Foreground probability of every pixel (None = 1).
    k : int
        Number of instances.
    """
    counts = np.bincount(inv, minlength=k).astype(np.float64)
    counts[counts == 0] = 1.0
    score = np.bincount(inv, weights=np.asarray(within, dtype=np.float64), minlength=k) / counts
    if prob is not None:
        score *= np.bincount(inv, weights=np.clip(prob, 0.0, 1.0), minlength=k) / counts
    return score
