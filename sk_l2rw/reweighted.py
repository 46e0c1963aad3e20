"""``ReweightedClassifier``: L2RW's example weights for any scikit-learn classifier.

A neural net is often not the best model for a table, but the weights L2RW gives its
rows are useful to any learner that takes ``sample_weight``: rows the clean set never
wanted weigh 0, rows it wanted more weigh more. The meta-estimator fits an
:class:`~sk_l2rw.L2RWClassifier` on the noisy rows with the clean set, turns the
weight history into one weight per row, and fits the final estimator (gradient
boosting, say) on the noisy rows with those weights plus the clean rows.
"""

import math

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import (BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone,
                          is_classifier)
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _get_feature_names, check_is_fitted

from sk_l2rw.categorical import categorical_columns
from sk_l2rw.classifier import L2RWClassifier
from sk_l2rw.data import n_rows as _n_rows
from sk_l2rw.diagnostics import final_estimator, relative_weights
from sk_l2rw.modules import MLP
from sk_l2rw.trusted import check_trusted, sample_weight_key, split_trusted
from sk_l2rw.validation import check_labels, clean_class_weights

__all__ = ["ReweightedClassifier", "row_weights"]


def row_weights(net):
    """One weight per training row from a fitted L2RW net's weight history.

    The rule: each epoch's weights as multiples of the uniform weight
    (:func:`sk_l2rw.diagnostics.relative_weights`: 1 is an average row), averaged
    over the later half of the epochs (the last ``ceil(E / 2)`` of ``E``). Early
    epochs are left out because their weights come from a barely trained net.
    Rows that never trained in those epochs (a validation split) weigh 1.

    Parameters
    ----------
    net : fitted L2RWClassifier or L2RWRegressor, or a Pipeline ending in one

    Returns
    -------
    numpy.ndarray of shape (n_samples,)
        Non-negative, about 1 on average.
    """
    n_epochs = len(final_estimator(net).history)
    weights = relative_weights(net, last_epochs=max(1, math.ceil(n_epochs / 2)))
    trained = ~np.isnan(weights)
    counts = trained.sum(axis=0)
    total = np.where(trained, weights, 0.0).sum(axis=0)
    return np.where(counts > 0, total / np.maximum(counts, 1), 1.0)


def default_epochs(n_rows, batch_size=128):
    """Epochs of the built-in nets: 20, or as many as 200 optimizer steps take if
    that is more (small tables get too few steps from 20 epochs)."""
    batches = max(1, math.ceil(n_rows / batch_size))
    return max(20, math.ceil(200 / batches))


def default_net(n_rows, random_state, X=None):
    """The built-in net: median imputation, standard scaling, an MLP (256 ReLU units)
    trained by L2RW with Adam at 1e-3, batch 128, 20 epochs or 200 steps if more.

    A DataFrame's categorical columns pass the preparation untouched, so that the
    MLP embeds them; a sparse matrix is scaled without centring, so that it stays
    sparse."""
    epochs = default_epochs(n_rows)
    if sp.issparse(X):
        steps = [StandardScaler(with_mean=False)]
    elif categorical_columns(X, "from_dtype"):
        numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        prepare = ColumnTransformer(
            [("numeric", numeric, make_column_selector(dtype_include="number"))],
            remainder="passthrough", verbose_feature_names_out=False)
        steps = [prepare.set_output(transform="pandas")]
    else:
        steps = [SimpleImputer(strategy="median"), StandardScaler()]
    return make_pipeline(
        *steps,
        L2RWClassifier(MLP, criterion=torch.nn.CrossEntropyLoss,
                       optimizer=torch.optim.Adam, lr=1e-3, batch_size=128,
                       max_epochs=epochs, random_state=random_state, verbose=0))


def _stack_rows(X, X_clean):
    """Training rows followed by the clean rows, in the type of ``X``."""
    if hasattr(X, "iloc") and hasattr(X_clean, "iloc"):
        import pandas as pd

        return pd.concat([X, X_clean], ignore_index=True)
    import scipy.sparse as sp

    if sp.issparse(X) or sp.issparse(X_clean):
        return sp.vstack([X, X_clean], format="csr")
    return np.concatenate([np.asarray(X), np.asarray(X_clean)])


class ReweightedClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Fit any classifier on L2RW-weighted rows plus the clean set.

    1. ``net`` (an :class:`~sk_l2rw.L2RWClassifier`, or a Pipeline ending in one)
       is fitted on the training rows with the clean set, as L2RW prescribes.
    2. :func:`row_weights` turns its ``sample_weights_`` into one weight per
       training row: the mean weight relative to uniform over the later half of the
       epochs (1 = an average row, 0 = a row the clean set never wanted).
    3. ``estimator`` is fitted on the training rows with those weights and on the
       clean rows with weight 1 (their ``clean_class_weight``, normalised to mean 1,
       when the net has one).

    Parameters
    ----------
    estimator : classifier
        Any scikit-learn classifier whose ``fit`` takes ``sample_weight`` (or a
        Pipeline whose last step does), e.g.
        ``HistGradientBoostingClassifier()``. Fitted on the original features.
    net : L2RWClassifier, Pipeline ending in one, or None, default=None
        Computes the weights. In a Pipeline, the steps before the net are fitted
        on the training rows and transform the clean set as well. None: median
        imputation, standard scaling and an L2RW-trained
        :class:`~sk_l2rw.modules.MLP` (256 ReLU units, cross-entropy,
        ``Adam(lr=1e-3)``, batch 128, 20 epochs or 200 optimizer steps if that is
        more, seeded by ``random_state``). A DataFrame's categorical columns skip
        imputation and scaling and are embedded by the MLP; a sparse matrix is
        scaled without centring and stays sparse.
    clean_class_weight : None, "balanced" or dict, default=None
        Class weights of the clean set, as in :class:`~sk_l2rw.L2RWClassifier`: set
        on the net (None keeps the net's own) and used, normalised to mean 1, as
        the clean rows' sample weights in the final fit. To aim at a population
        with class prior ``pi_k`` from a clean set with class shares ``q_k``, pass
        ``{k: pi_k / q_k}``.
    random_state : None or int, default=None
        Seeds the default net; a given ``net`` keeps its own ``random_state``.

    Attributes
    ----------
    net_ : L2RWClassifier or Pipeline
        The fitted net.
    estimator_ : classifier
        The fitted final estimator.
    sample_weight_ : numpy.ndarray of shape (n_samples,)
        The weight of every training row, in the order of ``X`` (with
        ``trusted``, of every row of X: the trusted rows' final-fit weights).
    classes_ : numpy.ndarray
        Class labels, in the order of ``predict_proba``'s columns.
    n_features_in_ : int
    feature_names_in_ : numpy.ndarray
        Only when ``X`` was a DataFrame with string column names.

    Examples
    --------
    >>> from sklearn.ensemble import HistGradientBoostingClassifier
    >>> from sk_l2rw import ReweightedClassifier
    >>> clf = ReweightedClassifier(HistGradientBoostingClassifier())
    >>> # clf.fit(X_noisy, y_noisy, X_val=X_clean, y_val=y_clean)
    """

    def __init__(self, estimator, net=None, *, clean_class_weight=None,
                 random_state=None):
        self.estimator = estimator
        self.net = net
        self.clean_class_weight = clean_class_weight
        self.random_state = random_state

    def _check_estimator(self):
        """The final estimator and the fit keyword its sample weights go to."""
        estimator = self.estimator
        if not is_classifier(estimator):
            raise TypeError(
                f"ReweightedClassifier needs a classifier as estimator; got "
                f"{type(estimator).__name__}")
        key = sample_weight_key(estimator)
        if key is None and isinstance(estimator, Pipeline):
            raise TypeError(
                f"the last step of the estimator Pipeline, "
                f"{type(estimator.steps[-1][1]).__name__}, does not take sample_weight "
                "in fit: the L2RW weights would be lost")
        if key is None:
            raise TypeError(
                f"{type(estimator).__name__}.fit does not take sample_weight: the L2RW "
                "weights would be lost; use a classifier that takes it (e.g. "
                "HistGradientBoostingClassifier, LogisticRegression)")
        return key

    def _check_net(self, n_rows, X=None):
        if self.net is None:
            return default_net(n_rows, self.random_state, X)
        final = final_estimator(self.net)
        if not isinstance(final, L2RWClassifier):
            raise TypeError(
                "net must be an L2RWClassifier or a Pipeline ending in one; got "
                f"{type(final).__name__}")
        return clone(self.net)

    __metadata_request__fit = {"trusted": True}

    def fit(self, X, y, *, X_val=None, y_val=None, trusted=None):
        """Fit the net for the weights, then the estimator on the weighted rows.

        Parameters
        ----------
        X : array-like, DataFrame or sparse matrix of shape (n_samples, n_features)
            Training rows (noisy labels, imbalanced classes...).
        y : array-like of shape (n_samples,)
        X_val, y_val : array-like, optional
            The clean set, in the same columns as ``X``. Takes precedence over
            ``clean_X``/``clean_y`` of the net.
        trusted : array-like of bool, shape (n_samples,), optional
            The clean set as rows of X: True where a row's label is trusted. The
            same fit as ``fit(X[~trusted], y[~trusted], X_val=X[trusted],
            y_val=y[trusted])``; ``sample_weight_`` then has an entry for every row
            of X, the trusted rows holding the weight they had in the final fit
            (1, or their ``clean_class_weight``). Not with X_val/y_val.

        Returns
        -------
        self
        """
        sample_weight_key = self._check_estimator()
        mask = None
        if trusted is not None:
            if X_val is not None or y_val is not None:
                raise ValueError("pass the clean set either as trusted rows of X or as "
                                 "X_val, y_val, not both")
            mask = check_trusted(trusted, _n_rows(X))
            X, y, X_val, y_val = split_trusted(X, y, mask)
        if (X_val is None) != (y_val is None):
            given = "X_val" if X_val is not None else "y_val"
            raise ValueError(
                f"the clean set needs both X_val and y_val; only {given} was given")
        y = check_labels(y, name="y")
        check_classification_targets(y)
        if _n_rows(X) != len(y):
            raise ValueError(f"X has {_n_rows(X)} rows but y has {len(y)}: they must have "
                             "one label per row")
        net = self._check_net(len(y), X)
        final = final_estimator(net)
        if X_val is None:
            X_val, y_val = final.clean_X, final.clean_y
        if X_val is None:
            raise ValueError(
                "ReweightedClassifier needs a clean set: pass X_val and y_val to fit, "
                "or clean_X and clean_y to the net")
        y_val = check_labels(y_val, name="the clean set y_val")
        if _n_rows(X_val) != len(y_val):
            raise ValueError(f"the clean set X_val has {_n_rows(X_val)} rows but y_val has "
                             f"{len(y_val)}")
        unseen = np.setdiff1d(np.unique(y_val), np.unique(y))
        if unseen.size:
            raise ValueError(
                f"the clean set y_val contains labels {unseen.tolist()} that y does not "
                "contain")
        # The net's own clean_X is replaced by the routed clean set.
        final.set_params(clean_X=None, clean_y=None)
        if self.clean_class_weight is not None:
            final.set_params(clean_class_weight=self.clean_class_weight)
        if isinstance(net, Pipeline):
            head = net[:-1]
            Xt = head.fit_transform(X, y)
            final.fit(Xt, y, X_val=head.transform(X_val), y_val=y_val)
        else:
            final.fit(X, y, X_val=X_val, y_val=y_val)
        weights = row_weights(net)
        clean = clean_class_weights(final.clean_class_weight, y_val)
        clean = np.ones(len(y_val)) if clean is None else clean
        estimator = clone(self.estimator)
        estimator.fit(_stack_rows(X, X_val), np.concatenate([y, y_val]),
                      **{sample_weight_key: np.concatenate([weights, clean])})
        if mask is not None:  # one weight per row of the X given, in its order
            weights, trained = np.empty(len(mask)), weights
            weights[~mask], weights[mask] = trained, clean
        # Nothing is set before both fits succeeded: a failed fit changes nothing.
        self.net_, self.estimator_, self.sample_weight_ = net, estimator, weights
        self.classes_ = estimator.classes_
        self.n_features_in_ = getattr(estimator, "n_features_in_", np.shape(X)[1])
        names = _get_feature_names(X)
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    def predict(self, X):
        """Class labels predicted by the final estimator.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows in the form the final estimator takes (they do not pass through
            the net that computed the weights).

        Returns
        -------
        labels : numpy.ndarray of shape (n_samples,)
        """
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict(X)

    def predict_proba(self, X):
        """Class probabilities from the final estimator, columns as ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            As in :meth:`predict`.

        Returns
        -------
        proba : numpy.ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_proba(X)
