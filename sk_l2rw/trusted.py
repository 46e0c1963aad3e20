"""Trusted rows inside X: one boolean mask instead of a separate clean set.

A table whose audited rows sit among the others is passed whole, with
``trusted[i]`` True where row ``i``'s label was checked. Because the mask is one
value per row, scikit-learn's metadata routing slices it with every
cross-validation fold and carries it through a Pipeline, which a separate
``X_val`` cannot do. These functions check the mask and split any input form
by it; every estimator of the package that takes ``trusted`` calls them.
"""

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, has_fit_parameter

from sk_l2rw.data import n_rows
from sk_l2rw.validation import check_labels

# The other functions here are the package's own plumbing for its estimators.
__all__ = ["check_trusted", "fit_rows", "fit_with_trusted", "split_trusted"]


def check_trusted(trusted, n_samples, *, name="trusted"):
    """The mask as a boolean array of length ``n_samples``, or a clear error.

    Parameters
    ----------
    trusted : array-like of bool, shape (n_samples,)
        True for the rows whose labels are trusted.
    n_samples : int
        Rows of X.
    name : str, default="trusted"
        The parameter's name in messages.

    Returns
    -------
    numpy.ndarray of bool, shape (n_samples,)

    Raises
    ------
    ValueError
        Wrong length or shape, no trusted row, or no row left that is not trusted.
    TypeError
        Not boolean (0/1 integers are refused: ``astype(bool)`` says what is meant).
    """
    if trusted is None:
        raise ValueError(f"{name} is None: pass a boolean mask with one entry per row "
                         "of X, True for the rows whose labels are trusted")
    mask = np.asarray(trusted)
    if mask.dtype != bool:
        raise TypeError(
            f"{name} must be a boolean mask (True marks a trusted row); got dtype "
            f"{mask.dtype}. If 1 marks a trusted row, pass {name}.astype(bool)")
    if mask.ndim != 1 or len(mask) != n_samples:
        raise ValueError(f"{name} must have one entry per row of X ({n_samples}); got "
                         f"shape {mask.shape}")
    if not mask.any():
        raise ValueError(f"{name} marks no row: at least one trusted row is needed")
    if mask.all():
        raise ValueError(f"{name} marks every row: no untrusted row is left to train "
                         "on; fit the estimator itself on trusted data")
    return mask


def take(X, index):
    """Rows ``index`` (positions) of any input form: array, DataFrame, sparse
    matrix, tensor, list, or a dict of those."""
    if isinstance(X, Mapping):
        return {key: take(value, index) for key, value in X.items()}
    if hasattr(X, "iloc"):
        return X.iloc[index]
    if sp.issparse(X):
        return X.tocsr()[index]
    if isinstance(X, (list, tuple)):
        return np.asarray(X)[index]
    return X[index]


def split_trusted(X, y, trusted):
    """``(X_noisy, y_noisy, X_trusted, y_trusted)`` in the rows' order.

    Parameters
    ----------
    X : array-like, DataFrame, sparse matrix, tensor or dict of them
    y : array-like of shape (n_samples,)
    trusted : array-like of bool, shape (n_samples,)

    Returns
    -------
    tuple of four
    """
    if isinstance(X, torch.utils.data.Dataset):
        raise TypeError("trusted needs X as an array, DataFrame, sparse matrix, tensor "
                        "or dict of them; a torch Dataset cannot be split by a mask "
                        "(pass the clean set as X_val, y_val)")
    if y is None:
        raise ValueError("trusted needs y: the trusted rows' labels are their part of y")
    mask = check_trusted(trusted, n_rows(X))
    noisy, clean = np.flatnonzero(~mask), np.flatnonzero(mask)
    y = np.asarray(y) if not hasattr(y, "iloc") else y.to_numpy()
    return take(X, noisy), y[noisy], take(X, clean), y[clean]


def fit_with_trusted(estimator, X, y, trusted):
    """``estimator.fit(X, y, trusted=trusted)``; a Pipeline's transformers are fitted
    on every row of X and its last step gets the mask.

    Called without scikit-learn's metadata routing, so that the package's own
    meta-estimators work whether or not a user enabled it.
    """
    if isinstance(estimator, Pipeline):
        Xt = estimator[:-1].fit_transform(X, y)
        estimator.steps[-1][1].fit(Xt, y, trusted=trusted)
        return estimator
    return estimator.fit(X, y, trusted=trusted)


def check_trusted_fit(X, y, trusted):
    """Everything a classifier taking ``trusted`` checks before any fit.

    Returns
    -------
    mask : numpy.ndarray of bool
    classes : numpy.ndarray
        The sorted labels of y.
    codes : numpy.ndarray of int
        Each row's label as its position in ``classes``.
    untrusted_classes : numpy.ndarray
        Classes with no trusted row (empty when every class has one).
    """
    y = check_labels(y, name="y")
    check_classification_targets(y)
    if n_rows(X) != len(y):
        raise ValueError(f"X has {n_rows(X)} rows but y has {len(y)}: they must have one "
                         "label per row")
    mask = check_trusted(trusted, len(y))
    classes, codes = np.unique(y, return_inverse=True)
    counts = np.bincount(codes[mask], minlength=len(classes))
    return mask, classes, codes, classes[counts == 0]


def class_proba(model, X, n_classes):
    """``model.predict_proba(X)`` with a column for each of ``n_classes`` codes.

    Models are fitted on label codes ``0..n_classes-1``; one fitted on a subset
    of the rows may not have seen every class, and gives those probability 0.
    """
    proba = np.asarray(model.predict_proba(X), dtype=float)
    seen = np.asarray(getattr(model, "classes_", np.arange(proba.shape[1])), dtype=int)
    if len(seen) == n_classes and np.array_equal(seen, np.arange(n_classes)):
        return proba
    full = np.zeros((proba.shape[0], n_classes))
    full[:, seen] = proba
    return full


def sample_weight_key(estimator):
    """The ``fit`` keyword that carries sample weights to ``estimator``:
    ``"sample_weight"``, ``"<last step>__sample_weight"`` for a Pipeline, or None
    when it takes none."""
    if isinstance(estimator, Pipeline):
        name, last = estimator.steps[-1]
        return f"{name}__sample_weight" if has_fit_parameter(last, "sample_weight") else (
            None)
    return "sample_weight" if has_fit_parameter(estimator, "sample_weight") else None


def default_estimator(estimator, random_state=None):
    """``estimator``, or for None scikit-learn's ``HistGradientBoostingClassifier``
    with early stopping always on, seeded by ``random_state``.

    scikit-learn's own default stops early only above 10,000 rows; below that its
    100 rounds learn the flipped labels of a noisy table (on 5,000 rows of adult
    with 40% of labels flipped, 68.9% test accuracy against 80.3% with early
    stopping). Fits too small to hold out a validation part of every class are
    made without it (:func:`fit_rows`)."""
    if estimator is None:
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(early_stopping=True,
                                              random_state=random_state)
    return estimator


def _early_stopping_fits(estimator, y):
    """Whether ``estimator``'s early stopping can hold out a stratified validation
    part of ``y`` (or it does not stop early on these rows at all)."""
    try:
        params = estimator.get_params(deep=False)
    except AttributeError:
        return True
    stopping, fraction = params.get("early_stopping"), params.get("validation_fraction")
    y = np.asarray(y)
    if stopping is None or stopping is False or fraction is None or isinstance(
            fraction, bool) or not isinstance(fraction, (int, float)):
        return True
    if stopping == "auto" and len(y) <= 10_000:  # scikit-learn's "auto" threshold
        return True
    counts = np.unique(y, return_counts=True)[1]
    held = int(np.ceil(fraction * len(y))) if isinstance(fraction, float) else fraction
    return counts.min() >= 2 and held >= len(counts) and len(y) - held >= len(counts)


def fit_rows(estimator, X, y, **fit_params):
    """Fit a clone of ``estimator`` on X, y; an estimator whose early stopping
    cannot split these rows (fewer validation rows than classes, or a class with
    one row: a small trusted set) is fitted with ``early_stopping=False``.

    Parameters
    ----------
    estimator : classifier
    X : array-like, DataFrame or sparse matrix
    y : array-like of shape (n_samples,)
    **fit_params
        Passed to ``fit`` (sample weights).

    Returns
    -------
    The fitted clone.
    """
    model = clone(estimator)
    if not _early_stopping_fits(model, y):
        model.set_params(early_stopping=False)
    return model.fit(X, y, **fit_params)


class LabelPredictMixin:
    """``predict_proba`` and ``predict`` for the meta-estimators whose models are
    fitted on label codes: each supplies ``_proba(X)``, the fitted model's class
    probabilities with a column per code."""

    def predict_proba(self, X):
        """Class probabilities (of the true classes), columns as ``classes_``.

        Parameters
        ----------
        X : array-like, DataFrame or sparse matrix of shape (n_samples, n_features)
            Rows in the form ``fit`` took.

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self, "estimator_")
        return self._proba(X)

    def predict(self, X):
        """The most probable class of each row (the largest column of
        :meth:`predict_proba`).

        Parameters
        ----------
        X : array-like, DataFrame or sparse matrix of shape (n_samples, n_features)
            As in :meth:`predict_proba`.

        Returns
        -------
        numpy.ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        proba = self.predict_proba(X)  # checks that the estimator is fitted
        return self.classes_[proba.argmax(axis=1)]


def trusted_as_clean_set(X, y, X_val, y_val, trusted):
    """``(X, y, X_val, y_val, layout)`` for ``fit(..., trusted=mask)``: the trusted
    rows of X as the clean set, and ``layout`` = (positions of the training rows
    in X, rows of X); the inputs unchanged (and no layout) when ``trusted`` is None."""
    if trusted is None:
        return X, y, X_val, y_val, None
    if X_val is not None or y_val is not None:
        raise ValueError("pass the clean set either as trusted rows of X or as "
                         "X_val, y_val, not both")
    mask = check_trusted(trusted, n_rows(X))
    X, y, X_val, y_val = split_trusted(X, y, mask)
    return X, y, X_val, y_val, (np.flatnonzero(~mask), len(mask))
