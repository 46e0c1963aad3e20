"""Pictures of what L2RW did: weight history, weight distributions, training curves.

Every function takes a fitted :class:`~sk_l2rw.L2RWClassifier` or
:class:`~sk_l2rw.L2RWRegressor` (or a Pipeline or fitted search ending in one),
draws on the matplotlib ``ax`` given (a new figure when None) and returns that axes.

matplotlib is an optional dependency, imported only when a function is called::

    pip install sk-l2rw[plot]
"""

from __future__ import annotations

import numpy as np

from sk_l2rw.diagnostics import (
    DEFAULT_THRESHOLD,
    label_quality_scores,
    relative_weights,
    weight_history,
)

__all__ = ["plot_weight_history", "plot_weight_distributions", "plot_training_curves"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "sk_l2rw.plotting needs matplotlib, an optional dependency: "
            "pip install sk-l2rw[plot]  (or pip install matplotlib)") from exc
    return plt


def _axes(ax, figsize):
    if ax is None:
        _, ax = _pyplot().subplots(figsize=figsize)
    else:
        _pyplot()
    return ax


def plot_weight_history(estimator, *, ax=None, last_epochs=None, method="positive_share",
                        max_rows=2000, vmax=None, cmap="viridis", colorbar=True):
    """Heat map of every row's weight in every epoch, rows sorted by score.

    Rows run down, lowest :func:`~sk_l2rw.diagnostics.label_quality_scores`
    (most suspect) at the top; epochs run across. The colour is the weight
    relative to uniform (:func:`~sk_l2rw.diagnostics.relative_weights`); rows that
    did not train in an epoch are left blank.

    Parameters
    ----------
    estimator : fitted L2RWClassifier or L2RWRegressor
        Or a Pipeline or fitted search ending in one.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when None.
    last_epochs : int or None, default=None
        Show and score only this many of the most recent epochs.
    method : {"positive_share", "mean_weight"}, default="positive_share"
        The score the rows are sorted by (see
        :func:`~sk_l2rw.diagnostics.label_quality_scores`).
    max_rows : int, default=2000
        With more training rows, show this many, evenly spaced along the sorted
        order (every quantile of the score is still represented).
    vmax : float or None, default=None
        Top of the colour scale (larger weights get its colour); None takes the
        95th percentile of the weights shown, at least 1 (a few rows can take
        many times the uniform weight).
    cmap : str or matplotlib colormap, default="viridis"
    colorbar : bool, default=True
        Add a colour bar next to ``ax``.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax, (6, 4))
    relative = relative_weights(estimator, last_epochs)
    scores = label_quality_scores(estimator, last_epochs, method=method)
    order = np.argsort(np.where(np.isnan(scores), np.inf, scores), kind="stable")
    if len(order) > max_rows:
        order = order[np.linspace(0, len(order) - 1, max_rows).round().astype(int)]
    image = relative[:, order].T
    finite = image[np.isfinite(image)]
    if vmax is None:
        vmax = max(float(np.percentile(finite, 95)), 1.0) if finite.size else 1.0
    import matplotlib as mpl

    cmap = mpl.colormaps[cmap] if isinstance(cmap, str) else cmap
    cmap = cmap.with_extremes(bad="white")
    n_epochs = image.shape[1]
    first = _n_epochs(estimator) - n_epochs + 1
    shown = ax.imshow(np.ma.masked_invalid(image), aspect="auto", interpolation="nearest",
                      cmap=cmap, vmin=0, vmax=max(vmax, 1e-12),
                      extent=(first - 0.5, first + n_epochs - 0.5, len(order), 0))
    if colorbar:
        ax.figure.colorbar(shown, ax=ax, label="weight relative to uniform")
    ax.set_xlabel("epoch")
    ax.set_ylabel(("rows, lowest mean weight at the top" if method == "mean_weight"
                   else "rows, lowest positive share at the top")
                  + (f" ({len(order)} of {len(scores)})" if len(order) < len(scores) else ""))
    ax.set_title("L2RW weight history")
    return ax


def plot_weight_distributions(estimator, mask=None, *, ax=None, last_epochs=None,
                              method="positive_share", bins=40, density=True,
                              labels=("flipped", "intact"), threshold=True):
    """Histograms of the rows' scores, split by a known truth.

    By default the score is the share of epochs in which the row's weight was
    positive; with ``method="mean_weight"`` its mean weight relative to uniform
    (see :func:`~sk_l2rw.diagnostics.label_quality_scores`).

    Parameters
    ----------
    estimator : fitted L2RWClassifier or L2RWRegressor
        Or a Pipeline or fitted search ending in one.
    mask : array-like of bool, shape (n_samples,), optional
        True for the rows known to be corrupted (e.g. the ``flipped_mask`` of
        :func:`sk_l2rw.noise.flip_labels`). None draws one histogram of all rows.
    ax : matplotlib.axes.Axes, optional
    last_epochs : int or None, default=None
        Score over only this many of the most recent epochs.
    method : {"positive_share", "mean_weight"}, default="positive_share"
    bins : int, default=40
        Mean weights above the 99th percentile are counted in the last bin. For
        ``positive_share`` over at most 100 epochs, one bin per possible share
        instead.
    density : bool, default=True
        Normalise each histogram to unit area, so that a small group (e.g. 10% of
        flipped rows) is as visible as a large one; False counts rows.
    labels : (str, str), default=("flipped", "intact")
        Legend names of the rows where ``mask`` is True and False.
    threshold : bool, default=True
        Mark the default threshold of :func:`~sk_l2rw.diagnostics.find_label_issues`.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If ``mask`` is not one boolean per training row.
    """
    ax = _axes(ax, (6, 3.5))
    scores = label_quality_scores(estimator, last_epochs, method=method)
    scored = ~np.isnan(scores)
    finite = scores[scored]
    top = float(np.percentile(finite, 99)) if finite.size else 1.0
    edges = np.linspace(0.0, max(top, 1.0), bins + 1)
    scores = np.minimum(scores, edges[-1])  # the long tail goes into the last bin
    if method == "positive_share":
        # shares are k / n_epochs: one bin per possible value (up to 100 epochs),
        # else bins of equal width would catch unequal numbers of those values
        n = weight_history(estimator)[1].shape[0] if last_epochs is None else last_epochs
        if n <= 100:
            edges = np.linspace(-0.5 / n, 1 + 0.5 / n, n + 2)
    if mask is None:
        ax.hist(scores[scored], bins=edges, color="C0", alpha=0.8, density=density,
                label="all rows")
    else:
        mask = np.asarray(mask)
        if mask.shape != scores.shape or mask.dtype != bool:
            raise ValueError(
                f"mask must be a boolean array of shape {scores.shape} (one value per "
                f"training row), got {mask.dtype} of shape {mask.shape}")
        for part, name, colour in ((~mask, labels[1], "C0"), (mask, labels[0], "C3")):
            ax.hist(scores[part & scored], bins=edges, alpha=0.55, color=colour,
                    density=density, label=f"{name} ({part.sum()} rows)")
    if threshold:
        ax.axvline(DEFAULT_THRESHOLD, color="k", ls="--", lw=1,
                   label=f"find_label_issues threshold ({DEFAULT_THRESHOLD})")
    ax.set_xlabel("mean weight relative to uniform" if method == "mean_weight"
                  else "share of epochs with a positive weight")
    ax.set_ylabel("density" if density else "rows")
    ax.set_title("Weights L2RW gave the training rows")
    ax.legend(fontsize="small")
    return ax


def _n_epochs(estimator):
    return weight_history(estimator)[1].shape[0]


def plot_training_curves(estimator, *, ax=None):
    """Clean loss (left axis), share of zero weights and effective sample size (right).

    Parameters
    ----------
    estimator : fitted L2RWClassifier or L2RWRegressor
        Or a Pipeline or fitted search ending in one.
    ax : matplotlib.axes.Axes, optional
        Carries the clean loss; a twin axes (``ax.right_ax``) carries the shares.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``; its twin is ``ax.right_ax``.

    Raises
    ------
    ValueError
        If the history has no ``clean_loss`` (the estimator trained without a
        clean set).
    """
    net, _ = weight_history(estimator)
    history = net.history
    if not any("clean_loss" in row for row in history):
        raise ValueError("the history has no clean_loss: the estimator trained without "
                         "a clean set (plain training)")
    ax = _axes(ax, (6, 3.5))
    epochs = [row["epoch"] for row in history if "clean_loss" in row]
    clean = [row["clean_loss"] for row in history if "clean_loss" in row]
    lines = ax.plot(epochs, clean, color="C0", marker=".", label="clean loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean loss on the clean set")
    right = ax.twinx()
    for key, name, colour in (("weight_zero_frac", "share of rows with weight 0", "C3"),
                              ("weight_ess", "effective sample size / batch", "C2")):
        rows = [row for row in history if key in row]
        if rows:
            lines += right.plot([r["epoch"] for r in rows], [r[key] for r in rows],
                                color=colour, ls="--", label=name)
    right.set_ylim(0, 1)
    right.set_ylabel("share")
    ax.legend(lines, [line.get_label() for line in lines], fontsize="small", loc="best")
    ax.set_title("L2RW training")
    ax.right_ax = right
    return ax
