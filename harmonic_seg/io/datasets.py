"""The :class:`Dataset` container, data-root and split look-up, and generic loaders.

The loaders of the real benchmark data sets (``load_cvppp``, ``load_bbbc010``, ``load_ctc``)
build on this module; they live in :mod:`harmonic_seg.io.benchmarks` and are imported from
:mod:`harmonic_seg.io`.

Data root
---------
The real data sets live in one folder (the *data root*) with one sub-folder per data
set (``cvppp_a1``, ``bbbc010``, ``ctc_dic_c2dh_hela``) and the fixed train/test splits
in ``splits.json``. :func:`default_data_root` finds it (environment variable
``HARMONIC_SEG_DATA``, else ``../shared/data``).
"""

from __future__ import annotations

import glob as _glob
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._labels import relabel_sequential
from .imread import IMAGE_SUFFIXES, read_image, read_label_map

__all__ = [
    "load_label_pairs",
    "Dataset",
    "default_data_root",
    "load_split",
    "load_folder",
    "masks_to_label_map",
    "OVERLAP_POLICIES",
    "LABEL_SUFFIXES",
    "IMAGE_STEM_SUFFIXES",
]

logger = logging.getLogger(__name__)

#: Policies for pixels covered by several instances, see :func:`masks_to_label_map`.
OVERLAP_POLICIES = ("ignore", "first", "smallest")


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A list of images with their instance annotations.

    Parameters
    ----------
    images : list of ndarray of shape (H, W) or (H, W, C)
        Input images, in their stored dtype.
    labels : list of ndarray of shape (H, W), int32
        Training label maps (0 = background, one id per instance, no overlaps).
    names : list of str
        One identifier per image (e.g. ``'plant001'``, ``'A01'``, ``'01/t002'``).
    masks : list of ndarray of shape (K, H, W), bool, or None
        Per-instance masks, set when instances may overlap (e.g. BBBC010 worms):
        the ground truth to evaluate against. ``masks[i][k]`` is the instance with
        label ``k + 1`` in ``labels[i]`` where it is not overlapped.
    ignore : list of ndarray of shape (H, W), bool, or None
        Pixels to leave out of the training loss (e.g. overlaps of instances).
    partial : list of bool or None
        True for images whose annotation covers only some of the objects (e.g. the
        Cell Tracking Challenge frame ``01_GT/SEG/man_seg067.tif``): unannotated
        objects look like background there, so exclude such images from training or
        count only predictions that match an annotated object when evaluating.
        None means "all complete".
    """

    images: list
    labels: list
    names: list
    masks: list | None = None
    ignore: list | None = None
    partial: list | None = None

    def __post_init__(self):
        for field in ("images", "labels", "names", "masks", "ignore", "partial"):
            value = getattr(self, field)
            if value is None and field in ("masks", "ignore", "partial"):
                continue
            if isinstance(value, (str, bytes, np.ndarray)) or not hasattr(value, "__len__"):
                raise TypeError(
                    f"Dataset.{field} must be a list; got {type(value).__name__}. "
                    "Wrap single arrays in a list."
                )
            object.__setattr__(self, field, list(value))
        n = len(self.images)
        for field in ("labels", "names", "masks", "ignore", "partial"):
            value = getattr(self, field)
            if value is not None and len(value) != n:
                raise ValueError(
                    f"Dataset.{field} has {len(value)} entries but Dataset.images has {n}; "
                    "every field must have one entry per image."
                )
        for i, (im, lab) in enumerate(zip(self.images, self.labels)):
            if np.shape(im)[:2] != np.shape(lab):
                raise ValueError(
                    f"Dataset image {self.names[i]!r} has shape {np.shape(im)} but its label map has "
                    f"shape {np.shape(lab)}; the label map must match the image's (H, W)."
                )

    def __len__(self):
        return len(self.images)

    def __repr__(self):
        shown = ", ".join(repr(n) for n in self.names[:3]) + (", ..." if len(self) > 3 else "")
        extra = "".join(f", {f}=..." for f in ("masks", "ignore", "partial") if getattr(self, f) is not None)
        return f"Dataset(n={len(self)}, names=[{shown}]{extra})"

    def subset(self, indices):
        """Return a new :class:`Dataset` with the selected images.

        Parameters
        ----------
        indices : sequence of int, or boolean array of length ``len(self)``
            Positions to keep (negative positions count from the end), in the given order.

        Returns
        -------
        Dataset
        """
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(
                    f"a boolean indices mask must have shape ({len(self)},); got shape {idx.shape}."
                )
            idx = np.flatnonzero(idx)
        elif idx.size == 0:
            idx = idx.astype(int)
        elif not np.issubdtype(idx.dtype, np.integer) or idx.ndim != 1:
            raise TypeError(
                f"indices must be a 1-D sequence of ints or a boolean mask; got {idx.dtype} of shape {idx.shape}."
            )
        bad = idx[(idx >= len(self)) | (idx < -len(self))]
        if bad.size:
            raise IndexError(f"indices {bad.tolist()} out of range for a Dataset of {len(self)} images.")

        def pick(values):
            return None if values is None else [values[i] for i in idx.tolist()]

        return Dataset(
            images=pick(self.images),
            labels=pick(self.labels),
            names=pick(self.names),
            masks=pick(self.masks),
            ignore=pick(self.ignore),
            partial=pick(self.partial),
        )


def default_data_root():
    """Locate the folder holding the real data sets and ``splits.json``.

    Looks, in order, at the environment variable ``HARMONIC_SEG_DATA`` (returned as
    given, even when it does not exist, so that a wrong setting fails loudly),
    ``../shared/data`` relative to the current working directory, and
    ``../shared/data`` relative to the repository holding this package.

    Returns
    -------
    root : pathlib.Path or None
        None when no candidate folder exists.
    """
    env = os.environ.get("HARMONIC_SEG_DATA")
    if env:
        return Path(env)
    candidates = [
        Path.cwd().parent / "shared" / "data",
        Path(__file__).resolve().parents[2].parent / "shared" / "data",
    ]
    for cand in candidates:
        if cand.is_dir():
            return cand.resolve()
    return None


def _dataset_root(root, folder):
    """Resolve a loader's ``root`` argument (default ``default_data_root()/folder``)."""
    if root is None:
        base = default_data_root()
        if base is None:
            raise FileNotFoundError(
                f"no data root found for {folder!r}: set the HARMONIC_SEG_DATA environment variable "
                "or pass root=<the data set's folder>; looked for ../shared/data beside the working "
                "directory and beside the repository."
            )
        root = base / folder
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data set folder for {folder!r} not found: {root.resolve()}")
    return root


def _find_splits_file(root):
    root = Path(root)
    if root.is_file():
        return root
    candidates = [root / "splits.json", root.parent / "splits.json"]
    for cand in candidates:
        if cand.is_file():
            return cand
    raise FileNotFoundError(
        "splits.json not found; looked at " + ", ".join(str(c.resolve()) for c in candidates)
    )


def load_split(dataset_name, split, root=None):
    """Return the ids of one fixed split from ``splits.json``.

    Parameters
    ----------
    dataset_name : str
        Key in ``splits.json``: ``'cvppp_a1'``, ``'bbbc010'`` or ``'ctc_dic_c2dh_hela'``.
    split : str
        ``'train'`` or ``'test'`` (any split stored for the data set).
    root : str or pathlib.Path, optional
        The data root holding ``splits.json``, a data set folder inside it, or the
        ``splits.json`` file itself. Default: :func:`default_data_root`.

    Returns
    -------
    ids : list of str
    """
    if root is None:
        root = default_data_root()
        if root is None:
            raise FileNotFoundError(
                "no data root found to read splits.json: set HARMONIC_SEG_DATA or pass root=."
            )
    path = _find_splits_file(root)
    with open(path, encoding="utf-8") as fh:
        splits = json.load(fh)
    if dataset_name not in splits:
        raise KeyError(
            f"data set {dataset_name!r} not in {path.resolve()}; available: {sorted(splits)}."
        )
    if split not in splits[dataset_name]:
        raise ValueError(
            f"split must be one of {sorted(splits[dataset_name])} for {dataset_name!r}; got {split!r}."
        )
    return [str(i) for i in splits[dataset_name][split]]


def masks_to_label_map(masks, policy="ignore"):
    """Turn a stack of possibly overlapping instance masks into a training label map.

    Parameters
    ----------
    masks : ndarray of shape (K, H, W), bool
        One mask per instance; instance ``k`` gets label ``k + 1``.
    policy : {'ignore', 'first', 'smallest'}, default='ignore'
        What to do with pixels covered by two or more instances:

        - ``'ignore'``: they get label 0 and are flagged True in the returned
          ``ignore`` map (to be left out of the loss);
        - ``'first'``: the instance with the lowest index wins;
        - ``'smallest'``: the instance with the smallest area wins (ties: lowest index).

    Returns
    -------
    labels : ndarray of shape (H, W), int32
    ignore : ndarray of shape (H, W), bool
        Overlap pixels for ``'ignore'``; all False for the other policies.
    """
    if policy not in OVERLAP_POLICIES:
        raise ValueError(f"overlap policy must be one of {OVERLAP_POLICIES}; got {policy!r}.")
    try:
        masks = np.asarray(masks, dtype=bool)
    except (TypeError, ValueError):
        raise ValueError(f"masks must be a (K, H, W) stack of masks of one shape; got {masks!r:.100}.") from None
    if masks.ndim != 3:
        raise ValueError(f"masks must be a (K, H, W) stack; got shape {masks.shape}.")
    if masks.shape[0] == 0:
        return np.zeros(masks.shape[1:], np.int32), np.zeros(masks.shape[1:], bool)
    count = masks.sum(axis=0, dtype=np.int32)
    covered = count > 0
    if policy == "smallest":
        areas = masks.sum(axis=(1, 2))
        rank = np.empty(len(areas), np.int32)
        rank[np.argsort(areas, kind="stable")] = np.arange(len(areas), dtype=np.int32)
        big = np.int32(len(areas))
        winner_rank = np.where(masks, rank[:, None, None], big).min(axis=0)
        order = np.argsort(rank)  # rank -> instance index
        winner = order[np.minimum(winner_rank, big - 1)]
    else:
        winner = masks.argmax(axis=0)  # first True along K
    labels = np.where(covered, winner + 1, 0).astype(np.int32)
    ignore = np.zeros(count.shape, bool)
    if policy == "ignore":
        ignore = count > 1
        labels[ignore] = 0
    return labels, ignore


# ---------------------------------------------------------------------------
# Generic folder pairing

#: Suffixes a label file stem may add to its image's stem (pairing rule of load_folder).
LABEL_SUFFIXES = ("_label", "_labels", "_mask", "_masks", "_seg", "_gt", "_ground_truth", "_instances")
#: Suffixes an image stem may carry that are not part of the shared key.
IMAGE_STEM_SUFFIXES = ("_rgb", "_img", "_image", "_raw")
_GLOB_CHARS = re.compile(r"[*?\[]")


def _image_key(stem):
    for suf in IMAGE_STEM_SUFFIXES:
        if stem.endswith(suf) and len(stem) > len(suf):
            return stem[: -len(suf)]
    m = re.fullmatch(r"t(\d+)", stem)  # Cell Tracking Challenge frame tNNN <-> man_segNNN
    return m.group(1) if m else stem


def _label_key(stem):
    if stem.startswith("man_seg") and len(stem) > len("man_seg"):
        return stem[len("man_seg"):]
    for suf in sorted(LABEL_SUFFIXES, key=len, reverse=True):
        if stem.endswith(suf) and len(stem) > len(suf):
            return stem[: -len(suf)]
    return stem


def _list_files(spec, pattern, what):
    if isinstance(spec, bytes):
        spec = spec.decode()
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"the {what} folder must be a str or pathlib.Path; got {type(spec).__name__} {spec!r:.100}")
    if pattern is not None and not isinstance(pattern, str):
        raise TypeError(f"the {what} pattern must be a str or None; got {type(pattern).__name__} {pattern!r:.100}")
    spec_str = str(spec)
    if _GLOB_CHARS.search(spec_str) and not Path(spec_str).exists():
        files = [Path(f) for f in _glob.glob(spec_str)]
        where = spec_str
    else:
        folder = Path(spec)
        if not folder.is_dir():
            raise FileNotFoundError(f"{what} folder not found: {folder.resolve()}")
        files = list(folder.glob(pattern)) if pattern else list(folder.iterdir())
        where = str(folder.resolve()) + (f" (pattern {pattern!r})" if pattern else "")
    files = sorted(f for f in files if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no {what} files ({', '.join(IMAGE_SUFFIXES)}) found in {where}")
    return files


def _index_by_key(files, key_fn, what):
    index = {}
    for f in files:
        key = key_fn(f.stem)
        if key in index:
            raise ValueError(
                f"two {what} files pair with the same name {key!r}: {index[key].resolve()} and "
                f"{f.resolve()}; narrow the selection with a pattern."
            )
        index[key] = f
    return index


def load_folder(images, labels, pattern=None, *, label_pattern=None):
    """Load images and label maps from folders, pairing files by name.

    Pairing rule: an image and a label map pair when their *keys* are equal, where

    - the image key is the file stem, less one trailing ``_rgb``/``_img``/``_image``/
      ``_raw``, and a Cell Tracking Challenge frame name ``tNNN`` keys as ``NNN``;
    - the label key is the file stem, less a leading ``man_seg`` or one trailing
      suffix among ``_label(s)``, ``_mask(s)``, ``_seg``, ``_gt``, ``_ground_truth``,
      ``_instances``.

    So ``a.png`` pairs with ``a.tif``, ``a_label.png``, ``a_masks.tif``;
    ``plant001_rgb.png`` with ``plant001_label.png``; ``t002.tif`` with
    ``man_seg002.tif``. Matching is case-sensitive; every image needs a label map and
    every label map an image.

    Parameters
    ----------
    images : str or pathlib.Path
        Folder of images, or a glob pattern such as ``'data/*_rgb.png'``.
    labels : str or pathlib.Path
        Folder (or glob pattern) of label maps (png/tif). It may be the images folder:
        the image files are then left out of the label candidates (use
        ``label_pattern`` to leave out other files).
    pattern : str, optional
        Glob pattern for the image files inside the ``images`` folder (default: every
        png/tif/jpg file).
    label_pattern : str, optional
        Glob pattern for the label files inside the ``labels`` folder.

    Returns
    -------
    Dataset
        ``names`` are the image keys, in sorted file order. ``labels`` are int32
        maps with the stored instance ids; a map with ids above ``2**31 - 1``
        (32- or 64-bit files) has its ids renumbered ``1..K`` in increasing
        order (0 stays background) instead, so that no id wraps around or
        merges with another.

    Raises
    ------
    FileNotFoundError
        If a folder is missing or holds no image file.
    ValueError
        If some images have no label map or some label maps no image (the message
        lists the files), if two files pair with the same key, if shapes differ,
        or if a label map holds negative ids (the message names the file).
    """
    image_files = _list_files(images, pattern, "image")
    label_files = _list_files(labels, label_pattern, "label")
    image_set = {f.resolve() for f in image_files}
    label_files = [f for f in label_files if f.resolve() not in image_set]
    by_image = _index_by_key(image_files, _image_key, "image")
    by_label = _index_by_key(label_files, _label_key, "label")
    lonely_images = [str(by_image[k].resolve()) for k in by_image if k not in by_label]
    lonely_labels = [str(by_label[k].resolve()) for k in by_label if k not in by_image]
    if lonely_images or lonely_labels:
        parts = []
        if lonely_images:
            parts.append(f"{len(lonely_images)} image(s) without a label map: {lonely_images}")
        if lonely_labels:
            parts.append(f"{len(lonely_labels)} label map(s) without an image: {lonely_labels}")
        raise ValueError(
            "could not pair images with label maps by name (see load_folder's pairing rule); "
            + "; ".join(parts)
        )
    out_images, out_labels, names = [], [], []
    for key, img_file in by_image.items():
        lab_file = by_label[key]
        img = read_image(img_file)
        lab = _int32_ids(read_label_map(lab_file), lab_file)
        _check_same_shape(img, lab, img_file, lab_file)
        out_images.append(img)
        out_labels.append(lab)
        names.append(key)
    return Dataset(images=out_images, labels=out_labels, names=names)


def load_label_pairs(predicted, truth):
    """Two folders (or glob patterns) of label maps paired by name, e.g. to score predictions.

    Both sides are keyed like label maps in :func:`load_folder` (a trailing
    ``_label``, ``_mask``, ... or a leading ``man_seg`` is dropped), so
    ``a_label.tif`` pairs with ``a.png`` or ``a_mask.png``.

    Returns
    -------
    names : list of str
    predicted, truth : list of ndarray of shape (H, W)
        Integer label maps, in the same order as ``names``.
    """
    pf = _index_by_key(_list_files(predicted, None, "predicted label map"), _label_key, "predicted label map")
    tf = _index_by_key(_list_files(truth, None, "ground-truth label map"), _label_key, "ground-truth label map")
    only_p, only_t = sorted(set(pf) - set(tf)), sorted(set(tf) - set(pf))
    if only_p or only_t:
        raise ValueError(
            f"could not pair label maps by name: without ground truth {[str(pf[k]) for k in only_p]}, "
            f"without prediction {[str(tf[k]) for k in only_t]}"
        )
    names = sorted(pf)
    pred = [read_label_map(pf[k]) for k in names]
    true = [read_label_map(tf[k]) for k in names]
    for k, a, b in zip(names, pred, true):
        if a.shape != b.shape:
            raise ValueError(f"{pf[k]} has shape {a.shape} but {tf[k]} has shape {b.shape}.")
    return names, pred, true


def _int32_ids(labels, path):
    """A validated label map as int32: its ids when they fit, else renumbered ``1..K`` (order kept).

    A plain cast would wrap ids above ``2**31 - 1`` around (``2**32 + 1`` merging
    with 1, ``3e9`` turning negative).
    """
    top = int(labels.max())
    if top > np.iinfo(np.int32).max:
        labels, ids, _ = relabel_sequential(labels)
        logger.info(
            "label map %s has ids up to %d, beyond int32: renumbered 1..%d in increasing order",
            Path(path).resolve(), top, ids.size,
        )
    return labels.astype(np.int32, copy=False)


def _check_same_shape(image, label, image_file, label_file):
    if image.shape[:2] != label.shape[:2]:
        raise ValueError(
            f"shape mismatch: image {Path(image_file).resolve()} has shape {image.shape} but label "
            f"{Path(label_file).resolve()} has shape {label.shape}; expected equal (H, W)."
        )

