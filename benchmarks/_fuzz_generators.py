"""Generators of the cases of benchmarks/fuzz.py: pools of valid and malformed values, one generator per family.

A generator draws from a ``numpy.random.Generator`` the code of one case (a few lines of Python using
the names of :func:`_fuzz_cases.namespace`) and the files of the case's folder it may change.
:func:`generate` picks the family of case ``index`` of ``seed`` and runs its generator.
"""

from __future__ import annotations

import numpy as np

from _fuzz_cases import DAMAGE_KINDS

# ---------------------------------------------------------------------------------------------- pools
LABEL_MAPS = [
    # valid
    "lab()", "lab(k=1)", "lab(k=0)", "lab(17, 9, k=2, seed=1)", "lab(1, 1, k=1)", "lab(2, 60, k=6)",
    "np.ones((SIDE, SIDE), np.uint8)", "lab().astype(np.uint16)", "lab().astype(np.int64)", "lab()[::-1, ::2]",
    "np.asfortranarray(lab())", "lab() > 0", "lab().astype(np.float64)",
    # malformed
    "lab() + 0.5", "-lab()", "lab().astype(np.int8) - 3", "lab().astype(np.uint64)", "lab().astype(np.float16)",
    "lab().astype(complex)", "lab().astype(object)", "lab().astype(str)", "np.full((SIDE, SIDE), np.nan)",
    "poke(lab(), np.nan)", "poke(lab(), np.inf)", "poke(lab(), -np.inf)", "lab() * 1e30", "lab() * 100003",
    "lab().astype(np.int64) * 2**40", "lab().tolist()", "lab()[None]", "np.stack([lab() == 1, lab() == 2])",
    "lab()[0]", "np.zeros((0, 0), np.int32)", "np.zeros((0, SIDE), np.int32)", "np.zeros((SIDE, SIDE, 3), np.int32)",
    "np.zeros((2, 2, 2, 2), np.int32)", "np.int32(3)", "None", "'labels.tif'", "[]", "[[1, 2], [3]]",
    "torch.from_numpy(lab())", "np.ma.masked_array(lab())", "lab(SIDE, SIDE + 1)", "lab(3, 200, k=3)",
    "{'a': 1}", "lab().astype(np.float64) * np.inf",
]
IMAGES = [
    "img()", "img(seed=1)", "img(c=1)", "img(c=3)", "(img() * 255).astype(np.uint8)", "img().astype(np.float64)",
    "img(17, 9)", "img(1, 1)", "img(2, 70)", "np.zeros((SIDE, SIDE))", "img() > 0.5", "lab()",
    "img(c=5)", "img(c=3)[..., :2]", "img()[None]", "img()[None, None]", "img()[0]", "np.zeros((0, 0))",
    "np.zeros((SIDE, 0))", "np.full((SIDE, SIDE), np.nan)", "poke(img(), np.nan)", "poke(img(), np.inf)",
    "img() * 1e300", "img() * 1e-300", "img().astype(complex)", "img().astype(object)", "img().astype(str)",
    "img().astype(np.float16)", "img().tolist()", "None", "'image.png'", "5", "torch.rand(SIDE, SIDE)",
    "np.zeros((SIDE, SIDE, 0))", "img(c=2).transpose(2, 0, 1)", "img().astype(np.int64) * 2**60",
]
SCALARS = [
    "0", "1", "2", "-1", "0.5", "-0.5", "1.5", "3", "True", "False", "None", "np.nan", "np.inf", "-np.inf",
    "1e300", "1e-300", "'3'", "'abc'", "[1]", "(1, 2)", "2**63", "np.int64(2)", "np.float32(0.5)", "1j", "{}",
    "np.array([0.5])", "np.bool_(True)", "-0.0", "0.999999", "1.0000001",
]
SIZES = ["-1", "0", "1", "2", "3", "5", "True", "False", "None", "1.5", "np.nan", "np.inf", "1e300", "'2'",
         "[2]", "np.int64(3)", "2.0", "-2**63"]
FRACTIONS = ["0", "1", "0.5", "0.3", "-0.1", "1.1", "np.nan", "np.inf", "None", "True", "'0.5'", "[0.5]", "1e-300"]
STRINGS = ["''", "'euclidean'", "'l1'", "'cosine'", "'L1'", "None", "0", "['l1']", "'auto'", "'cpu'"]
BOOLS = ["True", "False", "0", "1", "None", "'yes'", "np.bool_(True)", "2", "[]"]
DEVICES = ["'cpu'", "'auto'", "'cuda'", "'cuda:7'", "'mps'", "''", "'CPU'", "0", "None", "'meta'", "'cpu:1'"]
PATHS = ["'missing.tif'", "'keep_dir'", "'keep.txt'", "'images'", "''", "None", "5", "Path('images/a.png')",
         "'images/a.png'", "'labels/a.tif'", "'twins'", "'images/*.png'", "'no/such/dir/x.tif'", "b'keep.txt'"]


def _pick(r, pool, p_valid=0.0, valid=None):
    """A value of ``pool`` (or, with probability ``p_valid``, of ``valid``)."""
    if valid is not None and r.random() < p_valid:
        return valid[r.integers(len(valid))]
    return pool[r.integers(len(pool))]


def _kwargs(r, spec, n_max=2):
    """Up to ``n_max`` keyword arguments drawn from ``{name: pool}``."""
    names = list(spec)
    chosen = r.choice(len(names), size=min(len(names), int(r.integers(0, n_max + 1))), replace=False)
    return ", ".join(f"{names[i]}={_pick(r, spec[names[i]])}" for i in sorted(chosen))


def _join(*parts):
    return ", ".join(p for p in parts if p)


def _label_list(r):
    form = r.integers(8)
    a, b = _pick(r, LABEL_MAPS, 0.5, LABEL_MAPS[:6]), _pick(r, LABEL_MAPS, 0.6, LABEL_MAPS[:6])
    return [f"[{a}]", f"[{a}, {b}]", "[]", a, f"({a}, {b})", f"np.stack([{a}, {a}])", f"iter([{a}])",
            f"[{a}] * 3"][form]


def _image_list(r, n=None):
    a, b = _pick(r, IMAGES, 0.5, IMAGES[:2]), _pick(r, IMAGES, 0.7, IMAGES[:2])
    form = r.integers(8)
    return [f"[{a}]", f"[{a}, {b}]", "[]", a, f"({a}, {b})", f"np.stack([{a}, {a}])", f"iter([{a}])",
            f"[{a}] * 2"][form]


# ----------------------------------------------------------------------------------------- generators
def gen_metrics(r):
    pair = ["M.symmetric_best_dice", "M.best_dice", "M.difference_in_count", "M.abs_difference_in_count",
            "M.iou_matrix", "M.matching"]
    lists = ["M.mean_symmetric_best_dice", "M.mean_abs_difference_in_count", "M.matching_dataset",
             "M.coco_average_precision", "M.sbd_score", "M.ap_score"]
    if r.random() < 0.5:
        fn = _pick(r, pair)
        a, b = _pick(r, LABEL_MAPS, 0.4, LABEL_MAPS[:4]), _pick(r, LABEL_MAPS, 0.4, LABEL_MAPS[:4])
        extra = _kwargs(r, {"thresh": SCALARS + FRACTIONS}, 1) if fn == "M.matching" else ""
        return f"{fn}({_join(a, b, extra)})", []
    fn = _pick(r, lists)
    spec = {"M.matching_dataset": {"thresh": SCALARS + FRACTIONS, "by_image": BOOLS},
            "M.coco_average_precision": {"scores": ["None", "[None]", "[[0.5]]", "[np.array([np.nan])]", "[[]]",
                                                    "[np.ones(100)]", "['a']", "5", "[[1, 2, 3, 4]]"],
                                         "max_dets": SIZES + ["10**6"]},
            "M.ap_score": {"thresh": SCALARS + FRACTIONS}}.get(fn, {})
    return f"{fn}({_join(_label_list(r), _label_list(r), _kwargs(r, spec))})", []


def gen_embeddings(r):
    labels = _pick(r, LABEL_MAPS, 0.4, LABEL_MAPS[:4])
    g = _pick(r, ["guides()", "guides(1)", "guides(12)", "None", "'guides'", "G.coordinate_guides((8, 8))",
                  "np.zeros((4, 2))"], 0.7, ["guides()"])
    origin = _pick(r, ["(0, 0)", "(3.5, -2)", "(np.nan, 0)", "(np.inf, 0)", "(1e300, 1e300)", "(0,)", "None",
                       "'00'", "(0, 0, 0)", "np.array([5, 5])", "(True, False)"], 0.5, ["(0, 0)"])
    choice = r.integers(8)
    if choice == 0:
        return f"E.instance_embeddings({labels}, {g}, origin={origin})", []
    if choice == 1:
        dtype = _pick(r, ["np.float32", "np.float64", "np.int32", "'f4'", "None", "bool", "'bogus'", "complex"])
        return f"E.embedding_map({labels}, {g}, {origin}, dtype={dtype}, return_embeddings={_pick(r, BOOLS)})", []
    if choice == 2:
        return f"E.embedding_table({labels}, {g}, {origin})", []
    if choice == 3:
        table = _pick(r, ["E.embedding_table(lab(), guides())", "np.zeros((3, 4))", "np.zeros(4)", "None",
                          "np.full((10, 4), np.nan)", "[[1, 2]]", "np.zeros((0, 4))"])
        return f"E.lookup_embeddings({table}, {labels})", []
    if choice == 4:
        freq = _pick(r, ["[[0.1, 0.2]]", "np.zeros((3, 2))", "[[np.nan, 0]]", "[[1e300, 1e300]]", "[]",
                         "[[0.1]]", "'x'", "None", "np.zeros((2, 2, 2))"])
        ph = _pick(r, ["[0.0]", "np.zeros(3)", "[np.inf]", "[]", "None", "[[0]]", "'p'"])
        kind = _pick(r, ["'sin'", "'linear'", "'cos'", "None", "1"])
        return f"G.GuideFunctions({freq}, {ph}, {kind})", []
    if choice == 5:
        shape = _pick(r, ["(32, 32)", "(0, 5)", "(-1, 4)", "(1e300, 2)", "(8,)", "None", "(np.nan, 3)"])
        kind = _pick(r, ["'random'", "'low'", "'high'", "'mid'", "None"])
        seed = _pick(r, ["0", "None", "-1", "2**40", "'x'", "1.5"])
        return f"G.random_guides({_pick(r, SIZES)}, {shape}, kind={kind}, random_state={seed})", []
    if choice == 6:
        shape = _pick(r, ["(8, 8)", "(0, 0)", "(1, 1)", "(-3, 4)", "(8,)", "(2.5, 3)", "None", "(1e300, 4)",
                          "(np.int64(4), 4)", "'88'"])
        stride = _pick(r, ["1", "2", "0", "-1", "1.5", "np.nan", "None", "True"])
        return f"G.guide_maps({g}, {shape}, origin={origin}, stride={stride})", []
    d = _pick(r, ["{}", "{'frequencies': [[0.1, 0.2]]}", "{'frequencies': [[0.1, 0.2]], 'phases': [0]}",
                  "{'frequencies': 'x', 'phases': 1}", "None", "[]", "{'frequencies': [[1, 2]], 'phases': [0], "
                  "'kind': 'nope'}"])
    return f"G.GuideFunctions.from_dict({d})", []


FITTER_PARAMS = {
    "n_guides": SIZES, "margin": SCALARS, "strategy": ["'optimize'", "'random'", "'low'", "'high'", "'coord'",
                                                       "'best'", "None", "1"],
    "init_range": ["'auto'", "'auto-length'", "(0, 10)", "(10, 0)", "(np.nan, 1)", "(0,)", "'x'", "5", "None",
                   "(0, np.inf)", "[-5, 5]", "(0, 1e300)"],
    "max_frequency": ["None", "'init'", "5.0", "-1", "0", "np.nan", "'x'", "np.inf", "True"],
    "learning_rate": SCALARS, "max_iter": SIZES, "batch_size": SIZES, "max_pixels_per_instance": SIZES,
    "random_state": ["0", "None", "-1", "2**40", "'x'", "1.5", "np.random.RandomState(0)"],
    "verbose": ["0", "1", "-1", "True", "'x'", "None"],
}


def gen_fitter(r):
    choice = r.integers(4)
    if choice <= 1:
        params = _kwargs(r, FITTER_PARAMS, 2)
        if "max_iter" not in params:
            params = _join(params, "max_iter=5")
        labels = _label_list(r) if r.random() < 0.5 else "labs(2)"
        return f"GuideFunctionFitter({params}).fit({labels})", []
    method = _pick(r, ["transform", "score", "fit_transform"])
    return f"fitter().{method}({_label_list(r)})", []


#: Values of the parameters of the nested estimators of HarmonicSegmenter: class -> {parameter: pool}.
NESTED_PARAMS = {
    "Loss": {"name": ["'harmonic'", "'discriminative'", "'l2'", "None"], "fg_weight": SCALARS,
             "boundary_weight": SCALARS},
    "Augmentation": {"scale_range": ["(0.75, 1.33)", "(1, 1)", "(2, 1)", "(0, 1)", "(-1, 1)", "(np.nan, 1)", "(1,)",
                                     "None", "'x'", "(0.5, np.inf)", "[0.9, 1.1]"], "flips": BOOLS, "rotate": BOOLS},
    "EmbeddingClusterer": {"bandwidth": SCALARS, "min_size": SIZES, "metric": STRINGS, "fg_threshold": FRACTIONS,
                           "core_threshold": FRACTIONS, "core_fraction": FRACTIONS, "split_components": BOOLS,
                           "merge_small": BOOLS},
    "Network": {"variant": ["'sin'", "'coord'", "'none'", "'cos'", "None"],
                "depth": ["-1", "0", "1", "9", "1.5", "None", "True"], "base_width": ["0", "1", "-2", "2.5", "None"],
                "norm": ["'batch'", "'group'", "'instance'", "None", "'layer'"]},
    "Tiling": {"size": ["None", "16", "15", "0", "-16", "17", "1.5", "1e300", "'64'"],
               "overlap": ["None", "0", "-1", "8", "100", "1.5", "np.nan"]},
}


def _nested(cls, **base):
    """Pool of ``cls(name=value)`` expressions, one parameter each (beside ``base``'s)."""
    return [f"{cls}({', '.join(f'{n}={x}' for n, x in {**base, k: v}.items())})"
            for k, pool in NESTED_PARAMS[cls].items() for v in pool]


SEG_PARAMS = {
    "network": ["Network(depth=1, base_width=2)", "{'depth': 1}", *_nested("Network", depth="1", base_width="2")],
    "epochs": ["-1", "0", "1", "2", "1.5", "np.nan", "None", "True", "'1'"], "steps_per_epoch": SIZES,
    "batch_size": SIZES, "crop_size": ["0", "7", "8", "16", "33", "1000", "-16", "16.0", "None"],
    "learning_rate": SCALARS, "lr_schedule": ["'cosine'", "'constant'", "'plateau'", "'step'", "None"],
    "validation_fraction": FRACTIONS,
    "loss": ["'harmonic'", "'discriminative'", "'l2'", "None", *_nested("Loss")],
    "augmentation": ["None", "{'flips': False}", *_nested("Augmentation")],
    "scale": ["1.0", "0.5", "2", "0", "-1", "1e-9", "1e300", "np.nan", "np.inf", "None", "'1'", "True"],
    "percentiles": ["(1, 99.8)", "(0, 100)", "(50, 50)", "(99, 1)", "(-1, 101)", "(np.nan, 99)", "None", "(1,)",
                    "'x'"],
    "clustering": ["None", *_nested("EmbeddingClusterer")], "tune_postprocessing": BOOLS,
    "tiling": ["None", "1024", *_nested("Tiling")], "device": DEVICES,
    "amp": BOOLS, "num_threads": SIZES, "callbacks": ["None", "[]", "[1]", "'cb'", "[None]"],
    "random_state": ["0", "None", "-1", "2**40", "'x'", "np.random.RandomState(1)"], "verbose": ["0", "1", "-1", "'x'"],
    "guides": ["None", "GuideFunctionFitter(max_iter=3)", "'optimize'", "fitter()", "1"],
}


def gen_fit(r):
    params = _kwargs(r, SEG_PARAMS, 2)
    if r.random() < 0.5:
        x, y = "imgs(2)", "labs(2)"
    elif r.random() < 0.5:
        x, y = _image_list(r), "labs(2)"
    else:
        x, y = "imgs(2)", _label_list(r)
    extra = ""
    if r.random() < 0.2:
        extra = ", ignore=" + _pick(r, ["None", "[np.zeros((SIDE, SIDE), bool)] * 2", "[np.zeros((3, 3), bool)] * 2",
                                        "[]", "[None, None]", "[lab() > 0]", "[poke(lab(), np.nan)] * 2"])
    return f"tiny({params}).fit({x}, {y}{extra})", []


PREDICT_SET = {k: SEG_PARAMS[k] for k in ("num_threads", "amp", "percentiles", "scale")}
PREDICT_SET.update({f"tiling__{k}": v for k, v in NESTED_PARAMS["Tiling"].items()})
PREDICT_SET.update({f"clustering__{k}": v for k, v in NESTED_PARAMS["EmbeddingClusterer"].items()})


def gen_predict(r):
    lines = ["seg = model()"]
    params = _kwargs(r, PREDICT_SET, 2)
    if params:
        lines.append(f"seg.set_params({params})")
    x = _image_list(r) if r.random() < 0.7 else "imgs(2)"
    method = r.integers(4)
    if method == 0:
        fg = _pick(r, ["None", "[lab() > 0]", "[np.ones((3, 3), bool)]", "[poke(lab() > 0, np.nan)]", "[]",
                       "[None]", "[lab()]", "[lab() > 0] * 5", "lab() > 0", "[(lab() > 0).astype(float) * 0.5]"], 0.5,
                   ["None"])
        lines.append(f"seg.predict({x}, foreground={fg}, return_scores={_pick(r, BOOLS)})")
    elif method == 1:
        lines.append(f"seg.predict_embeddings({x})")
    elif method == 2:
        y = _label_list(r) if r.random() < 0.6 else "labs(2)"
        lines.append(f"seg.score({x}, {y})")
    else:
        scoring = _pick(r, ["'sbd'", "'ap'", "'f1'", "None", "1"])
        lines.append(f"seg.optimize_postprocessing({x}, {_label_list(r)}, scoring={scoring})")
    return "\n".join(lines), []


SAVE_TARGETS = ["'new_model'", "'keep.txt'", "'keep_dir'", "'foreign'", "'model_copy'", "'images'", "''", "'.'",
                "'keep_dir/sub/new'", "None", "5", "'existing_label.tif'", "Path('new2')", "'keep.txt/sub'"]


def gen_persistence(r):
    choice = r.integers(5)
    if choice == 0:
        target = _pick(r, SAVE_TARGETS)
        overwrite = _pick(r, BOOLS)
        released = ["model_copy/config.json", "model_copy/weights.npz"] if target == "'model_copy'" and overwrite in (
            "True", "1", "np.bool_(True)", "2", "'yes'") else []
        return f"model().save({target}, overwrite={overwrite})", released
    if choice == 1:
        return f"HarmonicSegmenter.load({_pick(r, SAVE_TARGETS + ['MODEL'])}, device={_pick(r, DEVICES)})", []
    if choice == 2:
        how = _pick(r, DAMAGE_KINDS)
        return (f"damage('model_copy', {how!r})\nseg = HarmonicSegmenter.load('model_copy')\nseg.predict([img()])",
                ["model_copy/config.json", "model_copy/weights.npz"])
    if choice == 3:
        return "HarmonicSegmenter().save('new_model')", []
    return f"pickle.loads(pickle.dumps(model())).predict({_image_list(r)})", []


def gen_io(r):
    choice = r.integers(7)
    junk = ["write_bytes('x.png', b'')", "write_bytes('x.png', b'not an image')", "write_bytes('x.tif', b'II*\\x00')",
            "write_bytes('x.tif', bytes(range(256)) * 4)",
            "write_bytes('x.png', b'\\x89PNG\\r\\n\\x1a\\n' + b'0' * 40)",
            "write_bytes('x.jpg', b'\\xff\\xd8\\xff')", "write_bytes('x.txt', 'hello')", "'images/a.png'",
            "'labels/a.tif'", "'existing_label.tif'"]
    path = _pick(r, junk + PATHS)
    if choice == 0:
        return f"hio.read_image({path}, drop_alpha={_pick(r, BOOLS)})", []
    if choice == 1:
        return f"hio.read_label_map({path})", []
    if choice == 2:
        target = _pick(r, ["'out.tif'", "'out.png'", "'existing_label.tif'", "'keep.txt'", "'keep_dir'",
                           "'no/such/out.tif'", "'out.jpg'", "'out'", "None", "''", "'images/a.png'", "5"])
        overwrite = _pick(r, BOOLS)
        released = [target.strip("'")] if overwrite in ("True", "1", "np.bool_(True)", "2", "'yes'") and target in (
            "'existing_label.tif'", "'images/a.png'", "'keep.txt'") else []
        labels = _pick(r, LABEL_MAPS, 0.3, LABEL_MAPS[:3])
        return f"hio.write_label_map({target}, {labels}, overwrite={overwrite})", released
    if choice == 3:
        a = _pick(r, ["'images'", "'labels'", "'twins'", "'keep_dir'", "'missing'", "'images/*.png'", "''", "None",
                      "'images/a.png'", "'pred'"])
        b = _pick(r, ["'labels'", "'images'", "'pred'", "'keep_dir'", "'missing'", "'labels/*.tif'", "None"])
        kw = _kwargs(r, {"pattern": ["None", "'*.png'", "'*.xyz'", "'['", "5"],
                         "label_pattern": ["None", "'*.tif'", "'**/*'", "''"]}, 1)
        return f"hio.load_folder({_join(a, b, kw)})", []
    if choice == 4:
        a = _pick(r, ["'pred'", "'labels'", "'images'", "'missing'", "'keep_dir'", "None", "'pred/*.tif'"])
        b = _pick(r, ["'labels'", "'pred'", "'images'", "'missing'", "None"])
        return f"hio.load_label_pairs({a}, {b})", []
    if choice == 5:
        masks = _pick(r, ["np.stack([lab() == 1, lab() == 2])", "np.zeros((0, 8, 8), bool)", "lab()",
                          "np.stack([lab() == 1, lab() > 0])", "[lab() == 1, lab(9, 9) == 1]", "None", "[]",
                          "np.stack([poke(lab() == 1, np.nan)])", "np.ones((300, 4, 4), bool)"])
        policy = _pick(r, ["'ignore'", "'first'", "'last'", "'drop'", "None", "'bogus'", "1"])
        return f"hio.masks_to_label_map({masks}, policy={policy})", []
    norm = _pick(r, ["PercentileNormalizer", "ChannelSelector"])
    kw = (_kwargs(r, {"low": SCALARS, "high": SCALARS, "per_channel": BOOLS}, 2) if norm == "PercentileNormalizer"
          else _kwargs(r, {"channels": ["0", "1", "-1", "[0, 0]", "[]", "None", "'r'", "2.5", "[5]"]}, 1))
    return f"{norm}({kw}).fit_transform({_image_list(r)})", []


def gen_postprocess(r):
    labels = _pick(r, LABEL_MAPS, 0.4, LABEL_MAPS[:4])
    choice = r.integers(6)
    if choice == 0:
        return f"pp.remove_small_instances({labels}, {_pick(r, SIZES + ['10**12'])})", []
    if choice == 1:
        return f"pp.merge_small_instances({labels}, {_pick(r, SIZES)})", []
    if choice == 2:
        connectivity = _pick(r, ["1", "2", "0", "3", "-1", "1.5", "None", "True"])
        return f"pp.split_into_components({labels}, connectivity={connectivity})", []
    if choice == 3:
        return f"pp.relabel_sequential({labels}, return_ids={_pick(r, BOOLS)})", []
    emb = _pick(r, ["np.random.default_rng(0).random((3, SIDE, SIDE))", "np.zeros((3, 5, 5))", "np.zeros((SIDE, SIDE))",
                    "np.full((3, SIDE, SIDE), np.nan)", "None", "np.zeros((0, SIDE, SIDE))",
                    "np.random.default_rng(0).random((3, SIDE, SIDE)) * 1e300"], 0.5,
                ["np.random.default_rng(0).random((3, SIDE, SIDE))"])
    kw = _kwargs(r, {"centers": ["None", "np.zeros((4, 3))", "np.zeros((1, 3))", "np.zeros((4, 2))",
                                 "[[np.nan] * 3] * 4"],
                     "fg_prob": ["None", "np.ones((SIDE, SIDE))", "np.full((SIDE, SIDE), np.nan)", "np.ones((3, 3))",
                                 "-np.ones((SIDE, SIDE))"], "metric": STRINGS}, 2)
    return f"pp.instance_scores({_join(labels, emb, _pick(r, SCALARS, 0.5, ['0.5']), kw)})", []


def gen_nn(r):
    choice = r.integers(4)
    points = _pick(r, ["np.random.default_rng(0).random((50, 3))", "np.zeros((0, 3))", "np.zeros((5, 0))",
                       "np.random.default_rng(0).random((50, 3)) * 1e30", "np.full((5, 2), np.nan)",
                       "np.random.default_rng(0).random(50)", "[[1, 2], [3, 4]]", "None", "'pts'", "np.ones((40, 2))",
                       "np.random.default_rng(0).random((50, 3)).astype(np.float16)", "np.zeros((3, 2, 2))",
                       "torch.rand(30, 2)", "np.array([[1e38, -1e38], [0, 0]])",
                       "np.arange(20.).reshape(10, 2) * 1e20"],
                   0.4, ["np.random.default_rng(0).random((50, 3))"])
    ms_kw = {"kernel": ["'flat'", "'gaussian'", "'box'", "None"], "metric": STRINGS,
             "seeds": ["'bin'", "'bin_mean'", "None", "np.zeros((2, 3))", "np.zeros((2, 5))", "'grid'", "[]"],
             "bin_size": SCALARS, "min_bin_freq": SIZES, "cluster_all": BOOLS, "merge": BOOLS, "max_iter": SIZES,
             "tol": SCALARS, "max_points": SIZES, "batch_size": SIZES, "coarse_to_fine": BOOLS, "device": DEVICES,
             "random_state": ["0", "None", "-1", "'x'"]}
    if choice == 0:
        return f"C.mean_shift({_join(points, _pick(r, SCALARS, 0.5, ['0.5']), _kwargs(r, ms_kw, 2))})", []
    if choice == 1:
        return f"C.MeanShift({_kwargs(r, ms_kw, 2)}).fit({points}).predict({points})", []
    if choice == 2:
        emb = _pick(r, ["np.random.default_rng(0).random((3, SIDE, SIDE))", "np.zeros((3, 0, 4))",
                        "np.zeros((SIDE, SIDE))", "np.full((3, SIDE, SIDE), np.inf)", "torch.rand(2, 8, 8)",
                        "np.random.default_rng(0).random((3, SIDE, SIDE)) * 1e38", "None"], 0.5,
                    ["np.random.default_rng(0).random((3, SIDE, SIDE))"])
        fg = _pick(r, ["None", "lab() > 0", "lab()", "np.ones((3, 3), bool)", "poke(lab() > 0, np.nan)",
                       "np.zeros((SIDE, SIDE), bool)", "'all'"], 0.5, ["None", "lab() > 0"])
        kw = _kwargs(r, {"min_size": SIZES, "split_components": BOOLS, "merge_small": BOOLS,
                         "fg_prob": ["None", "np.ones((SIDE, SIDE))", "np.full((SIDE, SIDE), np.nan)", "np.ones(3)"],
                         "core_threshold": FRACTIONS, "core_fraction": FRACTIONS, "max_points": SIZES,
                         "seeds": ["'bin'", "'bin_mean'", "None", "'x'"], "metric": STRINGS, "device": DEVICES}, 2)
        return f"C.cluster_embeddings({_join(emb, fg, _pick(r, SCALARS, 0.5, ['0.5']), kw)})", []
    image = _pick(r, ["img()[None]", "img(c=2).transpose(2, 0, 1)", "img()", "np.zeros((1, 0, 5))",
                      "np.full((1, SIDE, SIDE), np.nan)", "img()[None] * 1e300", "img(70, 3)[None]", "None"], 0.5,
                  ["img()[None]"])
    kw = _kwargs(r, {"tile_size": ["None", "16", "8", "1", "0", "-1", "4.5", "np.nan", "'16'"],
                     "overlap": ["0", "8", "64", "-1", "15", "np.nan", "None"], "batch_size": SIZES,
                     "amp": BOOLS, "device": DEVICES}, 3)
    return f"nn.predict_embeddings({_join('model().module_', image, kw)})", []


def _cli_argv(r):
    """A command line (list of str) and the files it may change."""
    num = ["-1", "0", "1", "2", "nan", "inf", "1e300", "abc", "", "0.5", "-0", "3"]
    cmd = _pick(r, ["guides", "fit", "predict", "evaluate", "evaluate", "predict", "bogus", "demo"])
    released = []
    if cmd == "guides":
        argv = ["guides", _pick(r, ["labels", "labels/*.tif", "images", "missing", "keep_dir", "pred", "", "twins"])]
        argv += ["--n-guides", _pick(r, num[:4] + ["4"], 0.5, ["4"]), "--margin", _pick(r, num, 0.5, ["0.5"])]
        if r.random() < 0.5:
            out = _pick(r, ["report.json", "existing_report.json", "keep.txt", "keep_dir", "no/such/r.json", ""])
            argv += ["--out", out]
            if r.random() < 0.5:
                argv.append("--overwrite")  # asks to replace an existing file
                if out in ("existing_report.json", "keep.txt"):
                    released.append(out)
        if r.random() < 0.3:
            argv.append("--json")
    elif cmd == "fit":
        argv = ["fit", _pick(r, ["images", "images/*.png", "labels", "missing", "twins"], 0.6, ["images"]),
                _pick(r, ["labels", "images", "pred", "missing", "keep_dir"], 0.6, ["labels"])]
        out = _pick(r, ["new_model", "model_copy", "foreign", "keep_dir", "keep.txt", "images", ""])
        argv += ["--out", out, "--epochs", "1", "--depth", "1", "--width", "2", "--crop-size", "16", "--n-guides", "4",
                 "--device", "cpu"]
        for _ in range(int(r.integers(0, 3))):
            argv += [_pick(r, ["--epochs", "--depth", "--width", "--crop-size", "--scale", "--batch-size",
                               "--n-guides", "--margin", "--seed", "--device"]),
                     _pick(r, num + ["cuda", "cpu", "auto"])]
        if r.random() < 0.4:
            argv.append("--overwrite")
            if out == "model_copy":
                released += ["model_copy/config.json", "model_copy/weights.npz"]
    elif cmd == "predict":
        model = _pick(r, ["MODEL", "model_copy", "foreign", "missing", "keep_dir", "keep.txt", "images"], 0.6,
                      ["MODEL"])
        images = _pick(r, ["images", "images/*.png", "twins", "missing", "labels", "keep_dir", "", "images/a.png"], 0.4,
                       ["images", "twins"])
        out = _pick(r, ["out", "keep_dir", "keep.txt", "images", "foreign", "pred", "", "new/deep/out"])
        argv = ["predict", model, images, "--out", out]
        if r.random() < 0.4:
            argv += ["--format", _pick(r, ["tif", "png", "jpg", ""])]
        if r.random() < 0.4:
            argv += ["--tile-size", _pick(r, num + ["16", "17", "100000"])]
        if r.random() < 0.3:
            argv += ["--device", _pick(r, ["cpu", "cuda", "cuda:9", "mps", "", "auto"])]
        if r.random() < 0.3:
            argv.append("--overwrite")  # asks to replace existing outputs: pred/a_label.tif, pred/b_label.tif
            if out == "pred":
                released += ["pred/a_label.tif", "pred/b_label.tif"]
    elif cmd == "evaluate":
        argv = ["evaluate", _pick(r, ["pred", "labels", "images", "missing", "keep_dir", "twins", "", "pred/*.tif"]),
                _pick(r, ["labels", "pred", "images", "missing", "keep_dir", ""])]
        if r.random() < 0.3:
            argv.append("--json")
    elif cmd == "demo":  # only refused settings: a real demo trains for minutes
        argv = ["demo", "--epochs", _pick(r, ["-1", "0", "abc", "nan", ""]), "--no-picture"]
    else:
        argv = [_pick(r, ["bogus", "", "--version", "-h", "fit"])]
    if r.random() < 0.1:
        argv.insert(0, "-v")
    return argv, released


def _argv_code(argv):
    return "[" + ", ".join("MODEL" if a == "MODEL" else repr(a) for a in argv) + "]"


def gen_cli(r):
    argv, released = _cli_argv(r)
    code = f"rc = cli({_argv_code(argv)})"
    if argv[:1] == ["predict"] and "twins" in argv:  # two inputs with the same stem: two outputs expected
        out = argv[argv.index("--out") + 1]
        code += f"\nif rc == 0:\n    expect_outputs({out!r}, 2)"
    return code, released


def gen_cli_subprocess(r):
    argv, released = _cli_argv(r)
    return f"rc = cli_subprocess({_argv_code(argv)})", released


#: family -> (generator, weight). Training families are slow, so they are drawn less often.
FAMILIES = {
    "metrics": (gen_metrics, 14),
    "embeddings": (gen_embeddings, 10),
    "fitter": (gen_fitter, 6),
    "fit": (gen_fit, 6),
    "predict": (gen_predict, 10),
    "persistence": (gen_persistence, 8),
    "io": (gen_io, 10),
    "postprocess": (gen_postprocess, 8),
    "nn": (gen_nn, 8),
    "cli": (gen_cli, 10),
}
#: Every SUBPROCESS_EVERY-th case runs the command line in a child process (python -m harmonic_seg).
SUBPROCESS_EVERY = 25


def generate(seed, index):
    """``{"index", "family", "code", "released"}`` of case ``index`` of ``seed``."""
    r = np.random.default_rng([int(seed), int(index)])
    if index % SUBPROCESS_EVERY == SUBPROCESS_EVERY - 1:
        family, gen = "cli_subprocess", gen_cli_subprocess
    else:
        names = list(FAMILIES)
        weights = np.array([FAMILIES[n][1] for n in names], float)
        family = names[r.choice(len(names), p=weights / weights.sum())]
        gen = FAMILIES[family][0]
    code, released = gen(r)
    return {"index": int(index), "family": family, "code": code, "released": released}
