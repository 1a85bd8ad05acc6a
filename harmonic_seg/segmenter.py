"""HarmonicSegmenter: the scikit-learn face of the method."""

from __future__ import annotations

import logging
from numbers import Real

from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import _persistence
from ._clustering import ClusteringMixin
from ._legacy_params import FLAT
from ._fit_checks import MAX_SCALE, check_extra_params, prepare_images
from ._train_params import LOSSES, TRAINING_PARAMETERS, check_values
from ._validation import check_images, check_images_and_labels, check_masks
from .clustering._estimator import EmbeddingClusterer
from .guides import GuideFunctionFitter
from .metrics import mean_symmetric_best_dice
from .options import Augmentation, Loss, Network, Tiling, check_nested, resolved
from .preprocessing import rescale_channels_first, scaled_shape

__all__ = ["HarmonicSegmenter"]

logger = logging.getLogger(__name__)



class HarmonicSegmenter(ClusteringMixin, BaseEstimator):
    """Instance segmentation with harmonic embeddings (Kulikov & Lempitsky, CVPR 2020).

    ``fit`` runs the three stages on lists of images and integer label maps:
    guide functions are fitted on the label maps (``guides``), a U-Net with
    SinConv layers is trained to regress every pixel's harmonic embedding and
    its foreground probability, and, optionally, the post-processing (the
    mean-shift distance, bandwidth and core fraction, the minimum instance
    size and the foreground threshold) is tuned on held-out images
    (``clustering``). ``predict`` returns one integer label map per image.

    Parameters
    ----------
    guides : GuideFunctionFitter or None, default=None
        Stage-1 estimator (cloned in ``fit``). None means
        ``GuideFunctionFitter(random_state=random_state)``. Its parameters are
        reachable as ``guides__margin``, ``guides__n_guides``, ...
    network : Network or None, default=None
        The U-Net that ``fit`` builds and trains (:class:`~harmonic_seg.Network`):
        its ``depth`` (pooling steps, default 4), ``base_width`` (channels of
        its first level, doubled at every level; "auto": 16 where the network
        trains on a CPU, 32 on a GPU, ``base_width_``), ``norm`` ("batch") and
        ``variant`` (decoder convolutions that see the guide maps, SinConv,
        "sin"; plain coordinates, "coord"; or nothing, "none": the paper's
        ablations). None means ``Network()``. Its parameters are reachable as
        ``network__depth``, ...
    epochs : int, default=50
        Training epochs; ignored when ``max_time`` is set.
    max_time : float or None, default=None
        Wall-clock seconds for the whole ``fit`` (guide functions, training,
        post-processing tuning). Training gets what stage 1 leaves, less a
        reserve for the tuning (measured on one held-out image during
        training): its first epoch warms up, the later ones are timed and the
        epochs planned (and re-planned after every epoch) to end on time,
        with the cosine schedule annealed over the planned epochs (shortened,
        with ``steps_per_epoch=None``, to at least 20 in the budget).
        ``epochs`` is then not used; an
        :class:`~harmonic_seg.nn.EarlyStopping` callback still stops early.
        ``n_epochs_`` and ``time_budget_`` record the plan and the times.
        The measurement itself is not reserved: on a budget so small that
        tuning one held-out image takes much of it, the fit can run over by
        up to that time (``time_budget_["tuning_probe_seconds"]``).
    steps_per_epoch : int or None, default=None
        Minibatches per epoch; None covers the training images once.
    batch_size : int, default=4
    crop_size : int, default=192
        Side of the random training crops (the paper uses 448); at least
        ``2 * 2**depth`` (``network.depth``; the deepest level keeps 2 x 2 pixels). A crop
        longer than every training image's sides (after ``scale``) is
        clipped to the longest side: it would only add padding.
    learning_rate : float, default=2e-3
        Adam step size.
    lr_schedule : {"cosine", "constant", "plateau"}, default="cosine"
    validation_fraction : float, default=0.1
        Fraction of the training images held out for validation loss, early
        stopping and post-processing tuning (at least one image stays for
        training).
    loss : {"discriminative", "harmonic"} or Loss, default="discriminative"
        What the embedding head learns: the discriminative loss of De
        Brabandere et al. (2017) with its margins 0.5 and 1.5 (the paper's
        baseline), or the guided harmonic embeddings (L1 to the targets, the
        paper's method). Both are clustered by the same mean shift. The
        discriminative loss is the default because it scored higher on leaves
        and cells, and level on worms, at CPU budgets (see the user guide);
        its default bandwidth is its pull margin 0.5 whatever the guides'
        margin (the guides are still fitted: SinConv uses them as input
        features). ``loss="harmonic"`` is the paper's method; the guides'
        ``margin`` and ``n_guides`` then shape the targets. A name is short
        for :class:`~harmonic_seg.Loss` ``(name=...)``, which also holds the
        weights of the foreground loss and of the pixels where instances
        touch (``loss__fg_weight``, ``loss__boundary_weight``).
    augmentation : Augmentation or None, default=None
        Random augmentation of the training crops
        (:class:`~harmonic_seg.Augmentation`: scaling, flips, rotations);
        None means ``Augmentation()``: scaling by (0.75, 1.33) and flips.
        Its parameters are reachable as ``augmentation__rotate``, ...
    scale : float or "auto", default="auto"
        Every image (and label map) is resized by this factor (at most 100) before the
        network sees it, in training and in prediction; embeddings and
        foreground probabilities are brought back to the input size
        (bilinear) before clustering, so ``predict`` always returns maps of
        the input size. 0.5 halves the images: a crop and the receptive field
        then cover four times more of the objects at the same cost (large or
        elongated objects, such as worms, on a CPU budget). ``crop_size``,
        ``tiling.size`` and the guides' coordinates are in the reduced pixels;
        the clustering's ``min_size`` and ``bandwidth`` are not affected. "auto" chooses it
        from the training label maps (``scale_``): the median object (the
        geometric mean of its equivalent diameter and its length) is brought
        to about 32 pixels, in quarter octaves within [0.125, 1] (0.5 for
        worms or leaves, 0.25 for HeLa cells of 120 px, 1 for small nuclei).
    percentiles : tuple of float or None, default=(1.0, 99.8)
        Per-image percentile normalisation of the input (whole image, never
        per tile; in float64 for float64 images); None feeds the images as
        they are (as float32: values beyond its range, 3.4e38, are refused).
    clustering : EmbeddingClusterer or None, default=None
        The clustering stage (:class:`~harmonic_seg.clustering.EmbeddingClusterer`,
        cloned in ``fit``, fitted as ``clustering_``): the mean-shift
        ``bandwidth``, ``min_size``, ``fg_threshold``, ``metric``,
        ``core_fraction``, ... Its parameters are reachable as
        ``clustering__bandwidth``, ... None means ``EmbeddingClusterer()``
        (``min_size=10``, ``fg_threshold=0.5``, ...). Its ``bandwidth=None``
        is the guides' margin eps (the paper), or 0.5 with
        ``loss="discriminative"``; ``fg_threshold_`` is the foreground
        threshold ``predict`` uses (the tuning may choose another).
    tune_postprocessing : bool, default=True
        After training, tune the clustering on the validation images by the
        mean symmetric best Dice (:meth:`optimize_postprocessing`, as
        StarDist tunes its thresholds).
    tiling : Tiling or None, default=None
        How images are predicted (:class:`~harmonic_seg.Tiling`): those larger
        than ``tiling.size`` tile by tile, with an overlap of the network's
        receptive field; None means ``Tiling()``: tiles of 1024 pixels.
    device : str, default="auto"
        "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1", ...
        or "mps"; ``fit`` refuses a GPU this torch cannot use before any work.
    amp : bool, "auto" or None, default="auto"
        Mixed precision (autocast) in fit and predict; None: float16 on CUDA,
        float32 on CPU; True: also bfloat16 on CPU, faster to
        train on CPUs with AVX-512 BF16 or AMX instructions (slower where
        bfloat16 is emulated; a warning says so); "auto": bfloat16 only on
        a CPU with those instructions, float16 on CUDA, float32 elsewhere.
    num_threads : int or None, default=None
        CPU threads of torch during fit, predict and tuning (restored after).
        None: torch's setting within joblib's and threadpoolctl's limits, and
        one thread for the mean shift, which on more can be many times slower
        while another process holds a core.
    callbacks : list of Callback or None, default=None
        Objects with the hooks of :class:`harmonic_seg.nn.Callback`
        (``on_train_begin``, ``on_epoch_end``, ``on_train_end``), called by
        the training loop; a callback may set ``trainer.stop_training``.
        Early stopping is ``callbacks=[EarlyStopping(patience=k)]``
        (:class:`harmonic_seg.nn.EarlyStopping`: after ``k`` epochs without
        improvement of the validation loss; the best epoch's weights are kept).
    warm_start : bool, default=False
        When fitted (or loaded), ``fit`` goes on training the network from
        its weights on the new images, keeping ``guides_`` and ``scale_``
        (new images must have the same channels; the network's parameters
        may not change); ``history_`` goes on, the learning-rate schedule
        starts again at ``learning_rate`` and the post-processing is tuned
        again. False: every ``fit`` starts anew.
    random_state : int, RandomState instance or None, default=None
        Makes a CPU run repeatable (torch's global generator is left as it was).
    verbose : int, default=0
        0 silent, 1 progress bars, 2 also per-epoch log records.

    Attributes
    ----------
    guides_ : GuideFunctionFitter
        The fitted stage-1 estimator (``guides_.guides_`` are the functions).
    module_ : HarmonicUNet
        The trained network.
    history_ : list of dict
        Per-epoch training record (losses, learning rate, duration; with
        ``max_time`` also ``planned_epochs``), of every warm-started fit.
    n_epochs_ : int
        Epochs trained by the last ``fit``.
    time_budget_ : dict or None
        With ``max_time``: the budget, the seconds of stage 1, the tuning
        reserve, the training budget, the planned epochs and the seconds the
        training, the tuning and the whole fit took; None without.
    scale_ : float
        The scale the network works at (``scale`` or the automatic one).
    base_width_ : int
        Channels of the network's first level.
    n_channels_in_ : int
        Channels of the training images.
    clustering_ : EmbeddingClusterer
        The fitted clustering ``predict`` uses (tuned when
        ``tune_postprocessing``); the next eight are its attributes.
    bandwidth_, min_size_, metric_, core_fraction_, min_share_, fg_threshold_ : float, int, str, ...
        The values ``predict`` clusters with (the tuned ones after tuning).
    recovery_ : {"split", "components", "mean_shift"}
        How ``predict`` recovers instances: "split" after ``fit``; tuning may
        choose "components"; "mean_shift" for models saved before it was recorded.
    tuning_results_ : list of dict
        Scores of the post-processing grid (empty unless tuned).
    validation_indices_ : list of int or None
        The training images held out for validation (and tuning); None for a
        model saved by a version that did not record them.

    Examples
    --------
    >>> from harmonic_seg import HarmonicSegmenter, Network
    >>> from harmonic_seg.synthetic import make_instances
    >>> data = make_instances(n_images=3, shape=(64, 64), random_state=0)
    >>> seg = HarmonicSegmenter(network=Network(depth=2, base_width=8), epochs=1, crop_size=64,
    ...                         validation_fraction=0, random_state=0)
    >>> seg.fit(data.images, data.labels).predict(data.images[:1])[0].shape
    (64, 64)
    """

    _parameter_constraints = {
        "guides": [GuideFunctionFitter, None],
        "network": [Network, None],
        "max_time": [Interval(Real, 0, None, closed="neither"), None],
        "loss": [StrOptions(set(LOSSES)), Loss],
        "augmentation": [Augmentation, None],
        "scale": [Interval(Real, 0, MAX_SCALE, closed="right"), StrOptions({"auto"})],
        "percentiles": [tuple, list, None],
        "clustering": [EmbeddingClusterer, None],
        "tune_postprocessing": ["boolean"],
        "tiling": [Tiling, None],
        "callbacks": [list, None],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        # epochs, crop_size, learning_rate, ... device, amp, num_threads, verbose: those of TrainConfig
        **TRAINING_PARAMETERS,
    }

    def __init__(
        self,
        *,
        guides=None,
        network=None,
        epochs=50,
        max_time=None,
        steps_per_epoch=None,
        batch_size=4,
        crop_size=192,
        learning_rate=2e-3,
        lr_schedule="cosine",
        validation_fraction=0.1,
        loss="discriminative",
        augmentation=None,
        scale="auto",
        percentiles=(1.0, 99.8),
        clustering=None,
        tune_postprocessing=True,
        tiling=None,
        device="auto",
        amp="auto",
        num_threads=None,
        callbacks=None,
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        self.guides = guides
        self.network = network
        self.epochs = epochs
        self.max_time = max_time
        self.steps_per_epoch = steps_per_epoch
        self.batch_size = batch_size
        self.crop_size = crop_size
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.validation_fraction = validation_fraction
        self.loss = loss
        self.augmentation = augmentation
        self.scale = scale
        self.percentiles = percentiles
        self.clustering = clustering
        self.tune_postprocessing = tune_postprocessing
        self.tiling = tiling
        self.device = device
        self.amp = amp
        self.num_threads = num_threads
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.required = True
        tags.non_deterministic = False
        return tags

    def set_params(self, **params):
        """Set parameters; nested keys (``clustering__bandwidth``, ...) also work while their estimator is None.

        With ``guides=None``, ``network=None``, ``clustering=None``,
        ``augmentation=None`` or ``tiling=None`` (the defaults), a ``clustering__bandwidth=...`` style
        key first replaces None by the default estimator
        (``EmbeddingClusterer()``, ...), which behaves exactly like None, and a
        ``loss__fg_weight=...`` key replaces a loss name by ``Loss(name=...)``,
        so that grids over nested parameters work on a default-constructed
        segmenter. On a fitted segmenter the clustering parameters the tuning
        does not choose (``clustering__core_threshold``,
        ``clustering__split_components``, ``clustering__merge_small``) also
        reach ``clustering_``, and ``clustering__fg_threshold`` also sets
        ``fg_threshold_``, the threshold ``predict`` uses (validated first), so
        that they change predictions without refitting.
        """
        moved = [k for k in params if k in FLAT]
        if moved:  # a parameter of earlier versions: name where it is now
            where, name = FLAT[moved[0]]
            new = "callbacks=[EarlyStopping(patience=...)]" if where == "callbacks" else f"{where}__{name}"
            raise ValueError(f"Invalid parameter {moved[0]!r} for {type(self).__name__}: it is now a parameter of "
                             f"the nested {where!r}; use {new} instead.")
        self._check_fitted_set_params(params)
        for name, default in (("guides", GuideFunctionFitter), ("network", Network),
                              ("clustering", EmbeddingClusterer), ("augmentation", Augmentation), ("tiling", Tiling),
                              ("loss", Loss)):
            value = getattr(self, name)
            if (value is None or (name == "loss" and isinstance(value, str))) and name not in params and any(
                    k.startswith(name + "__") for k in params):
                setattr(self, name, default() if value is None else default(name=value))
        return super().set_params(**params)

    def _validate_params(self):
        """The constraints of the parameters and of the nested options, before any work."""
        super()._validate_params()
        check_nested(self)
        if self.clustering is not None:  # errors naming clustering.bandwidth and the like
            params = self.clustering.get_params(deep=False)
            for name, constraints in self.clustering._parameter_constraints.items():
                check_values({name: params[name]}, {name: constraints}, prefix="clustering.")

    # ------------------------------------------------------------------ helpers
    def _prepare(self, images):
        """Validated images -> normalised float32 (C, H, W) arrays."""
        return prepare_images(images, self.percentiles)

    def _threads(self):
        from .nn._threads import torch_threads  # the one place that sets torch's threads (the trainer's too)

        return torch_threads(self.num_threads)

    # ---------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, *, ignore=None):
        """Fit guide functions, train the embedding network, tune post-processing.

        With ``warm_start=True`` on a fitted (or loaded) segmenter, the
        network goes on training from its weights and the guide functions
        are kept; ``max_time`` bounds the whole call.

        Parameters
        ----------
        X : list of ndarray of shape (H, W) or (H, W, C)
            Training images of any numeric dtype; sizes may differ, channel
            counts may not. A 3-D array is (H, W, C) with at most 16 channels
            last; one whose first axis is shorter than its last, such as
            (3, 512, 8), looks like a (Z, H, W) stack or a (C, H, W) image and
            is refused (``np.moveaxis(im, 0, -1)`` moves channels last; pass the
            planes of a stack as a list). Reduced by ``scale``, every image
            must keep at least ``max(2**depth, 8)`` pixels a side.
        y : list of ndarray of shape (H, W)
            Integer label maps, 0 = background.
        ignore : list of ndarray of shape (H, W) or None, default=None
            Pixels excluded from the losses (e.g. where instances overlap).

        Returns
        -------
        self : HarmonicSegmenter
        """
        from ._fitting import fit_segmenter

        return fit_segmenter(self, X, y, ignore)

    # ------------------------------------------------------------------ predict
    def _embed_reduced(self, chw):
        """The network's embedding and foreground probability of an image already reduced by ``scale``."""
        from .nn import predict_embeddings

        tiling = resolved(self, "tiling")
        rf = getattr(self.module_, "receptive_field", 0)
        overlap = tiling.overlap if tiling.overlap is not None else 2 * (rf // 2)
        return predict_embeddings(self.module_, chw, tile_size=tiling.size, overlap=overlap, amp=self.amp)

    def _embed(self, chw):
        shape, scale = chw.shape[1:], self.scale_
        if scale != 1:
            chw = rescale_channels_first(chw, scaled_shape(shape, scale))
        emb, prob = self._embed_reduced(chw)
        if scale != 1:
            emb = rescale_channels_first(emb, shape)
            prob = rescale_channels_first(prob[None], shape)[0]
        return emb, prob

    def _check_predict_input(self, X, foreground):
        check_is_fitted(self, "module_")
        self._validate_params()  # parameters set after fit (set_params), before any work
        check_extra_params(self, fitted=True)  # the network runs where fit or load put it
        images = check_images(X, "X", n_channels=self.n_channels_in_)
        return images, check_masks(foreground, [im.shape[:2] for im in images], "foreground", "X")

    def predict_embeddings(self, X):
        """Predicted embeddings and foreground probabilities.

        Parameters
        ----------
        X : list of ndarray of shape (H, W) or (H, W, C)

        Returns
        -------
        list of tuple (embedding, fg_prob)
            ``embedding`` of shape (N, H, W) and ``fg_prob`` of shape (H, W),
            float32.
        """
        images, _ = self._check_predict_input(X, None)
        with self._threads():
            return [self._embed(im) for im in self._prepare(images)]

    def predict(self, X, foreground=None, *, return_scores=False):
        """Instance label maps of images.

        Parameters
        ----------
        X : list of ndarray of shape (H, W) or (H, W, C)
            Channels last, as in ``fit``: a 3-D array whose first axis is
            shorter than its last (a (Z, H, W) stack or a (C, H, W) image) is
            refused. One dask array (H, W[, C]), a large image, is segmented
            block by block and its labels returned as a lazy dask array
            (:func:`harmonic_seg.distributed.predict_blockwise`).
        foreground : list of ndarray of shape (H, W) or None, default=None
            Known foreground masks, imposed instead of the predicted
            foreground (e.g. the paper's HeLa protocol with ground-truth
            foreground).
        return_scores : bool, default=False
            Also return one confidence per instance (for COCO AP).

        Returns
        -------
        labels : list of ndarray of shape (H, W), int32
        scores : list of ndarray of shape (K,)
            Only when ``return_scores`` is True; ``scores[i][k]`` belongs to
            instance ``k + 1`` of ``labels[i]``.
        """
        if hasattr(X, "__dask_graph__"):  # one large image, block by block on dask
            from .distributed.blockwise import predict_dask

            return predict_dask(self, X, foreground, return_scores)
        images, foreground = self._check_predict_input(X, foreground)
        labels, scores = [], []
        with self._threads():
            for i, im in enumerate(self._prepare(images)):
                emb, prob = self._embed(im)
                fg = prob > self.fg_threshold_ if foreground is None else foreground[i].astype(bool)
                lab, sc = self._cluster(emb, fg, prob)
                labels.append(lab)
                scores.append(sc)
        return (labels, scores) if return_scores else labels

    def score(self, X, y):
        """Mean symmetric best Dice of the predictions (higher is better).

        Parameters
        ----------
        X : list of ndarray of shape (H, W) or (H, W, C)
        y : list of ndarray of shape (H, W)

        Returns
        -------
        score : float
        """
        images, labels = check_images_and_labels(X, y)
        return mean_symmetric_best_dice(labels, self.predict(images))

    # -------------------------------------------------------------- persistence
    def __getstate__(self):
        return _persistence.getstate(self)

    def __setstate__(self, state):
        _persistence.setstate(self, state)

    def save(self, path, *, overwrite=False):
        """Save to a folder in a safe format: JSON configuration + numpy weights.

        Loading it never executes code (no pickle). See :meth:`load`.

        Parameters
        ----------
        path : str or path-like
            Target folder: new, empty, or (with ``overwrite=True``) holding a
            saved model, of which only ``config.json`` and ``weights.npz`` are
            replaced. Anything else raises ``FileExistsError``.
        overwrite : bool, default=False
        """
        _persistence.save(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path, *, device="cpu"):
        """Load a model written by :meth:`save`.

        Both files are checked against the format first: a damaged one raises
        ``ValueError`` naming the file and the field.

        Parameters
        ----------
        path : str or path-like
        device : str, default="cpu"
            Where to put the network: "cpu", "cuda", "cuda:k", "mps" or
            "auto"; a GPU this torch cannot use is refused (``ValueError``).

        Returns
        -------
        HarmonicSegmenter
        """
        return _persistence.load(cls, path, device=device)
