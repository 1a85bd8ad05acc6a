"""GuideFunctionFitter: stage 1 as a scikit-learn transformer (numpy only)."""

from __future__ import annotations

from numbers import Integral, Real

from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._labels import relabel_sequential
from .._validation import ValidatedLabelMaps, check_label_maps
from .embeddings import embedding_map
from .fitting import fit_guides, reference_shape, separation_score
from .functions import FREQUENCY_RANGES, coordinate_guides, random_guides

__all__ = ["GuideFunctionFitter"]

STRATEGIES = ("optimize", "random", "low", "high", "coord")


class GuideFunctionFitter(TransformerMixin, BaseEstimator):
    """Find guide functions that separate training instances (paper section 3.1).

    ``fit`` takes a list of 2-D integer label maps; ``transform`` turns label
    maps into their per-pixel target embedding maps; ``score`` is the fraction
    of same-image instance pairs separated by at least ``margin`` (L1).

    Parameters
    ----------
    n_guides : int, default=12
        Number of guide functions N, i.e. the embedding dimension. Ignored by
        ``strategy="coord"``, which always has 2.
    margin : float, default=0.5
        The margin eps of the separation loss (paper eq. 4). Also the default
        mean-shift bandwidth of :class:`~harmonic_seg.HarmonicSegmenter`.
    strategy : {"optimize", "random", "low", "high", "coord"}, default="optimize"
        ``"optimize"``: the paper's search (eq. 4). ``"random"``, ``"low"``,
        ``"high"``: fixed random sine guides from the frequency ranges of
        :data:`~harmonic_seg.guides.functions.FREQUENCY_RANGES` (the
        ablations of the paper's Tables 4-5). ``"coord"``: plain normalised coordinates
        ``(y/H, x/W)``, the embedding being the instance's centroid.
    init_range : "auto-length", "auto" or tuple of float, default="auto-length"
        Range of the initial frequencies in the paper's units (radians per
        image side of the median training shape), scaled to the objects.
        ``"auto-length"``: every initial period is at least four median
        instance lengths (major axes) along each axis; ``"auto"``: four median
        equivalent diameters, higher frequencies for long thin objects such as
        worms and the same range for compact ones (see
        :func:`~harmonic_seg.guides.auto_frequency_bound`). The paper
        uses ``(0.0, 50.0)``, which on small tiles gives periods shorter than
        the objects and targets that a network learns poorly.
    max_frequency : None, "init" or float, default=None
        Bound on every frequency component during the search, in the units of
        ``init_range`` (it also caps the initial range). ``None``: unbounded,
        as in the paper; ``"init"``: the upper end of ``init_range``, so the
        search separates instances without raising any frequency past those
        it started from (smooth targets, learnt well on a small budget; see
        docs/results.md). Only used by ``strategy="optimize"``.
    learning_rate : float, default=0.1
        Adam step size of the search.
    max_iter : int, default=1000
        Maximum number of minibatch steps of the search.
    batch_size : int, default=16
        Images per minibatch.
    max_pixels_per_instance : int, default=256
        Pixels sampled per instance during the search (the reported
        separation is always exact).
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation and the minibatches.
    verbose : int, default=0
        0: silent; 1: progress bar.

    Attributes
    ----------
    guides_ : GuideFunctions
        The fitted guide functions (absolute pixel units).
    reference_shape_ : tuple of int
        Median (H, W) of the training label maps: the unit of the paper's
        frequencies.
    n_guides_ : int
        Number of guide functions actually fitted.
    loss_curve_ : list of float
        Minibatch loss at each iteration (empty for fixed strategies).
    n_iter_ : int
        Iterations of the search run.
    converged_ : bool
        Whether the search drove the training loss to zero.
    separation_ : float
        Exact separated-pair fraction on the training label maps.
    fit_warnings_ : list of str
        What the fit could not do (e.g. no image with two instances).

    Examples
    --------
    >>> from harmonic_seg import GuideFunctionFitter
    >>> from harmonic_seg.synthetic import make_instances
    >>> data = make_instances(n_images=4, random_state=0)
    >>> fitter = GuideFunctionFitter(random_state=0).fit(data.labels)
    >>> fitter.transform(data.labels)[0].shape
    (12, 128, 128)
    """

    _parameter_constraints = {
        "n_guides": [Interval(Integral, 1, None, closed="left")],
        "margin": [Interval(Real, 0, None, closed="neither")],
        "strategy": [StrOptions(set(STRATEGIES))],
        "init_range": [tuple, list, StrOptions({"auto", "auto-length"})],
        "max_frequency": [None, StrOptions({"init"}), Interval(Real, 0, None, closed="neither")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_pixels_per_instance": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        n_guides=12,
        margin=0.5,
        strategy="optimize",
        init_range="auto-length",
        max_frequency=None,
        learning_rate=0.1,
        max_iter=1000,
        batch_size=16,
        max_pixels_per_instance=256,
        random_state=None,
        verbose=0,
    ):
        self.n_guides = n_guides
        self.margin = margin
        self.strategy = strategy
        self.init_range = init_range
        self.max_frequency = max_frequency
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.max_pixels_per_instance = max_pixels_per_instance
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.required = False
        tags.transformer_tags.preserves_dtype = []
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the guide functions on a list of label maps.

        Parameters
        ----------
        X : list of ndarray of shape (H, W)
            Integer label maps (0 = background); sizes may differ. Ids need
            not be consecutive: memory follows the number of instances, not
            the largest id.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : GuideFunctionFitter
        """
        # Checked once (not again by the search and the score), ids renumbered 1..K once: memory follows
        # the number of instances, not the largest id.
        label_maps = ValidatedLabelMaps(relabel_sequential(lab)[0] for lab in check_label_maps(X, "X"))
        ref = reference_shape(label_maps)
        self.loss_curve_, self.n_iter_, self.converged_, self.fit_warnings_ = [], 0, True, []
        if self.strategy == "optimize":
            res = fit_guides(
                label_maps,
                n_guides=self.n_guides,
                margin=self.margin,
                init_range=self.init_range,
                max_frequency=self.max_frequency,
                learning_rate=self.learning_rate,
                max_iter=self.max_iter,
                batch_size=self.batch_size,
                max_pixels_per_instance=self.max_pixels_per_instance,
                random_state=self.random_state,
                ref_shape=ref,
                verbose=self.verbose,
            )
            self.guides_ = res.guides
            self.loss_curve_, self.n_iter_ = res.loss_curve, res.n_iter
            self.converged_, self.fit_warnings_ = res.converged, res.warnings
        elif self.strategy == "coord":
            self.guides_ = coordinate_guides(ref)
        else:
            assert self.strategy in FREQUENCY_RANGES
            self.guides_ = random_guides(self.n_guides, ref, kind=self.strategy, random_state=self.random_state)
        self.reference_shape_ = ref
        self.n_guides_ = self.guides_.n_guides
        self.separation_ = separation_score(label_maps, self.guides_, self.margin)
        return self

    def transform(self, X):
        """Target embedding maps of label maps.

        Parameters
        ----------
        X : list of ndarray of shape (H, W)
            Integer label maps.

        Returns
        -------
        targets : list of ndarray of shape (N, H, W), float32
        """
        check_is_fitted(self, "guides_")
        return [embedding_map(lab, self.guides_) for lab in check_label_maps(X, "X")]

    def score(self, X, y=None):
        """Exact fraction of same-image instance pairs at least ``margin`` apart (L1).

        Parameters
        ----------
        X : list of ndarray of shape (H, W)
        y : None
            Ignored.

        Returns
        -------
        score : float in [0, 1], or nan when no image has two instances
        """
        check_is_fitted(self, "guides_")
        return separation_score(check_label_maps(X, "X"), self.guides_, self.margin)
