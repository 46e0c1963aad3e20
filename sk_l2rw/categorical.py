"""Categorical columns of a DataFrame as integer codes for an embedding.

Pure functions: which columns are categorical (:func:`categorical_columns`), the
levels learned from the training rows (:func:`learn_levels`), and a frame split into
the numeric block and the codes (:func:`encode_frame`), which the module receives as
``forward(X=numeric, categories=codes)``.

Codes are ``MISSING`` (0) for a missing value, ``UNKNOWN`` (1) for a level the
training rows did not have, and ``2 + k`` for the k-th learned level, so column j
needs an embedding table of ``len(levels[j]) + 2`` rows.
"""

import numpy as np
import pandas as pd

__all__ = ["MISSING", "UNKNOWN", "MAX_LEVELS", "CATEGORIES_KEY", "NUMERIC_KEY",
           "categorical_columns", "learn_levels", "encode_frame", "check_categorical_features"]

#: The code of a missing value (None, NaN, pd.NA) in any categorical column.
MISSING = 0

#: The code of a level the training rows did not have.
UNKNOWN = 1

#: More levels than this in a column picked by dtype is taken for an identifier
#: (a name, an id, free text) rather than a category, unless the column is named
#: in ``categorical_features``.
MAX_LEVELS = 10_000

#: The keyword arguments of ``forward`` that receive the numeric block and the codes.
NUMERIC_KEY, CATEGORIES_KEY = "X", "categories"


def _is_frame(X):
    return isinstance(X, pd.DataFrame)


def _by_dtype(dtype):
    """Category, string and object columns are categorical; numbers and bools not."""
    return (isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype)
            or pd.api.types.is_object_dtype(dtype))


def check_categorical_features(value):
    """Validate the ``categorical_features`` parameter: "from_dtype", None, or a
    list of column names."""
    if value is None or (isinstance(value, str) and value == "from_dtype"):
        return value
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise ValueError(
            "categorical_features must be 'from_dtype', None or a list of column "
            f"names; got {value!r}")
    names = list(value)
    if not all(isinstance(name, str) for name in names):
        raise TypeError(f"categorical_features must name columns by string; got {names!r}")
    return names


def categorical_columns(X, categorical_features):
    """The categorical columns of ``X``, in the frame's order.

    Parameters
    ----------
    X : object
        Only a pandas DataFrame has categorical columns.
    categorical_features : "from_dtype", None or list of str
        "from_dtype": columns of ``category``, string or object dtype. None: none
        (non-numeric columns are then an error of the caller). A list: exactly these
        columns, whatever their dtype.

    Returns
    -------
    list of str
    """
    categorical_features = check_categorical_features(categorical_features)
    if categorical_features is None or not _is_frame(X):
        if isinstance(categorical_features, list) and categorical_features:
            raise ValueError(
                f"categorical_features names columns {categorical_features}, but X is "
                f"a {type(X).__name__}, not a DataFrame with column names")
        return []
    if categorical_features == "from_dtype":
        columns = [str(c) for c, dtype in X.dtypes.items() if _by_dtype(dtype)]
    else:
        missing = [c for c in categorical_features if c not in X.columns]
        if missing:
            raise ValueError(f"categorical_features names columns {missing} that X does "
                             f"not have (its columns: {[str(c) for c in X.columns]})")
        wanted = set(categorical_features)
        columns = [str(c) for c in X.columns if c in wanted]
    unnamed = [c for c in X.columns if not isinstance(c, str)]
    if columns and unnamed:  # the columns are looked up, and checked, by name
        raise ValueError(
            f"X has categorical columns {columns}, so its columns are matched by name, "
            f"but some names are not strings: {unnamed}; name every column by a "
            "string (e.g. X.columns = X.columns.astype(str))")
    return columns


def learn_levels(X, columns, *, explicit=(), max_levels=MAX_LEVELS):
    """Sorted distinct non-missing values of each categorical column.

    Parameters
    ----------
    X : pandas.DataFrame
        The training rows.
    columns : list of str
    explicit : collection of str
        Columns named by the user, exempt from ``max_levels``.
    max_levels : int

    Returns
    -------
    dict of str to numpy.ndarray
    """
    levels = {}
    for column in columns:
        values = X[column]
        present = pd.unique(values[values.notna()].to_numpy(dtype=object))
        if len(present) > max_levels and column not in explicit:
            raise ValueError(
                f"the categorical column {column!r} has {len(present):,} levels (more "
                f"than {max_levels:,}): it looks like an identifier, not a category. "
                "Drop it, encode it yourself, or name it in categorical_features to "
                "embed it anyway")
        try:
            present = np.array(sorted(present), dtype=object)
        except TypeError:  # mixed types (e.g. 1 and "a"): order by their text
            present = np.array(sorted(present, key=str), dtype=object)
        levels[column] = present
    return levels


def encode_frame(X, levels, *, dtype, name="X"):
    """Split a frame into its numeric block and the codes of its categorical columns.

    Parameters
    ----------
    X : pandas.DataFrame
        Must hold every column of ``levels``; the others must be numeric.
    levels : dict of str to numpy.ndarray
        From :func:`learn_levels`, in the column order the codes take.
    dtype : numpy dtype
        Of the numeric block.
    name : str
        How to call ``X`` in error messages.

    Returns
    -------
    dict
        ``{NUMERIC_KEY: array (n, n_numeric) of dtype, CATEGORIES_KEY: int64 array
        (n, n_categorical)}``.
    """
    if not _is_frame(X):
        raise ValueError(
            f"{name} is a {type(X).__name__}, but the estimator was fitted on a "
            f"DataFrame with categorical columns {list(levels)}: give a DataFrame "
            "with the same columns")
    absent = [c for c in levels if c not in X.columns]
    if absent:
        raise ValueError(f"{name} lacks the categorical columns {absent}")
    if not len(X):  # else predict would fail later, in numpy's words
        raise ValueError(f"{name} has no rows")
    numeric = X.drop(columns=list(levels))
    text = [str(c) for c, d in numeric.dtypes.items()
            if not (pd.api.types.is_numeric_dtype(d) or pd.api.types.is_bool_dtype(d))]
    if text:
        raise ValueError(
            f"{name} has non-numeric columns {text} that are not categorical: name "
            "them in categorical_features, or encode them first")
    block = numeric.to_numpy(dtype=dtype, na_value=np.nan) if numeric.shape[1] else \
        np.empty((len(X), 0), dtype=dtype)
    if not np.all(np.isfinite(block)):
        bad = [str(c) for c, ok in zip(numeric.columns, np.isfinite(block).all(0)) if not ok]
        raise ValueError(f"{name} has NaN or infinity in the numeric columns {bad}; "
                         "impute them first (e.g. SimpleImputer in a Pipeline)")
    codes = np.empty((len(X), len(levels)), dtype=np.int64)
    for j, (column, known) in enumerate(levels.items()):
        values = X[column]
        missing = values.isna().to_numpy()
        index = pd.Index(known, dtype=object).get_indexer(values.to_numpy(dtype=object))
        codes[:, j] = np.where(missing, MISSING, np.where(index < 0, UNKNOWN, index + 2))
    return {NUMERIC_KEY: block, CATEGORIES_KEY: codes}
