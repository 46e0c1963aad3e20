"""Corrupt a clean data set the way the L2RW paper does.

Three small, pure functions used by the benchmarks and handy in notebooks:

- :func:`flip_labels` injects label noise (uniform, background or pair flips);
- :func:`make_imbalanced` builds the paper's two-class imbalance setting
  (MNIST 4 vs 9 with a chosen majority proportion);
- :func:`split_clean` holds out the small, balanced, trusted set that L2RW
  needs.

None of them modifies its inputs, and all randomness goes through
:func:`sklearn.utils.check_random_state`, so an ``int`` seed makes every
result reproducible.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils import _safe_indexing, check_random_state

from sk_l2rw.validation import is_integer_at_least

__all__ = ["flip_labels", "make_imbalanced", "split_clean"]

_FLIP_KINDS = ("uniform", "background", "pair")


def _check_rate(rate):
    # bool is an Integral in Python; a flag passed by mistake should not
    # silently become a rate of 0 or 1.
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise ValueError(f"rate must be a real number in [0, 1], got {rate!r}.")
    if not 0.0 <= float(rate) <= 1.0:  # also rejects NaN
        raise ValueError(f"rate must be in [0, 1], got {rate!r}.")
    return float(rate)


def _as_label_array(y, name="y"):
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {y.shape}.")
    return y


def _count_to_flip(rate, n_eligible):
    # Python's round() rounds halves to even; stated in the docstring so the
    # exact count is predictable.
    return int(round(rate * n_eligible))


def flip_labels(y, rate, kind="uniform", *, background_class=None, random_state=None):
    """Return a copy of ``y`` with a fixed fraction of labels corrupted.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels of any type numpy can sort (ints, strings, ...).
    rate : float in [0, 1]
        Fraction of the eligible rows whose label is changed. Exactly
        ``round(rate * n_eligible)`` rows are flipped (Python's ``round``,
        halves go to the even integer), chosen uniformly at random *without
        replacement*. Flipping an exact count rather than flipping each row
        independently with probability ``rate`` keeps the realised noise
        level equal to the requested one, which makes small experiments
        comparable across seeds.
    kind : {"uniform", "background", "pair"}, default="uniform"
        How a flipped label is replaced, with the ``K`` classes taken in
        sorted order:

        - ``"uniform"`` (the paper's UniformFlip): a uniformly random class
          *other than* the true one. Every row is eligible.
        - ``"background"`` (the paper's BackgroundFlip): the single class
          ``background_class``. Only rows not already in that class are
          eligible, so every flipped row really changes.
        - ``"pair"``: class ``k`` becomes class ``k + 1`` (mod ``K``). Every
          row is eligible.
    background_class : label, default=None
        Target class of ``kind="background"``; must be one of the labels in
        ``y``. When None, one class is drawn with ``random_state``. Ignored
        by the other kinds.
    random_state : int, RandomState instance or None, default=None
        Seed or generator for every random choice.

    Returns
    -------
    y_noisy : ndarray of shape (n_samples,)
        New array with the same dtype as ``np.asarray(y)``.
    flipped_mask : ndarray of bool, shape (n_samples,)
        True exactly where ``y_noisy`` differs from ``y``.

    Raises
    ------
    ValueError
        If ``rate`` is outside [0, 1], ``kind`` is unknown, ``y`` is not
        one-dimensional or holds fewer than two classes, or
        ``background_class`` is not one of the labels.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    >>> y_noisy, flipped = flip_labels(y, 0.4, random_state=0)
    >>> int(flipped.sum())
    4
    >>> bool(np.all(y_noisy[flipped] != y[flipped]))
    True
    """
    y = _as_label_array(y)
    rate = _check_rate(rate)
    if kind not in _FLIP_KINDS:
        raise ValueError(f"Unknown kind {kind!r}; expected one of {_FLIP_KINDS}.")
    classes, codes = np.unique(y, return_inverse=True)
    n_classes = len(classes)
    if n_classes < 2:
        raise ValueError(
            f"flip_labels needs at least 2 classes in y, got {n_classes}."
        )
    rng = check_random_state(random_state)

    if kind == "background":
        if background_class is None:
            bg_code = int(rng.randint(n_classes))
        else:
            # Compare through Python objects: numpy's elementwise == between
            # e.g. an int array and a str scalar warns instead of answering.
            matches = [i for i, c in enumerate(classes.tolist()) if c == background_class]
            if not matches:
                raise ValueError(
                    f"background_class={background_class!r} is not among the "
                    f"labels of y: {classes.tolist()}."
                )
            bg_code = matches[0]
        eligible = np.flatnonzero(codes != bg_code)
    else:
        eligible = np.arange(len(y))

    n_flip = _count_to_flip(rate, len(eligible))
    chosen = rng.choice(eligible, size=n_flip, replace=False)

    new_codes = codes.copy()
    if kind == "uniform":
        # An offset in 1..K-1 never lands on the true class and reaches
        # every other class with equal probability.
        offsets = rng.randint(1, n_classes, size=n_flip)
        new_codes[chosen] = (codes[chosen] + offsets) % n_classes
    elif kind == "pair":
        new_codes[chosen] = (codes[chosen] + 1) % n_classes
    else:
        new_codes[chosen] = bg_code

    y_noisy = classes[new_codes].astype(y.dtype, copy=False)
    flipped_mask = np.zeros(len(y), dtype=bool)
    flipped_mask[chosen] = True
    return y_noisy, flipped_mask


def _n_rows(X):
    return X.shape[0] if hasattr(X, "shape") else len(X)


def _check_same_length(X, y):
    if _n_rows(X) != len(y):
        raise ValueError(
            f"X and y have different numbers of rows: {_n_rows(X)} != {len(y)}."
        )


def _largest_exact_size(p, n_major_avail, n_minor_avail):
    """Largest n whose split round(p*n) / n - round(p*n) fits the available rows."""
    n_cap = n_major_avail + n_minor_avail
    # The real-valued bound is within a row or two of the answer; rounding
    # of p*n decides the last step, so check a few candidates downwards.
    guess = int(min(n_major_avail / p, n_minor_avail / (1.0 - p), n_cap)) + 2
    for n in range(min(guess, n_cap), 0, -1):
        n_major = int(round(p * n))
        n_minor = n - n_major
        if n_major <= n_major_avail and n_minor <= n_minor_avail:
            return n
    return 0


def make_imbalanced(
    X, y, majority_proportion, classes=(4, 9), *, n_samples=None, random_state=None
):
    """Subsample two classes so that the first one is a fixed majority.

    This is the imbalance setting of the L2RW paper (MNIST, 4 vs 9, up to
    99.5 % of the training rows in the majority class).

    Parameters
    ----------
    X : array-like of shape (n_rows, ...)
        Features: a numpy array, a pandas DataFrame, or anything
        :func:`sklearn.utils._safe_indexing` can index by rows.
    y : array-like of shape (n_rows,)
        Labels.
    majority_proportion : float in (0, 1)
        Fraction of the returned rows that belong to ``classes[0]``. The
        majority count is exactly ``round(majority_proportion * n_samples)``
        (Python's ``round``); the rest belong to ``classes[1]``. Values
        below 0.5 are accepted and make ``classes[0]`` the minority.
    classes : tuple of two labels, default=(4, 9)
        ``(majority, minority)``. Rows of any other class are dropped.
    n_samples : int, default=None
        Total number of rows returned. None means as many as the available
        rows of the two classes allow at this proportion.
    random_state : int, RandomState instance or None, default=None
        Seed or generator for the subsampling and the final shuffle.

    Returns
    -------
    X_sub : same type as X, shape (n_samples, ...)
    y_sub : same type as y, shape (n_samples,)
        The selected rows in random order, so that consecutive mini-batches
        see both classes.

    Raises
    ------
    ValueError
        If the proportion is not strictly between 0 and 1, ``classes`` is
        not two distinct labels present in ``y``, X and y differ in length,
        or there are not enough rows of a class for ``n_samples`` (or so
        few that the minority class would get no row at all).
    """
    y_arr = _as_label_array(y)
    _check_same_length(X, y_arr)
    if isinstance(majority_proportion, bool) or not isinstance(
        majority_proportion, numbers.Real
    ):
        raise ValueError(
            f"majority_proportion must be a real number, got {majority_proportion!r}."
        )
    p = float(majority_proportion)
    if not 0.0 < p < 1.0:
        raise ValueError(f"majority_proportion must be in (0, 1), got {majority_proportion!r}.")
    classes = tuple(classes)
    if len(classes) != 2 or classes[0] == classes[1]:
        raise ValueError(f"classes must be two distinct labels, got {classes!r}.")
    present = set(np.unique(y_arr).tolist())
    missing = [c for c in classes if c not in present]
    if missing:
        raise ValueError(f"classes {missing} are not present in y (labels: {sorted(present)}).")

    rows_major = np.flatnonzero(y_arr == classes[0])
    rows_minor = np.flatnonzero(y_arr == classes[1])
    if n_samples is None:
        n = _largest_exact_size(p, len(rows_major), len(rows_minor))
    else:
        if not is_integer_at_least(n_samples, 2):
            raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}.")
        n = int(n_samples)
    n_major = int(round(p * n))
    n_minor = n - n_major
    if n_major > len(rows_major) or n_minor > len(rows_minor):
        raise ValueError(
            f"Not enough rows for n_samples={n} at majority_proportion={p}: need "
            f"{n_major} of class {classes[0]!r} (have {len(rows_major)}) and "
            f"{n_minor} of class {classes[1]!r} (have {len(rows_minor)})."
        )
    if n_major == 0 or n_minor == 0:
        raise ValueError(
            f"n_samples={n} at majority_proportion={p} leaves class "
            f"{classes[1] if n_minor == 0 else classes[0]!r} with no row; "
            "use more rows or a proportion further from 0 and 1."
        )

    rng = check_random_state(random_state)
    picked = np.concatenate(
        [
            rng.choice(rows_major, size=n_major, replace=False),
            rng.choice(rows_minor, size=n_minor, replace=False),
        ]
    )
    rng.shuffle(picked)
    return _safe_indexing(X, picked), _safe_indexing(y, picked)


def split_clean(X, y, n_per_class, random_state=None):
    """Hold out a small balanced set, the trusted "clean" set of L2RW.

    Parameters
    ----------
    X : array-like of shape (n_rows, ...)
        Features: a numpy array, a pandas DataFrame, or anything
        :func:`sklearn.utils._safe_indexing` can index by rows (DataFrames
        are indexed by position, whatever their index).
    y : array-like of shape (n_rows,)
        Labels; these are the labels the clean set is balanced on, so pass
        the *true* labels, before any noise is injected.
    n_per_class : int >= 1
        Number of rows of each class moved to the clean set.
    random_state : int, RandomState instance or None, default=None
        Seed or generator for the choice of rows.

    Returns
    -------
    X_rest, y_rest : same types as X and y
        The rows not held out, in their original order.
    X_clean, y_clean : same types as X and y
        ``n_per_class`` rows of every class, in their original order.

    Raises
    ------
    ValueError
        If ``n_per_class`` is not a positive integer, X and y differ in
        length, or some class has ``n_per_class`` rows or fewer (it would
        vanish from the rest).
    """
    if not is_integer_at_least(n_per_class, 1):
        raise ValueError(f"n_per_class must be a positive integer, got {n_per_class!r}.")
    y_arr = _as_label_array(y)
    _check_same_length(X, y_arr)
    classes, codes, counts = np.unique(y_arr, return_inverse=True, return_counts=True)
    too_small = [c for c, k in zip(classes.tolist(), counts) if k <= n_per_class]
    if too_small:
        raise ValueError(
            f"Every class needs more than n_per_class={n_per_class} rows; "
            f"classes {too_small} have too few."
        )

    rng = check_random_state(random_state)
    clean = np.zeros(len(y_arr), dtype=bool)
    for code in range(len(classes)):
        rows = np.flatnonzero(codes == code)
        clean[rng.choice(rows, size=n_per_class, replace=False)] = True
    clean_idx = np.flatnonzero(clean)
    rest_idx = np.flatnonzero(~clean)
    return (
        _safe_indexing(X, rest_idx),
        _safe_indexing(y, rest_idx),
        _safe_indexing(X, clean_idx),
        _safe_indexing(y, clean_idx),
    )
