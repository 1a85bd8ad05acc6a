"""Stage 1 of the method: guide functions that separate the training instances.

A guide function is a sine wave (paper eq. 3) or a plain coordinate evaluated at
every pixel; the *embedding* of an instance is the mean of the guide functions
over its pixels (paper eq. 1-2). Stage 1 searches for guide functions whose
embeddings of the instances of each training image lie at least a margin apart
(paper eq. 4); the embedding of a label map (every pixel gets the embedding of
its instance) is then what the network of stage 2 regresses.

* ``harmonic_seg.guides.functions``: :class:`GuideFunctions` (a set of guide
  functions, in pixel or paper units), :func:`guide_maps`, random and
  coordinate guide sets (:func:`random_guides`, :func:`coordinate_guides`,
  :data:`~harmonic_seg.guides.functions.FREQUENCY_RANGES`);
* ``harmonic_seg.guides.fitting``: the search, :func:`fit_guides`, and how
  well a guide set separates instances (:func:`separation_score`,
  :func:`pairwise_separation`);
* ``harmonic_seg.guides.embeddings``: the embeddings of a label map
  (:func:`instance_embeddings`, :func:`embedding_map`, :func:`embedding_table`,
  :func:`lookup_embeddings`);
* ``harmonic_seg.guides.fitter``: :class:`~harmonic_seg.GuideFunctionFitter`,
  stage 1 as a scikit-learn transformer.

Every public name is importable from this package
(``from harmonic_seg.guides import GuideFunctions``). It needs numpy, scipy and
scikit-learn only, not torch.
"""

from . import embeddings, fitter, fitting, functions
from .embeddings import *  # noqa: F401,F403
from .fitter import *  # noqa: F401,F403
from .fitting import *  # noqa: F401,F403
from .functions import *  # noqa: F401,F403
from .functions import check_origin, window_coordinates  # noqa: F401 (importable here as before, not in __all__)

__all__ = [*functions.__all__, *fitting.__all__, *embeddings.__all__, *fitter.__all__]
