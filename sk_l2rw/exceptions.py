"""Warnings of the L2RW estimators, one class per situation.

Filter them by class, never by message text::

    import warnings
    from sk_l2rw.exceptions import CleanLossWarning
    warnings.simplefilter("error", CleanLossWarning)

All derive from :class:`L2RWWarning`, itself a ``UserWarning``.
"""

__all__ = ["L2RWWarning", "CleanLossWarning", "NoCleanSetWarning",
           "MissingClassesWarning", "CleanTargetScaleWarning", "EncodedLabelsWarning",
           "FallbackWarning"]


class L2RWWarning(UserWarning):
    """Base class of every warning sk_l2rw raises."""


class CleanLossWarning(L2RWWarning):
    """The clean loss rose far above its best: the steps are too large for the rate."""


class NoCleanSetWarning(L2RWWarning):
    """No clean set was given: training is plain, with uniform weights."""


class MissingClassesWarning(L2RWWarning):
    """The clean set has no rows of some classes: its signal about them is weak."""


class CleanTargetScaleWarning(L2RWWarning):
    """The clean targets sit on another scale than the training targets (a target
    transformation applied to ``y`` only, e.g. by ``TransformedTargetRegressor``)."""


class EncodedLabelsWarning(L2RWWarning):
    """The clean labels were mapped onto training codes 0..K-1 that a meta-estimator
    (VotingClassifier, StackingClassifier, BaggingClassifier) made from ``y``."""


class FallbackWarning(L2RWWarning):
    """``meta_gradient="auto"`` left its first choice for a slower exact computation."""
