"""Cross-validation that scores on trusted labels only.

Cross-validating on noisy labels scores every candidate against the noise it is
meant to ignore: a model that learned the flips scores well. :class:`TrustedKFold`
holds out trusted rows only, and keeps every untrusted row in every training part,
so that a search or :class:`~sk_l2rw.TrustedClassifier` compares candidates on labels
they did not see and could not have learned wrong.
"""

import numpy as np
from sklearn.model_selection import BaseCrossValidator, KFold, StratifiedKFold
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import _num_samples

from sk_l2rw.trusted import check_trusted

__all__ = ["TrustedKFold"]


class TrustedKFold(BaseCrossValidator):
    """K folds of the trusted rows; every untrusted row trains in every fold.

    Fold ``k``'s test part is the ``k``-th of ``n_splits`` parts of the trusted rows
    (stratified by class when ``y`` holds class labels); its training part is every
    untrusted row and the other trusted rows. A classifier that takes ``trusted``
    (every estimator of this package) gets the mask of its training part sliced
    with it, so it still knows which of its rows are trusted; one that ignores
    ``trusted`` trains on all of them.

    The mask reaches ``split`` as sample-aligned metadata. In a search,
    :func:`~sklearn.model_selection.cross_validate` or a Pipeline, enable
    scikit-learn's metadata routing (``sklearn.set_config(enable_metadata_routing=
    True)``) and pass ``trusted=mask`` to ``fit``: the splitter and this package's
    estimators request it by default.

    Parameters
    ----------
    n_splits : int, default=5
        Folds of the trusted rows, at least 2. A classification target needs at
        least ``n_splits`` trusted rows in each class that has trusted rows.
    shuffle : bool, default=False
        Shuffle the trusted rows (within each class) before splitting.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffle; only with ``shuffle=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_l2rw.model_selection import TrustedKFold
    >>> y = np.array([0, 1] * 10)
    >>> trusted = np.arange(20) < 8
    >>> [test.tolist() for _, test in TrustedKFold(2).split(
    ...     np.zeros((20, 1)), y, trusted=trusted)]
    [[0, 1, 2, 3], [4, 5, 6, 7]]

    A search scored on trusted labels only (``est`` takes ``trusted`` or ignores
    it)::

        import sklearn
        sklearn.set_config(enable_metadata_routing=True)
        GridSearchCV(est, grid, cv=TrustedKFold(5)).fit(X, y, trusted=mask)
    """

    __metadata_request__split = {"trusted": True}

    def __init__(self, n_splits=5, *, shuffle=False, random_state=None):
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None, *, trusted=None):
        """Number of folds: ``n_splits``.

        Parameters
        ----------
        X, y, groups, trusted : ignored

        Returns
        -------
        int
        """
        return self.n_splits

    def _inner(self, n_trusted, y_trusted):
        """The splitter of the trusted rows, after checking it can split them."""
        if (not isinstance(self.n_splits, (int, np.integer))
                or isinstance(self.n_splits, bool) or self.n_splits < 2):
            raise ValueError(f"TrustedKFold needs n_splits an integer >= 2; got "
                             f"{self.n_splits!r}")
        if n_trusted < self.n_splits:
            raise ValueError(
                f"TrustedKFold(n_splits={self.n_splits}) needs at least {self.n_splits} "
                f"trusted rows; trusted marks {n_trusted}")
        state = self.random_state if self.shuffle else None
        if y_trusted is None or type_of_target(y_trusted) not in ("binary", "multiclass"):
            return KFold(self.n_splits, shuffle=self.shuffle, random_state=state)
        classes, counts = np.unique(y_trusted, return_counts=True)
        few = {c: int(n) for c, n in zip(classes.tolist(), counts) if n < self.n_splits}
        if few:
            raise ValueError(
                f"TrustedKFold(n_splits={self.n_splits}) needs at least {self.n_splits} "
                f"trusted rows of every class; trusted rows per class {few}: use fewer "
                "splits or audit more rows of those classes")
        return StratifiedKFold(self.n_splits, shuffle=self.shuffle, random_state=state)

    def split(self, X, y=None, groups=None, *, trusted=None):
        """Indices of the training and test part of each fold.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
        y : array-like of shape (n_samples,), optional
            Stratifies the trusted rows by class when it holds class labels.
        groups : ignored
        trusted : array-like of bool, shape (n_samples,)
            True for the rows whose labels are trusted.

        Yields
        ------
        train : numpy.ndarray
            Every untrusted row and the trusted rows of the other folds, sorted.
        test : numpy.ndarray
            This fold's trusted rows, sorted.
        """
        if trusted is None:
            raise ValueError(
                "TrustedKFold.split needs trusted=mask. In a search or cross_validate, "
                "enable metadata routing (sklearn.set_config(enable_metadata_routing="
                "True)) and pass trusted=mask to fit")
        mask = check_trusted(trusted, _num_samples(X))
        rows = np.flatnonzero(mask)
        untrusted = np.flatnonzero(~mask)
        y_trusted = None if y is None else np.asarray(y)[rows]
        inner = self._inner(len(rows), y_trusted)
        for train, test in inner.split(rows, y_trusted):
            yield np.sort(np.concatenate([untrusted, rows[train]])), rows[test]
