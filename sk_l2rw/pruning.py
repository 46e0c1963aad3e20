"""Confident learning's pruning around any classifier, trusted rows kept.

Confident learning (Northcutt, Jiang and Chuang, "Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 2021) finds the rows whose label disagrees
with a model that did not train on them, counts how many labels of each class
were flipped to each other class, and removes that many of the most doubtful
rows. The model is then fitted on what remains. It assumes nothing about where
the noise comes from beyond what out-of-fold probabilities reveal, which is why it
loses least to uniform noise on many classes (where corrections such as GLC
struggle). cleanlab, the authors' library, does the counting
(:func:`cleanlab.filter.find_label_issues`); this module adds the two things a
trusted set changes: its rows are never removed, and they take part in the
out-of-fold probabilities with their correct labels.
"""

import warnings

import numpy as np
from sklearn.model_selection import StratifiedKFold

from sk_l2rw.trusted import class_proba, fit_rows, take

__all__ = ["fit_pruned", "label_issues", "out_of_fold_proba"]


def out_of_fold_proba(estimator, X, y, *, n_splits=5, random_state=None):
    """Each row's class probabilities from a clone of ``estimator`` that did not
    train on it.

    Parameters
    ----------
    estimator : classifier with ``predict_proba``
    X : array-like, DataFrame, sparse matrix or dict of arrays
    y : numpy.ndarray of int
        Label codes ``0..K-1`` (a code may be absent: its column is 0).
    n_splits : int, default=5
        Stratified folds; fewer when a class has fewer rows (at least 2).
    random_state : None or int
        Seeds the shuffle of the folds.

    Returns
    -------
    numpy.ndarray of shape (n_samples, K), or None when some class has a single
    row (no stratified split holds it out and trains on it too).
    """
    y = np.asarray(y)
    K = int(y.max()) + 1
    fewest = np.unique(y, return_counts=True)[1].min()
    if fewest < 2:
        return None
    folds = StratifiedKFold(min(n_splits, int(fewest)), shuffle=True,
                            random_state=random_state)
    proba = np.zeros((len(y), K))
    for train, test in folds.split(np.zeros(len(y)), y):
        model = fit_rows(estimator, take(X, train), y[train])
        proba[test] = class_proba(model, take(X, test), K)
    return proba


def label_issues(proba, y, trusted):
    """Rows confident learning would remove: never a trusted one.

    Parameters
    ----------
    proba : numpy.ndarray of shape (n_samples, K)
        Out-of-fold class probabilities (:func:`out_of_fold_proba`).
    y : numpy.ndarray of int
        The given labels as codes.
    trusted : numpy.ndarray of bool

    Returns
    -------
    numpy.ndarray of bool, shape (n_samples,)
        True for the untrusted rows whose label confident learning doubts
        (cleanlab's default, pruning by the estimated noise rate of each pair of
        classes, at least one row of each class kept).
    """
    from cleanlab.filter import find_label_issues

    # cleanlab wants every column a class with labels: a fold of a small trusted
    # set may lack one, so the columns are cut to the classes present.
    present, labels = np.unique(np.asarray(y), return_inverse=True)
    if len(present) < 2:
        return np.zeros(len(labels), dtype=bool)
    proba = np.asarray(proba, dtype=float)[:, present]
    proba = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-12, None)
    with warnings.catch_warnings():
        # cleanlab warns about classes its estimate finds no noise in: expected.
        warnings.simplefilter("ignore")
        # n_jobs=1: cleanlab's process pool cannot start inside a joblib worker.
        issues = find_label_issues(labels, proba, n_jobs=1)
    return np.asarray(issues, dtype=bool) & ~np.asarray(trusted, dtype=bool)


def fit_pruned(estimator, X, y, trusted, *, n_splits=5, random_state=None):
    """Fit ``estimator`` on the rows confident learning keeps.

    Parameters
    ----------
    estimator : classifier with ``predict_proba``
    X : array-like, DataFrame, sparse matrix or dict of arrays
    y : numpy.ndarray of int
        Label codes ``0..K-1``.
    trusted : numpy.ndarray of bool
        Rows that are never removed.
    n_splits : int, default=5
        Folds of the out-of-fold probabilities.
    random_state : None or int
        Seeds those folds.

    Returns
    -------
    model : classifier
        A clone of ``estimator`` fitted on the kept rows (every row when some
        class has a single row: nothing can be judged out of fold).
    kept : numpy.ndarray of bool, shape (n_samples,)
    """
    proba = out_of_fold_proba(estimator, X, y, n_splits=n_splits,
                              random_state=random_state)
    kept = np.ones(len(y), dtype=bool)
    if proba is not None:
        kept = ~label_issues(proba, y, trusted)
    rows = np.flatnonzero(kept)
    return fit_rows(estimator, take(X, rows), np.asarray(y)[rows]), kept
