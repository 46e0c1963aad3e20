"""Importance Reweighting for Biquality Learning (Nodet et al., IJCNN 2021).

IRBL treats the noisy rows as drawn from another distribution than the trusted
ones and reweights them by the ratio of the two conditional label
distributions: an untrusted row ``(x, y)`` weighs
``P_T(y | x) / P_U(y | x)`` (:func:`irbl_weights`), from one classifier fitted on
the trusted rows and one fitted on the untrusted rows; trusted rows weigh 1.
A row whose noisy label the trusted model finds unlikely weighs little.
"""

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone

from sk_l2rw.trusted import (LabelPredictMixin, check_trusted_fit, class_proba,
                             default_estimator, fit_rows, sample_weight_key,
                             split_trusted)

__all__ = ["IRBLClassifier", "irbl_weights"]


def irbl_weights(proba_trusted, proba_untrusted, y):
    """IRBL's weight of each untrusted row: ``P_T(y | x) / P_U(y | x)``.

    Parameters
    ----------
    proba_trusted, proba_untrusted : array-like of shape (n_rows, n_classes)
        The two models' class probabilities on the untrusted rows.
    y : array-like of int, shape (n_rows,)
        The rows' (noisy) labels as column indices.

    Returns
    -------
    numpy.ndarray of shape (n_rows,)
        Non-negative; 0 where the untrusted model gives the label probability 0.
    """
    rows = np.arange(len(y))
    num = np.asarray(proba_trusted, dtype=float)[rows, y]
    den = np.asarray(proba_untrusted, dtype=float)[rows, y]
    return np.divide(num, den, out=np.zeros(len(y)), where=den > 0)


class IRBLClassifier(LabelPredictMixin, MetaEstimatorMixin, ClassifierMixin,
                     BaseEstimator):
    """Importance reweighting of the untrusted rows (Nodet et al., IJCNN 2021).

    1. ``probability_estimator`` is fitted on the trusted rows and, separately, on
       the untrusted rows.
    2. Each untrusted row weighs ``P_T(y | x) / P_U(y | x)`` from the two
       (:func:`irbl_weights`); trusted rows weigh 1.
    3. ``estimator`` is fitted on every row with those weights.

    IRBL assumes the trusted rows are drawn like the data the model will meet
    (a random audit, not a hand-picked set), and needs probabilities that can be
    compared between the two models: calibrated ones are best
    (``probability_estimator=CalibratedClassifierCV(...)``).

    Parameters
    ----------
    estimator : classifier or None, default=None
        Its ``fit`` takes ``sample_weight`` (or a Pipeline whose last step does).
        None: ``HistGradientBoostingClassifier(early_stopping=True)``.
    probability_estimator : classifier or None, default=None
        Has ``predict_proba``; None: a clone of ``estimator``. On a trusted set too
        small for its early stopping to hold out every class, it is fitted
        without (:func:`~sk_l2rw.trusted.fit_rows`).

    Attributes
    ----------
    estimator_ : classifier
        The weighted final model.
    sample_weight_ : numpy.ndarray of shape (n_samples,)
        Every row's weight, in the order of X (1 for trusted rows).
    classes_ : numpy.ndarray
    n_features_in_ : int
        When the estimator records it.

    References
    ----------
    P. Nodet, V. Lemaire, A. Bondu, A. Cornuéjols, "Importance Reweighting for
    Biquality Learning", IJCNN 2021.

    Examples
    --------
    >>> from sklearn.ensemble import HistGradientBoostingClassifier
    >>> from sk_l2rw import IRBLClassifier
    >>> clf = IRBLClassifier(HistGradientBoostingClassifier())
    >>> # clf.fit(X, y, trusted=mask).sample_weight_
    """

    __metadata_request__fit = {"trusted": True}

    def __init__(self, estimator=None, *, probability_estimator=None):
        self.estimator = estimator
        self.probability_estimator = probability_estimator

    def fit(self, X, y, *, trusted):
        """Fit both probability models, weigh the rows, fit the final model.

        Parameters
        ----------
        X : array-like, DataFrame or sparse matrix of shape (n_samples, n_features)
            The trusted and the untrusted rows together; the final model is fitted
            on all of them, weighted.
        y : array-like of shape (n_samples,)
            Each row's label: noisy on the untrusted rows, true on the trusted ones.
        trusted : array-like of bool, shape (n_samples,)
            True for the rows whose labels are trusted (weight 1; the trusted
            probability model is fitted on them). The untrusted rows of a class
            with no trusted row get weight 0, with a UserWarning.

        Returns
        -------
        self
        """
        estimator = default_estimator(self.estimator)
        weight_key = sample_weight_key(estimator)
        if weight_key is None:
            raise TypeError(f"IRBL needs an estimator whose fit takes sample_weight; "
                            f"{type(estimator).__name__}.fit does not")
        prober = estimator if self.probability_estimator is None else (
            self.probability_estimator)
        if not hasattr(prober, "predict_proba"):
            raise TypeError(f"IRBL needs class probabilities; {type(prober).__name__} "
                            "has no predict_proba")
        mask, classes, codes, missing = check_trusted_fit(X, y, trusted)
        if missing.size:
            warnings.warn(f"classes {missing.tolist()} have no trusted row: IRBL gives "
                          "every untrusted row of those classes weight 0", UserWarning,
                          stacklevel=2)
        K = len(classes)
        X_noisy, y_noisy, X_trusted, y_trusted = split_trusted(X, codes, mask)
        p_trusted = class_proba(fit_rows(prober, X_trusted, y_trusted), X_noisy, K)
        p_noisy = class_proba(fit_rows(prober, X_noisy, y_noisy), X_noisy, K)
        weights = np.ones(len(codes))
        weights[~mask] = irbl_weights(p_trusted, p_noisy, y_noisy)
        final = clone(estimator).fit(X, codes, **{weight_key: weights})
        self.estimator_, self.sample_weight_, self.classes_ = final, weights, classes
        if hasattr(final, "n_features_in_"):
            self.n_features_in_ = final.n_features_in_
        return self

    def _proba(self, X):
        return class_proba(self.estimator_, X, len(self.classes_))
