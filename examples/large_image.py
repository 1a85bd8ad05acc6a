"""Large images: tiled prediction (``tiling=Tiling(size=...)``) equals untiled prediction.

What it shows
-------------
* A small ``HarmonicSegmenter`` fitted on 128x128 tiles of the embedded
  nuclei sample.
* A large image: the 512x512 sample repeated 2 x 2 into a 1024x1024 mosaic
  (``--repeat``), with its mosaic ground truth.
* ``predict`` on it untiled (``Tiling(size=None)``: one forward pass over the
  whole image) and tiled (``Tiling(size=512)``: overlapping 512x512 tiles, so
  memory is bounded by the tile, not the image). With the default
  ``Tiling(overlap=None)`` the overlap covers the network's receptive field and
  every tile gets its global origin (the guide functions are functions of the
  absolute position), so the stitched embedding equals the untiled one up to
  floating-point noise and the label maps are identical. Percentile
  normalisation always uses the whole image, never a tile.
* The cost of a too-small overlap (``Tiling(overlap=16)``): visible differences
  near the tile seams.
* The tiled label map written with ``harmonic_seg.io.write_label_map`` (a
  uint16 TIFF that Fiji, napari, ... open), and an overlay picture
  (``overlay_instances``, needs matplotlib).

Budget: under a minute on a 2-core CPU; the network is trained for a few
seconds only, so the segmentation itself is poor (see ``quickstart.py``). The
point is that tiling does not change it.

Outputs (in ``--out``; existing files are never overwritten, a free name
``-1``, ``-2``, ... is chosen): ``large_image_labels.tif``,
``large_image.json`` (differences, timings) and ``large_image_overlay.png``.

Usage::

    python examples/large_image.py               # 1024x1024, under a minute on a 2-core CPU
    python examples/large_image.py --repeat 4    # 2048x2048
    python examples/large_image.py --quick       # seconds: a smoke test (512x512)
"""

from __future__ import annotations

import sys
import time

from harmonic_seg.demo import free_path

from _common import (
    QUICK_HELP, add_device_option, has_matplotlib, make_parser, nuclei_split, output_folder, quick_budget, save_figure,
    write_json,
)


def parse_args(argv=None):
    parser = make_parser(__doc__, quick_help=QUICK_HELP + ", a 512x512 image in tiles of 256")
    parser.add_argument("--repeat", type=int, default=None,
                        help="the large image is the 512x512 sample repeated R x R times (default 2; --quick: 1)")
    add_device_option(parser)
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error(f"--repeat must be at least 1; got {args.repeat}.")
    return args


def mosaic(image, labels, repeat):
    """``image`` repeated ``repeat x repeat`` times; the label ids of every copy are offset to stay unique."""
    import numpy as np

    n = int(labels.max())
    rows_img, rows_lab = [], []
    for i in range(repeat):
        rows_img.append(np.concatenate([image] * repeat, axis=1))
        parts = [np.where(labels > 0, labels + (i * repeat + j) * n, 0) for j in range(repeat)]
        rows_lab.append(np.concatenate(parts, axis=1))
    return np.concatenate(rows_img, axis=0), np.concatenate(rows_lab, axis=0).astype(np.int32)


def main(argv=None):
    args = parse_args(argv)
    out = output_folder(args.out)

    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from harmonic_seg import GuideFunctionFitter, HarmonicSegmenter, Network, Tiling
    from harmonic_seg.demo import evaluate
    from harmonic_seg.io import load_nuclei_sample, write_label_map
    from harmonic_seg.nn.inference import tile_starts

    if args.quick:
        budget = quick_budget()  # a tiny network, one torch thread
        guides, repeat, tile_size = GuideFunctionFitter(max_iter=30), 1, 256
    else:
        budget = dict(network=Network(depth=3, base_width=8), epochs=10, steps_per_epoch=10, crop_size=64, batch_size=8)
        guides, repeat, tile_size = None, 2, 512
    if args.repeat is not None:
        repeat = args.repeat

    # --- a small model ---------------------------------------------------------
    split = nuclei_split()  # the 12 training tiles of 128x128
    seg = HarmonicSegmenter(
        guides=guides,
        learning_rate=5e-3,
        validation_fraction=0,
        amp=False,  # full precision on CUDA too, for an exact comparison
        device=args.device,
        random_state=0,
        **budget,
    )
    t0 = time.perf_counter()
    seg.fit(split.X_train, split.y_train)
    print(f"fitted a depth-{seg.module_.depth} network on {len(split.train)} tiles of 128x128 in "
          f"{time.perf_counter() - t0:.1f} s (receptive field {seg.module_.receptive_field} px)")

    # --- a large image -----------------------------------------------------------
    whole = load_nuclei_sample(tile=None)
    image, truth = mosaic(whole.images[0], whole.labels[0], repeat)
    h, w = image.shape
    print(f"large image: {h}x{w} ({repeat}x{repeat} copies of the 512x512 sample, "
          f"{len(np.unique(truth)) - 1} nuclei)")

    def run(tile_size, tile_overlap=None, labels=True):
        seg.set_params(tiling=Tiling(size=tile_size, overlap=tile_overlap))
        t0 = time.perf_counter()
        (emb, prob), = seg.predict_embeddings([image])
        emb_s = time.perf_counter() - t0
        if not labels:
            return emb, prob, None, None, emb_s, None
        t0 = time.perf_counter()
        (lab,), (scores,) = seg.predict([image], return_scores=True)
        return emb, prob, lab, scores, emb_s, time.perf_counter() - t0

    emb_u, prob_u, lab_u, scores_u, emb_s_u, pred_s_u = run(None)
    emb_t, prob_t, lab_t, scores_t, emb_s_t, pred_s_t = run(tile_size)
    overlap = 2 * (seg.module_.receptive_field // 2)  # what Tiling(overlap=None) uses
    mult = seg.module_.size_multiple
    n_tiles = len(tile_starts(h, tile_size, overlap, mult)[0]) * len(tile_starts(w, tile_size, overlap, mult)[0])

    fg = (lab_u > 0) | (lab_t > 0)
    identical = bool(np.array_equal(lab_u, lab_t))
    result = {
        "image_shape": [h, w],
        "tile_size": tile_size,
        "tile_overlap": overlap,
        "n_tiles": n_tiles,
        "max_abs_embedding_difference": float(np.abs(emb_t - emb_u).max()),
        "max_abs_foreground_probability_difference": float(np.abs(prob_t - prob_u).max()),
        "labels_identical": identical,
        "differing_label_pixels": int((lab_u != lab_t).sum()),
        "adjusted_rand_index_foreground": 1.0 if identical or not fg.any()
        else float(adjusted_rand_score(lab_u[fg], lab_t[fg])),
        "instances_untiled": int(len(np.unique(lab_u)) - 1),
        "instances_tiled": int(len(np.unique(lab_t)) - 1),
        "seconds": {"embed_untiled": emb_s_u, "predict_untiled": pred_s_u,
                    "embed_tiled": emb_s_t, "predict_tiled": pred_s_t},
    }
    print(f"\ntiled ({n_tiles} tiles of {tile_size}, overlap {overlap}) vs untiled prediction:")
    print(f"  max |embedding difference|:              {result['max_abs_embedding_difference']:.2e}")
    print(f"  max |foreground probability difference|: {result['max_abs_foreground_probability_difference']:.2e}")
    print(f"  label maps identical: {identical} ({result['instances_tiled']} instance(s); "
          f"{result['differing_label_pixels']} differing pixels)")
    print(f"  time, embeddings: untiled {emb_s_u:.1f} s, tiled {emb_s_t:.1f} s; "
          f"predict: untiled {pred_s_u:.1f} s, tiled {pred_s_t:.1f} s")

    # A too-small overlap: tiles see too little context near their borders.
    small = 16
    emb_s, prob_s, *_ = run(tile_size, small, labels=False)
    result["small_overlap"] = {
        "tile_overlap": small,
        "max_abs_embedding_difference": float(np.abs(emb_s - emb_u).max()),
        "pixels_differing_over_1e-3": int((np.abs(emb_s - emb_u).max(axis=0) > 1e-3).sum()),
    }
    print(f"  with Tiling(overlap={small}) (< receptive field): max |embedding difference| "
          f"{result['small_overlap']['max_abs_embedding_difference']:.2e} "
          f"({result['small_overlap']['pixels_differing_over_1e-3']} pixels differ by more than 1e-3)")

    metrics = evaluate([truth], [lab_t], [scores_t])
    result["metrics_tiled"] = metrics
    print(f"\nagainst the mosaic ground truth (short training, so low): SBD {metrics['SBD']:.3f}, "
          f"AP@0.5 {metrics['AP@0.5 (TP/(TP+FP+FN))']:.3f}")

    path = write_label_map(free_path(out / "large_image_labels.tif"), lab_t)
    print(f"\nwrote {path}")
    result["label_map"] = path.name
    path = write_json(out, "large_image.json", result, default=float)
    print(f"wrote {path}")

    if not has_matplotlib():
        return 0
    from harmonic_seg.plotting import overlay_instances

    ax = overlay_instances(image, lab_t, alpha=0.4,
                           title=f"tiled prediction, {h}x{w}, {result['instances_tiled']} instance(s)")
    ax.figure.set_size_inches(8, 8.4)
    path = save_figure(ax.figure, out, "large_image_overlay.png", dpi=max(100, w // 8))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
