"""Which training rows did L2RW trust? Label-quality scores from the weight history.

Learning to Reweight gives every row of every mini-batch a weight: how much one small
step on that row alone would lower the loss on the trusted ("clean") set, clipped at 0
and normalised to sum to 1 over the batch. Rows whose labels disagree with the clean
set (flipped labels, corrupted targets) get little or no weight, epoch after epoch.
A fitted estimator keeps that record in ``sample_weights_``; the pure functions here
turn it into a score per row and a list of suspects, in the spirit of cleanlab's
functions of the same names (``cleanlab.rank.get_label_quality_scores``,
``cleanlab.filter.find_label_issues``), without any extra fit:

- :func:`relative_weights`: the weights as multiples of the uniform weight;
- :func:`label_quality_scores`: one score per training row, low means suspect: the
  share of epochs in which the row got a positive weight (the default,
  ``method="positive_share"``: only the sign of each weight counts), or its mean
  weight relative to uniform (``method="mean_weight"``);
- :func:`find_label_issues`: a boolean mask of suspects, or their indices, most
  suspect first.

They accept a fitted :class:`~sk_l2rw.L2RWClassifier` or
:class:`~sk_l2rw.L2RWRegressor`, a :class:`~sklearn.pipeline.Pipeline` ending in
one, or a fitted search (``GridSearchCV``...) whose ``best_estimator_`` is one of
those. Rows are in the order of ``X`` given to ``fit``.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.exceptions import NotFittedError

from sk_l2rw.validation import is_integer_at_least

__all__ = ["relative_weights", "label_quality_scores", "find_label_issues"]

#: Default threshold of :func:`find_label_issues`: a row is suspect when, over the
#: chosen epochs, it got a positive weight in fewer than half of them
#: (``positive_share``), or less than half the weight of a uniformly weighted row on
#: average (``mean_weight``).
DEFAULT_THRESHOLD = 0.5

_RANKINGS = (None, "score")
METHODS = ("positive_share", "mean_weight")


def final_estimator(estimator):
    """The L2RW net inside ``estimator`` (itself, a Pipeline's last step, a search's best)."""
    seen = set()
    while id(estimator) not in seen:
        seen.add(id(estimator))
        if hasattr(estimator, "_weight_rows_") or hasattr(estimator, "meta_gradient"):
            return estimator
        if hasattr(estimator, "best_estimator_"):
            estimator = estimator.best_estimator_
        elif hasattr(estimator, "steps") and getattr(estimator, "steps"):
            estimator = estimator.steps[-1][1]
        else:
            break
    return estimator


def weight_history(estimator):
    """``(estimator, sample_weights_)`` with clear errors for anything else."""
    net = final_estimator(estimator)
    if not hasattr(type(net), "sample_weights_"):
        if hasattr(net, "estimator") and hasattr(net, "cv"):  # a search, not refitted
            raise NotFittedError(
                f"this {type(net).__name__} has no best_estimator_: fit it (with "
                "refit=True) before asking for label-quality scores")
        raise TypeError(
            "expected a fitted L2RWClassifier or L2RWRegressor (or a Pipeline or "
            f"search ending in one), got {type(net).__name__}, which records no "
            "sample_weights_")
    if not getattr(net, "_weight_rows_", None):
        raise NotFittedError(
            f"this {type(net).__name__} is not fitted yet (or trained for no complete "
            "epoch): call fit before asking for label-quality scores")
    try:
        weights = np.asarray(net.sample_weights_, dtype=np.float64)
    except AttributeError as exc:  # partial_fit on data sets of different sizes
        raise ValueError(f"cannot score the rows: {exc}") from exc
    return net, weights


def _chosen_epochs(estimator, last_epochs):
    """``(net, weights)`` with the weight history cut to the last ``last_epochs`` rows."""
    net, weights = weight_history(estimator)
    n_epochs = weights.shape[0]
    if last_epochs is None:
        return net, weights
    if not is_integer_at_least(last_epochs, 1):
        raise ValueError(
            f"last_epochs must be None or a positive integer, got {last_epochs!r}")
    if last_epochs > n_epochs:
        raise ValueError(
            f"last_epochs={last_epochs} but the estimator recorded only {n_epochs} "
            f"epoch{'s' if n_epochs != 1 else ''} of weights")
    return net, weights[n_epochs - int(last_epochs):]


def _train_batch_size(net):
    """The training batch size the estimator used (``iterator_train__batch_size`` wins)."""
    params = net.get_params_for("iterator_train") if hasattr(net, "get_params_for") else {}
    batch_size = params.get("batch_size", getattr(net, "batch_size", None))
    return batch_size


def relative_weights(estimator, last_epochs=None):
    """Each row's weight in each epoch, as a multiple of the uniform weight.

    The weight a row received times the size of its mini-batch: 1 means the row
    counted as much as under plain (uniformly weighted) training, 0 that it was
    ignored, 3 that it counted three times as much.

    Parameters
    ----------
    estimator : fitted L2RWClassifier or L2RWRegressor
        Or a Pipeline ending in one, or a fitted search whose ``best_estimator_``
        is one of those.
    last_epochs : int or None, default=None
        Keep only this many of the most recent epochs; None keeps all.

    Returns
    -------
    numpy.ndarray of shape (n_chosen_epochs, n_samples)
        NaN where a row did not train in that epoch.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the estimator has not completed an epoch of ``fit``.
    TypeError
        If ``estimator`` is not an L2RW estimator.
    ValueError
        If ``last_epochs`` is not a positive integer up to the number of epochs.

    Notes
    -----
    The batch size is the estimator's training batch size
    (``iterator_train__batch_size`` when set, else ``batch_size``; -1 means one
    batch of all rows), capped at the number of rows that trained in the epoch.
    The record does not say which rows shared a batch, so the last batch of an
    epoch, shorter when the number of rows is not a multiple of the batch size,
    is scaled as if it were full: its ``r`` rows share a total weight of 1, so
    their relative weights are overstated by ``batch_size / r``. With shuffled
    batches a row lands in that batch in about ``r / n_samples`` of the epochs,
    which makes the bias of an average over many epochs small.
    """
    net, weights = _chosen_epochs(estimator, last_epochs)
    trained = np.sum(~np.isnan(weights), axis=1, keepdims=True)
    batch_size = _train_batch_size(net)
    if batch_size is None or batch_size == -1:
        size = trained
    else:
        size = np.minimum(int(batch_size), trained)
    return weights * size


def _check_method(method):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def label_quality_scores(estimator, last_epochs=None, *, method="positive_share"):
    """One score per training row; low means suspect.

    ``method="positive_share"`` (default): the share of the chosen epochs in which
    the row got a positive weight, i.e. in which its gradient agreed with the clean
    set's. It uses only the *sign* of each weight, not its size (see Notes); 0.5
    means the clean set agreed with the row as often as not.

    ``method="mean_weight"``: the row's mean weight relative to uniform over the
    chosen epochs (the mean of :func:`relative_weights`), i.e. how much the row
    counted compared with plain, uniformly weighted training. About 1 for a
    typical row; low means L2RW found that learning from the row's label works
    against the clean set, or that the row barely mattered. Under class imbalance
    it shows how much more a minority row counted.

    Epochs in which a row did not train (NaN) are ignored.

    Parameters
    ----------
    estimator : fitted L2RWClassifier or L2RWRegressor
        Or a Pipeline or search around one, as in :func:`relative_weights`.
    last_epochs : int or None, default=None
        Score over only this many of the most recent epochs (None: all). The
        first epochs judge the rows with an untrained model; the later ones with
        a model that already fits the clean set.
    method : {"positive_share", "mean_weight"}, default="positive_share"
        What to average over the epochs: whether the weight was positive, or the
        weight relative to uniform.

    Returns
    -------
    scores : numpy.ndarray of shape (n_samples,)
        Non-negative (``positive_share``: in [0, 1]); NaN for a row that trained
        in none of the chosen epochs. Rows are in the order of ``X`` given to
        ``fit``.

    Raises
    ------
    sklearn.exceptions.NotFittedError, TypeError
        As :func:`relative_weights` does.
    ValueError
        For a bad ``last_epochs`` (as :func:`relative_weights`), or an unknown
        ``method``.

    Notes
    -----
    A row's weight is proportional to how much its gradient agrees with the
    clean set's, so it reflects the size of the gradient as well as its
    direction. A row the model already fits well has a small gradient and gets a
    small weight whatever its label, while a row with a large loss gets a large
    weight in the steps where its gradient happens to agree with the clean
    batch's. The mean weight therefore mixes suspect rows with easy ones, and in
    two-class problems with overlapping classes (or regression with
    direction-less corruption) it can rank corrupted rows *above* intact ones.
    ``positive_share`` drops the size and keeps the direction: a row whose label
    the clean set keeps contradicting gets a positive weight in few epochs, an
    easy intact row in about half or more. In ``benchmarks/label_issues.py`` it
    ranks flipped labels better than the mean weight in all 10 cases (5 data sets,
    2 noises), including the 4 on data sets kept aside while it was chosen, which
    is why it is the default.

    See Also
    --------
    find_label_issues : the rows whose score is low.
    relative_weights : the per-epoch values the mean weight averages (and how the
        last, shorter batch of an epoch is approximated).

    Examples
    --------
    >>> scores = label_quality_scores(net)                  # doctest: +SKIP
    >>> suspects = np.argsort(scores)[:20]                  # doctest: +SKIP
    >>> counted = label_quality_scores(net, method="mean_weight")  # doctest: +SKIP
    """
    _check_method(method)
    if method == "mean_weight":
        values = relative_weights(estimator, last_epochs)
    else:
        _, weights = _chosen_epochs(estimator, last_epochs)
        values = np.where(np.isnan(weights), np.nan, (weights > 0).astype(np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column -> NaN
        return np.nanmean(values, axis=0)


def find_label_issues(estimator, *, last_epochs=None, method="positive_share", threshold=None,
                      n_issues=None, return_indices_ranked_by=None):
    """Flag the training rows L2RW trusted least.

    In the spirit of ``cleanlab.filter.find_label_issues``, from the weights
    recorded during one fit instead of cross-validated probabilities.

    Parameters
    ----------
    estimator : fitted L2RWClassifier or L2RWRegressor
        Or a Pipeline or search around one, as in :func:`relative_weights`.
    last_epochs : int or None, default=None
        Score over only this many of the most recent epochs (see
        :func:`label_quality_scores`).
    method : {"positive_share", "mean_weight"}, default="positive_share"
        The score (see :func:`label_quality_scores`).
    threshold : float or None, default=None
        Flag rows whose score is below this (``numpy.inf`` flags every scored
        row). None (and no ``n_issues``) means ``0.5``: rows that got a positive
        weight in fewer than half of the epochs (``positive_share``), or less
        than half the weight of a uniformly weighted row on average
        (``mean_weight``).
    n_issues : int or None, default=None
        Flag exactly this many rows, those with the lowest scores (ties broken by
        row order). Use it when the number of bad rows is known or estimated.
        Exclusive with ``threshold``.
    return_indices_ranked_by : {None, "score"}, default=None
        None returns a boolean mask; ``"score"`` returns the indices of the
        flagged rows, lowest score (most suspect) first, as cleanlab's
        ``return_indices_ranked_by`` does.

    Returns
    -------
    numpy.ndarray
        A boolean mask of shape (n_samples,), True for a suspect row; or, with
        ``return_indices_ranked_by="score"``, the int64 indices of the rows the
        mask flags, most suspect first. Rows that never trained (NaN score) are
        never flagged.

    Raises
    ------
    sklearn.exceptions.NotFittedError, TypeError
        As :func:`relative_weights` does.
    ValueError
        For a bad ``last_epochs``, ``method``, ``threshold``, ``n_issues`` or
        ``return_indices_ranked_by``, or both ``threshold`` and ``n_issues``.

    See Also
    --------
    label_quality_scores : the scores compared with the threshold.

    Examples
    --------
    >>> mask = find_label_issues(net)                        # doctest: +SKIP
    >>> worst = find_label_issues(net, n_issues=50,
    ...                           return_indices_ranked_by="score")  # doctest: +SKIP
    """
    _check_method(method)
    if return_indices_ranked_by not in _RANKINGS:
        raise ValueError(
            f"return_indices_ranked_by must be None or 'score', got "
            f"{return_indices_ranked_by!r}")
    if threshold is not None and n_issues is not None:
        raise ValueError("give threshold or n_issues, not both")
    if threshold is not None:
        if (isinstance(threshold, bool) or not isinstance(threshold, numbers.Real)
                or np.isnan(threshold)):
            raise ValueError(f"threshold must be a real number, got {threshold!r}")
    if n_issues is not None:
        if not is_integer_at_least(n_issues, 0):
            raise ValueError(
                f"n_issues must be None or a non-negative integer, got {n_issues!r}")
    scores = label_quality_scores(estimator, last_epochs, method=method)
    valid = ~np.isnan(scores)
    # Stable sort with NaN (never trained) last: ties keep row order.
    order = np.argsort(np.where(valid, scores, np.inf), kind="stable")
    order = order[valid[order]]
    if n_issues is not None:
        if n_issues > len(order):
            raise ValueError(
                f"n_issues={n_issues} but only {len(order)} rows have a score")
        flagged = order[:int(n_issues)]
    else:
        cut = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        flagged = order[scores[order] < cut]
    if return_indices_ranked_by == "score":
        return flagged.astype(np.int64)
    mask = np.zeros(len(scores), dtype=bool)
    mask[flagged] = True
    return mask
