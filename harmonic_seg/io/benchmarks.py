"""Loaders of the real benchmark data sets of the paper (numpy only).

Each loader's ``root`` is the data set's own folder, by default
``default_data_root() / <folder>`` with folders ``cvppp_a1``, ``bbbc010`` and
``ctc_dic_c2dh_hela``. ``split='train'``/``'test'`` selects the fixed split stored
in ``splits.json`` (looked up in ``root`` or its parent folder). All loaders return
a :class:`~harmonic_seg.io.datasets.Dataset`; missing files raise
:class:`FileNotFoundError` naming the full path, shape mismatches raise
:class:`ValueError` naming both files.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from .datasets import (
    OVERLAP_POLICIES,
    Dataset,
    _check_same_shape,
    _dataset_root,
    _int32_ids,
    load_split,
    masks_to_label_map,
)
from .imread import read_image, read_label_map

__all__ = ["load_cvppp", "load_bbbc010", "load_ctc", "CTC_PARTIAL_RATIO"]

logger = logging.getLogger(__name__)

#: A gold (``NN_GT``) CTC frame with fewer than this fraction of the instances of the
#: silver truth (``NN_ST``) of the same frame is flagged as partially annotated.
CTC_PARTIAL_RATIO = 0.75


def _require_file(path, what):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path.resolve()}")
    return path


def _select_ids(all_ids, split, ids, dataset_name, root, normalise=str):
    """Ids to load: the split's (if any), narrowed to ``ids`` (if any)."""
    chosen = list(all_ids) if split is None else load_split(dataset_name, split, root)
    if ids is not None:
        if isinstance(ids, (str, int)):
            ids = [ids]
        ids = [normalise(i) for i in ids]
        if split is not None:
            outside = [i for i in ids if i not in set(chosen)]
            if outside:
                raise ValueError(f"ids {outside} are not in the {split!r} split of {dataset_name!r}.")
        chosen = ids
    return chosen


# ---------------------------------------------------------------------------
# CVPPP A1


def _cvppp_id(i):
    if isinstance(i, (int, np.integer)):
        return f"plant{int(i):03d}"
    return str(i)


def load_cvppp(root=None, split=None, ids=None):
    """Load the CVPPP 2017 leaf segmentation set A1 (Arabidopsis rosettes).

    Layout: ``plantNNN_rgb.png`` (RGBA; the alpha channel is dropped) and
    ``plantNNN_label.png`` (palette-indexed PNG whose index is the leaf id,
    0 = background).

    Parameters
    ----------
    root : str or pathlib.Path, optional
        The ``cvppp_a1`` folder (default ``default_data_root() / 'cvppp_a1'``).
    split : {None, 'train', 'test'}, default=None
        None loads every ``plantNNN_rgb.png`` in the folder; otherwise the fixed
        split of ``splits.json`` (96 train / 32 test plants).
    ids : list of str or int, optional
        Plant ids such as ``'plant001'`` (or ``1``) to load; with ``split`` they
        must belong to it.

    Returns
    -------
    Dataset
        ``images`` (H, W, 3) uint8 RGB, ``labels`` int32, ``names`` the plant ids.
    """
    root = _dataset_root(root, "cvppp_a1")
    all_ids = sorted(p.name[: -len("_rgb.png")] for p in root.glob("plant*_rgb.png"))
    if split is None and ids is None and not all_ids:
        raise FileNotFoundError(f"no plantNNN_rgb.png images found in {root.resolve()}")
    chosen = _select_ids(all_ids, split, ids, "cvppp_a1", root, _cvppp_id)
    images, labels = [], []
    for pid in chosen:
        img_file = _require_file(root / f"{pid}_rgb.png", "CVPPP image")
        lab_file = _require_file(root / f"{pid}_label.png", "CVPPP label map")
        img = read_image(img_file, drop_alpha=True)
        lab = _int32_ids(read_label_map(lab_file), lab_file)
        _check_same_shape(img, lab, img_file, lab_file)
        images.append(img)
        labels.append(lab)
    return Dataset(images=images, labels=labels, names=list(chosen))


# ---------------------------------------------------------------------------
# BBBC010


_WELL = re.compile(r"^[A-P]\d{2}$")


def load_bbbc010(root=None, split=None, ids=None, input="mask", overlap="ignore"):
    """Load BBBC010 (C. elegans live/dead assay) with one mask per worm.

    Layout: ``foreground/<WELL>_binary.png`` (binary foreground, all 100 wells),
    ``images/*_<WELL>_w1_*.tif`` (16-bit bright-field, 98 wells: C13 and C14 have no
    image) and ``foreground_eachworm/<WELL>_<NN>_ground_truth.png`` (one 0/255 PNG per
    worm, NN = worm index, 11-15 worms per well).

    Parameters
    ----------
    root : str or pathlib.Path, optional
        The ``bbbc010`` folder (default ``default_data_root() / 'bbbc010'``).
    split : {None, 'train', 'test'}, default=None
        None loads every well of ``foreground/``; otherwise the 50/50 split of
        ``splits.json``.
    ids : list of str, optional
        Wells such as ``'A01'``; with ``split`` they must belong to it.
    input : {'mask', 'brightfield'}, default='mask'
        ``'mask'``: the binary foreground PNG as a (H, W) uint8 0/1 image, the
        paper's protocol. ``'brightfield'``: the 16-bit bright-field TIFF as uint16,
        the harder protocol. Wells without a bright-field image (C13, C14) are
        skipped with a logged warning when they come from ``split``/all wells, and
        raise :class:`FileNotFoundError` when requested through ``ids``.
    overlap : {'ignore', 'first', 'smallest'}, default='ignore'
        Training label policy for pixels covered by several worms (about 1 % of the
        foreground), see :func:`~harmonic_seg.io.datasets.masks_to_label_map`:
        ``'ignore'`` gives them label 0 and flags them in ``Dataset.ignore``;
        ``'first'`` gives them to the lower worm index; ``'smallest'`` to the
        smaller worm. The full per-worm masks are always kept in ``Dataset.masks``
        for evaluation (worm ``k`` of ``masks[i]`` has label ``k + 1``).

    Returns
    -------
    Dataset
        With ``masks`` (K, H, W) bool and ``ignore`` (all False except with
        ``overlap='ignore'``).

    Notes
    -----
    The per-worm masks and the foreground PNG were drawn separately and do not
    coincide: measured over the 100 wells, the union of the worm masks covers about
    92 % of the foreground pixels and about 7.5 % of worm pixels lie outside the
    foreground; pixels covered by two or more worms are about 1.1 % of the
    foreground (92 of the 100 wells have some). Labels come from the worm masks only.
    """
    if input not in ("mask", "brightfield"):
        raise ValueError(f"input must be 'mask' or 'brightfield'; got {input!r}.")
    if overlap not in OVERLAP_POLICIES:
        raise ValueError(f"overlap must be one of {OVERLAP_POLICIES}; got {overlap!r}.")
    root = _dataset_root(root, "bbbc010")
    fg_dir, img_dir, worm_dir = root / "foreground", root / "images", root / "foreground_eachworm"
    needed = [worm_dir, fg_dir if input == "mask" else img_dir]
    for d in needed:
        if not d.is_dir():
            raise FileNotFoundError(f"BBBC010 folder not found: {d.resolve()}")
    all_wells = sorted(p.name.split("_")[0] for p in fg_dir.glob("*_binary.png")) if fg_dir.is_dir() else []
    if not all_wells:
        all_wells = sorted({p.name.split("_")[0] for p in worm_dir.glob("*_ground_truth.png")})
    wells = _select_ids(all_wells, split, ids, "bbbc010", root, lambda w: str(w).upper())
    explicit = ids is not None
    images, labels, masks, ignores, names = [], [], [], [], []
    for well in wells:
        if not _WELL.match(well):
            raise ValueError(f"BBBC010 well ids look like 'A01'; got {well!r}.")
        if input == "mask":
            img_file = _require_file(fg_dir / f"{well}_binary.png", "BBBC010 foreground mask")
            fg = read_label_map(img_file)
            img = (fg > 0).astype(np.uint8)
        else:
            found = sorted(img_dir.glob(f"*_{well}_w1_*.tif"))
            if not found:
                missing = img_dir.resolve() / f"*_{well}_w1_*.tif"
                if explicit:
                    raise FileNotFoundError(f"BBBC010 bright-field image not found: {missing}")
                logger.warning("BBBC010 well %s has no bright-field image (%s); skipped", well, missing)
                continue
            if len(found) > 1:
                raise ValueError(f"several bright-field images for BBBC010 well {well}: {found}")
            img_file = found[0]
            img = read_image(img_file)
        worm_files = sorted(
            worm_dir.glob(f"{well}_*_ground_truth.png"), key=lambda p: int(p.name.split("_")[1])
        )
        if not worm_files:
            raise FileNotFoundError(
                f"no per-worm masks for BBBC010 well {well}: {worm_dir.resolve()}/{well}_NN_ground_truth.png"
            )
        stack = []
        for wf in worm_files:
            worm = read_label_map(wf) > 0
            _check_same_shape(img, worm, img_file, wf)
            stack.append(worm)
        stack = np.stack(stack)
        lab, ign = masks_to_label_map(stack, overlap)
        images.append(img)
        labels.append(lab)
        masks.append(stack)
        ignores.append(ign)
        names.append(well)
    return Dataset(images=images, labels=labels, names=names, masks=masks, ignore=ignores)


# ---------------------------------------------------------------------------
# Cell Tracking Challenge


def _frames_in(folder, regex):
    """Map frame number -> file for files in ``folder`` matching ``regex``."""
    out = {}
    if folder.is_dir():
        for p in folder.iterdir():
            m = re.fullmatch(regex, p.name)
            if m:
                out[int(m.group(1))] = p
    return out


def _ctc_id(i):
    s = str(i)
    m = re.fullmatch(r"(\d+)/t?(\d+)", s)
    if not m:
        raise ValueError(f"CTC ids look like '01/t002' (sequence/frame); got {i!r}.")
    return m.group(1), int(m.group(2))


def load_ctc(root=None, split=None, sequences=("01", "02"), truth="gold", frames=None, *,
             ids=None, drop_partial=False):
    """Load a Cell Tracking Challenge 2-D data set (default DIC-C2DH-HeLa).

    Layout: ``NN/tTTT.tif`` images, ``NN_GT/SEG/man_segTTT.tif`` gold-truth instance
    ids (only some frames) and ``NN_ST/SEG/man_segTTT.tif`` silver truth (every frame).

    Parameters
    ----------
    root : str or pathlib.Path, optional
        The data set folder (default ``default_data_root() / 'ctc_dic_c2dh_hela'``).
    split : {None, 'train', 'test'}, default=None
        The fixed split of ``splits.json`` (train = the 9 gold frames of sequence 01,
        test = those of sequence 02); overrides ``sequences`` and ``frames``.
    sequences : sequence of str, default=('01', '02')
        Sequences to load when ``split`` and ``ids`` are None.
    truth : {'gold', 'silver'}, default='gold'
        Which annotation to load: ``NN_GT/SEG`` or ``NN_ST/SEG``.
    frames : sequence of int or str, optional
        Frame numbers (``2`` or ``'t002'``) to load in each sequence; default every
        frame that has the chosen truth.
    ids : sequence of str, optional
        Explicit ``'NN/tTTT'`` ids (with ``split``: must belong to it).
    drop_partial : bool, default=False
        Leave out frames flagged as partially annotated.

    Returns
    -------
    Dataset
        ``images`` (H, W) as stored (uint8 for HeLa), ``labels`` int32, ``names``
        like ``'01/t002'`` and ``partial`` (list of bool).

    Notes
    -----
    Partial annotations: some gold frames annotate only a few cells; notably
    ``01_GT/SEG/man_seg067.tif`` of DIC-C2DH-HeLa has 3 of the 17 cells of its silver
    truth (8.6 % foreground vs 62 %). A gold frame is flagged in ``Dataset.partial``
    (and a warning is logged) when it has fewer than ``CTC_PARTIAL_RATIO`` (0.75)
    times the instances of the silver truth of the same frame; frames without a
    silver truth are not checked. All other HeLa gold frames have exactly as many
    cells as their silver truth. The flagged frame belongs to the paper's 9/9
    training split; ``drop_partial=True`` leaves it out.
    """
    if truth not in ("gold", "silver"):
        raise ValueError(f"truth must be 'gold' or 'silver'; got {truth!r}.")
    root = _dataset_root(root, "ctc_dic_c2dh_hela")
    suffix = "_GT" if truth == "gold" else "_ST"
    if split is not None or ids is not None:
        chosen = _select_ids([], split, ids, "ctc_dic_c2dh_hela", root, str)
        pairs = [_ctc_id(i) for i in chosen]
    else:
        if isinstance(sequences, str):
            sequences = [sequences]
        wanted = None
        if frames is not None:
            frames = [frames] if isinstance(frames, (str, int)) else frames
            wanted = sorted({int(str(f).lstrip("t")) for f in frames})
        pairs = []
        for seq in sequences:
            seg_dir = root / f"{seq}{suffix}" / "SEG"
            if not seg_dir.is_dir():
                raise FileNotFoundError(f"CTC {truth} truth folder not found: {seg_dir.resolve()}")
            have = _frames_in(seg_dir, r"man_seg(\d+)\.tif")
            pairs += [(seq, t) for t in (sorted(have) if wanted is None else wanted)]
    images, labels, names, partial = [], [], [], []
    cache = {}
    for seq, t in pairs:
        if seq not in cache:
            img_dir = root / seq
            if not img_dir.is_dir():
                raise FileNotFoundError(f"CTC image folder not found: {img_dir.resolve()}")
            cache[seq] = (
                _frames_in(img_dir, r"t(\d+)\.tif"),
                _frames_in(root / f"{seq}{suffix}" / "SEG", r"man_seg(\d+)\.tif"),
                _frames_in(root / f"{seq}_ST" / "SEG", r"man_seg(\d+)\.tif"),
            )
        img_files, seg_files, silver_files = cache[seq]
        width = len(next(iter(img_files.values())).stem) - 1 if img_files else 3
        if t not in img_files:
            raise FileNotFoundError(f"CTC image not found: {(root / seq / f't{t:0{width}d}.tif').resolve()}")
        if t not in seg_files:
            missing = root / f"{seq}{suffix}" / "SEG" / f"man_seg{t:0{width}d}.tif"
            raise FileNotFoundError(f"CTC {truth} truth not found: {missing.resolve()}")
        img = read_image(img_files[t])
        lab = _int32_ids(read_label_map(seg_files[t]), seg_files[t])
        _check_same_shape(img, lab, img_files[t], seg_files[t])
        is_partial = False
        if truth == "gold" and t in silver_files:
            n_gold = np.unique(lab[lab > 0]).size
            n_silver = np.unique(read_label_map(silver_files[t])).size - 1
            is_partial = n_gold < CTC_PARTIAL_RATIO * n_silver
            if is_partial:
                logger.warning(
                    "CTC gold truth %s is partial: %d annotated cells vs %d in the silver truth%s",
                    seg_files[t].resolve(), n_gold, n_silver, "; dropped" if drop_partial else "",
                )
        if is_partial and drop_partial:
            continue
        images.append(img)
        labels.append(lab)
        names.append(f"{seq}/{img_files[t].stem}")
        partial.append(bool(is_partial))
    return Dataset(images=images, labels=labels, names=names, partial=partial)
