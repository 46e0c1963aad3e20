"""Input checks for L2RW estimators: pure functions, run before any training.

Every check raises a ``ValueError`` (or ``TypeError``) whose message names the
problem, so that a bad call never reaches the module and never touches a fitted model.
"""

import functools
import numbers
import warnings
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils import check_array, column_or_1d
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import validate_data
from torch.utils.data import default_collate

from sk_l2rw.categorical import (
    NUMERIC_KEY,
    categorical_columns,
    check_categorical_features,
    encode_frame,
    learn_levels,
)
from sk_l2rw.data import n_rows, sparse_tensor, take_rows
from sk_l2rw.exceptions import (CleanTargetScaleWarning, MissingClassesWarning,
                                NoCleanSetWarning)
from sklearn.utils.validation import _get_feature_names

__all__ = [
    "META_GRADIENTS",
    "check_meta_gradient",
    "check_clean_batch_size",
    "check_train_on_clean",
    "check_batch_size",
    "check_max_epochs",
    "check_lr",
    "check_bool",
    "check_verbose",
    "check_train_split",
    "check_random_state",
    "check_device",
    "check_predict_nonlinearity",
    "check_row_shape",
    "check_clean_class_weight",
    "clean_class_weights",
    "check_features",
    "check_sparse_features",
    "check_feature_dict",
    "is_dict_input",
    "check_same_keys",
    "check_labels",
    "check_consistent_rows",
    "encode_labels",
    "warn_missing_classes",
    "codes_for_clean_labels",
    "numpy_dtype",
    "is_integer_at_least",
]

META_GRADIENTS = ("auto", "ghost", "jvp", "reference")


def is_integer_at_least(value, minimum):
    """Whether ``value`` is an integer (not a bool) of at least ``minimum``."""
    return (not isinstance(value, bool) and isinstance(value, numbers.Integral)
            and value >= minimum)


def check_meta_gradient(value):
    """Validate the ``meta_gradient`` parameter."""
    if value not in META_GRADIENTS:
        raise ValueError(
            f"meta_gradient must be one of {', '.join(map(repr, META_GRADIENTS))}; "
            f"got {value!r}")
    return value


def check_clean_batch_size(value):
    """Validate ``clean_batch_size``: None or a positive integer."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"clean_batch_size must be None or a positive int; got {value!r}")
    if value <= 0:
        raise ValueError(f"clean_batch_size must be a positive int; got {value}")
    return int(value)


def check_train_on_clean(value):
    """Validate ``train_on_clean``: a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"train_on_clean must be True or False; got {value!r}")
    return bool(value)


def check_batch_size(value, name="batch_size"):
    """Validate a batch size: a positive int, or -1 (every row in one batch).

    Parameters
    ----------
    value : object
    name : str
        The parameter's name, for the message (``"iterator_train__batch_size"``...).

    Returns
    -------
    int
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, or -1 for one batch of all "
                        f"rows; got {value!r}")
    if value < 1 and value != -1:
        raise ValueError(f"{name} must be a positive int, or -1 for one batch of all "
                         f"rows; got {value}")
    return int(value)


def check_max_epochs(value, name="max_epochs"):
    """Validate ``max_epochs``: an int of at least 0 (0 trains nothing, as in skorch)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative int; got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative int; got {value}")
    return int(value)


def check_lr(value, name="lr"):
    """Validate a learning rate: a finite number above 0.

    L2RW needs it above 0: it scales every row's meta-gradient, so 0 would give
    every row weight 0 and a negative rate would reward the rows that raise the
    clean loss. A one-element tensor (which torch's optimizers accept) counts as
    its number.
    """
    if torch.is_tensor(value) and value.numel() == 1 and value.is_floating_point():
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number; got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number above 0; got {value}")
    return value


def check_bool(value, name):
    """Validate a flag (``warm_start``, ``compile``, ``iterator_train__shuffle``...)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def check_verbose(value, name="verbose"):
    """Validate ``verbose``: an int of at least 0 (or a bool)."""
    if not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative int; got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative int; got {value}")
    return value


def check_train_split(value, name="train_split"):
    """Validate ``train_split``: None (or False) for no split, or a callable such as
    ``skorch.dataset.ValidSplit``."""
    if value is None or value is False or callable(value):
        return value
    raise TypeError(f"{name} must be None or a callable such as "
                    f"skorch.dataset.ValidSplit(5); got {value!r}")


def check_random_state(value, name="random_state"):
    """Validate ``random_state``: None, an int of at least 0, or a RandomState."""
    if value is None or isinstance(value, np.random.RandomState):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be None, a non-negative int or a "
                        f"numpy.random.RandomState; got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative int; got {value}")
    return value


def check_device(value, name="device"):
    """Validate ``device``: "auto", or a device torch knows (a CUDA one only where
    CUDA is available)."""
    if isinstance(value, str) and value == "auto":
        return value
    if not isinstance(value, (str, torch.device)):
        raise TypeError(f"{name} must be 'auto', a str such as 'cpu' or 'cuda:0', or a "
                        f"torch.device; got {value!r}")
    try:
        device = torch.device(value)
    except RuntimeError as exc:
        raise ValueError(f"{name}={value!r} is not a device torch knows: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}={value!r} but CUDA is not available here; use "
                         "device='auto' (CUDA when there is one, else the CPU)")
    return value


def check_predict_nonlinearity(value, name="predict_nonlinearity"):
    """Validate ``predict_nonlinearity``: "auto", None or a callable (as skorch)."""
    if (isinstance(value, str) and value == "auto") or value is None or callable(value):
        return value
    raise TypeError(f"{name} must be 'auto', None or a callable; got {value!r}")


def check_row_shape(row_shape, fitted, *, name="X", owner="the estimator"):
    """Raise when rows do not have the shape of the rows an estimator was fitted on.

    Parameters
    ----------
    row_shape : tuple or dict of str to tuple
        The shape of one row of ``name`` (of each input, for a dict X).
    fitted : tuple or dict of str to tuple
        The same for the X of the fit.
    name : str
    owner : str
        How to call the estimator in the message.
    """
    if row_shape == fitted:
        return

    def describe(shape):
        if isinstance(shape, Mapping):
            shapes = {key: tuple(value) for key, value in shape.items()}
            return f"a dict of inputs with rows of shapes {shapes}"
        return f"rows of shape {tuple(shape)}"

    raise ValueError(f"{name} has {describe(row_shape)}, but {owner} was fitted on "
                     f"{describe(fitted)}; give rows of the fitted shape")


def check_clean_class_weight(value):
    """Validate the form of ``clean_class_weight``: None, "balanced" or a dict of
    finite non-negative numbers (which labels it names is checked against the clean
    set by :func:`clean_class_weights`)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value != "balanced":
            raise ValueError(
                "clean_class_weight must be None, 'balanced' or a dict label -> weight; "
                f"got {value!r}")
        return value
    if not isinstance(value, Mapping):
        raise TypeError(
            "clean_class_weight must be None, 'balanced' or a dict label -> weight; "
            f"got {type(value).__name__}")
    for label, weight in value.items():
        if (isinstance(weight, (bool, np.bool_))
                or not isinstance(weight, (int, float, np.integer, np.floating))):
            raise TypeError(f"clean_class_weight[{label!r}] must be a number; "
                            f"got {weight!r}")
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(
                f"clean_class_weight[{label!r}] is {weight}: weights must be finite "
                "and non-negative")
    return value


def clean_class_weights(class_weight, y_clean):
    """Per-row weights of the clean set from ``clean_class_weight``.

    Parameters
    ----------
    class_weight : None, "balanced" or dict
        None: every clean row counts the same. ``"balanced"``: class k counts
        ``n / (K * n_k)`` over the clean labels, as scikit-learn's
        ``class_weight="balanced"``. A dict maps labels to non-negative finite
        weights; labels it does not name weigh 1.
    y_clean : numpy.ndarray of shape (m,)
        The clean labels, as given (before encoding).

    Returns
    -------
    numpy.ndarray of shape (m,) or None
        Float64 weights with mean 1 over the clean set (only their ratios matter),
        or None for ``class_weight=None``.
    """
    class_weight = check_clean_class_weight(class_weight)
    if class_weight is None:
        return None
    present = np.unique(y_clean)
    if isinstance(class_weight, str):
        per_class = dict(zip(present.tolist(), compute_class_weight(
            "balanced", classes=present, y=y_clean).tolist()))
    else:
        unknown = [label for label in class_weight if not np.isin(label, present).any()]
        if unknown:
            raise ValueError(
                f"clean_class_weight names labels {unknown} that the clean set does not "
                f"contain (its labels: {present.tolist()})")
        per_class = {label: float(weight) for label, weight in class_weight.items()}
    weights = np.ones(len(y_clean), dtype=np.float64)
    for label, weight in per_class.items():
        weights[y_clean == label] = weight
    if not weights.any():
        raise ValueError(
            "clean_class_weight gives every row of the clean set weight 0: the clean "
            "set would say nothing")
    return weights / weights.mean()


def numpy_dtype(torch_dtype):
    """The numpy dtype that holds ``torch_dtype`` without loss (float32 for bfloat16)."""
    if torch_dtype == torch.bfloat16:
        return np.dtype(np.float32)
    return torch.empty((), dtype=torch_dtype).numpy().dtype


def check_features(X, *, dtype, name="X"):
    """Validate a feature array: finite numbers, at least one row, 2-D or more.

    Parameters
    ----------
    X : array-like, DataFrame or torch.Tensor
    dtype : numpy dtype
        The module's dtype: the single conversion X gets.
    name : str
        How to call X in error messages ("X", "the clean set X_val"...).

    Returns
    -------
    X : numpy.ndarray
    feature_names : numpy.ndarray or None
        Column names of a DataFrame with string column names.
    """
    if torch.is_tensor(X):
        X = X.detach().cpu().numpy()
    if sp.issparse(X):
        return check_sparse_features(X, dtype=dtype, name=name), None
    feature_names = _get_feature_names(X)
    if hasattr(X, "dtypes") and hasattr(X.dtypes, "__iter__"):
        # Numbers and bools, as a frame with categorical columns takes them
        # (sk_l2rw.categorical.encode_frame).
        text = [str(col) for col, kind in zip(X.columns, X.dtypes)
                if not (np.dtype(kind).kind in "biufc"
                        if isinstance(kind, np.dtype) else kind.kind in "biufc")]
        if text:
            raise ValueError(
                f"{name} has non-numeric columns {text}: encode them first, e.g. with "
                "a ColumnTransformer(OneHotEncoder) in a Pipeline before the estimator")
    try:
        X = check_array(X, dtype=dtype, allow_nd=True, ensure_all_finite=True,
                        input_name=name)
    except ValueError as exc:
        message = str(exc)
        if "could not convert" in message:
            raise ValueError(
                f"{name} holds values that are not numbers ({message}); encode string "
                "columns first, e.g. with a ColumnTransformer(OneHotEncoder)") from exc
        raise
    return X, feature_names


def check_sparse_features(X, *, dtype, name="X"):
    """Validate a scipy sparse feature matrix: 2-D, finite, at least one row.

    Parameters
    ----------
    X : scipy.sparse matrix or array, any format
    dtype : numpy dtype
    name : str

    Returns
    -------
    scipy.sparse.csr_matrix
        In ``dtype``, with canonical (sorted, summed) indices: the layout batches
        are sliced from.
    """
    if X.ndim != 2:
        raise ValueError(f"{name} is a sparse array of {X.ndim} dimensions; sparse "
                         "input must be 2-D (rows x features)")
    X = sp.csr_matrix(X, dtype=dtype)
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    bad = ~np.isfinite(X.data)
    if bad.any():
        # The first stored entry that is NaN or infinite, by its row and column.
        k = int(np.flatnonzero(bad)[0])
        row = int(np.searchsorted(X.indptr, k, side="right") - 1)
        raise ValueError(
            f"{name} (sparse) contains NaN or infinity, first at row {row}, column "
            f"{int(X.indices[k])}")
    if not X.has_canonical_format:
        X.sum_duplicates()
    return X


def is_dict_input(X):
    """Whether ``X`` is skorch's dict of inputs (a scipy DOK matrix is a dict too)."""
    return isinstance(X, Mapping) and not sp.issparse(X)


def check_feature_dict(X, *, dtype, name="X"):
    """Validate a dict of feature arrays (skorch's multi-input form).

    Every value is an array with one row per sample, passed to the module's
    ``forward`` by keyword. Floating values are cast to the module's dtype and must
    be finite; integer and boolean values (category codes for an ``nn.Embedding``)
    stay integers.

    Parameters
    ----------
    X : Mapping of str to array-like
    dtype : numpy dtype
        The module's dtype, for floating values.
    name : str

    Returns
    -------
    dict of str to numpy.ndarray
    """
    if not X:
        raise ValueError(f"{name} is an empty dict: it needs at least one input array")
    out, lengths = {}, {}
    for key, value in X.items():
        label = f"{name}[{key!r}]"
        if torch.is_tensor(value):
            value = value.detach().cpu().numpy()
        if hasattr(value, "dtypes") and hasattr(value, "to_numpy"):
            value = value.to_numpy()
        array = np.asarray(value)
        if array.ndim == 0:
            raise ValueError(f"{label} is a scalar; every value of a dict X must hold "
                             "one row per sample")
        if array.dtype.kind in "biu":
            array = array.astype(np.int64, copy=False)
        elif array.dtype.kind == "f":
            array = array.astype(dtype, copy=False)
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{label} contains NaN or infinity")
        else:
            raise ValueError(
                f"{label} holds values of dtype {array.dtype}: give numbers (floats, or "
                "integer codes for an embedding)")
        out[key] = array
        lengths[key] = len(array)
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"the values of {name} differ in length ({lengths}): every value must have "
            "one row per sample")
    if not next(iter(lengths.values())):
        raise ValueError(f"{name} has no rows")
    return out


def check_same_keys(X, X_clean, *, names=("X", "the clean set")):
    """Raise when two dict inputs do not have the same keys."""
    missing, extra = sorted(set(X) - set(X_clean)), sorted(set(X_clean) - set(X))
    if missing or extra:
        raise ValueError(
            f"{names[1]} must have the keys of {names[0]} ({sorted(X)}); "
            + "; ".join(part for part in (f"missing {missing}" if missing else "",
                                          f"extra {extra}" if extra else "") if part))


def check_labels(y, *, name="y"):
    """Validate a label vector: 1-D, no missing values.

    Returns
    -------
    y : numpy.ndarray of shape (n,)
    """
    if torch.is_tensor(y):
        y = y.detach().cpu().numpy()
    y = column_or_1d(y, warn=True)
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains NaN or infinity")
    if y.dtype.kind == "O" and any(v is None or (isinstance(v, float) and v != v)
                                   for v in y):
        raise ValueError(f"{name} contains missing values (None or NaN)")
    return y


def check_consistent_rows(X, y, *, names=("X", "y")):
    """Raise when ``X`` and ``y`` differ in their number of rows."""
    n = X.shape[0] if sp.issparse(X) else len(X)
    if n != len(y):
        raise ValueError(
            f"{names[0]} has {n} rows but {names[1]} has {len(y)}: they must "
            "have one label per row")


def encode_labels(y, classes, *, name="y"):
    """Encode labels as their positions in ``classes``; unseen labels are an error.

    Parameters
    ----------
    y : numpy.ndarray of shape (n,)
    classes : numpy.ndarray of shape (n_classes,)
        Any order.
    name : str
        How to call ``y`` in error messages.

    Returns
    -------
    codes : numpy.ndarray of int64
    """
    unseen = np.unique(y[~np.isin(y, classes)])
    if unseen.size:
        hint = ""
        codes = classes.dtype.kind in "iu" and np.array_equal(np.sort(classes),
                                                              np.arange(len(classes)))
        if codes and name != "y":
            # 0..K-1 training labels next to other clean labels: the usual sign of a
            # meta-estimator that encoded y but could not encode the clean set.
            hint = ". " + " ".join([
                "The training labels are codes 0..K-1: a meta-estimator probably "
                "re-encoded y before fitting this estimator (OneVsRestClassifier gives "
                "every sub-estimator 0/1 targets; VotingClassifier, StackingClassifier "
                "and BaggingClassifier give codes 0..K-1, which are mapped back only "
                "when the clean set has every class), while the clean set kept the "
                "original labels.",
                "Fit L2RWClassifier outside the meta-estimator, or encode the labels "
                "yourself first (LabelEncoder().fit(y), then transform y and the clean "
                "labels) so that both reach it as codes; OneVsRestClassifier cannot be "
                "told which class each sub-estimator is for"])
        raise ValueError(
            f"{name} contains labels {unseen.tolist()} that the training labels do "
            f"not contain (classes: {classes.tolist()}){hint}")
    sorter = np.argsort(classes, kind="stable")
    return sorter[np.searchsorted(classes, y, sorter=sorter)].astype(np.int64)


#: Clean targets further than this many training standard deviations from the
#: training mean, or spread this many times wider, are taken to be on another
#: scale. Noise in the training targets cannot cause either: it widens the
#: training spread, which moves both limits away (40% of the targets shifted by
#: 30 standard deviations put the clean mean 12 from the training mean with a
#: training spread of 15). A clean spread far *below* the training one is what
#: heavy noise looks like, so it is not warned about.
SCALE_FACTOR = 10.0


def warn_other_scale(y, y_clean, name="y_val"):
    """Warn when the clean targets look like another scale than ``y``.

    Parameters
    ----------
    y : numpy.ndarray of shape (n, n_outputs)
    y_clean : numpy.ndarray of shape (m, n_outputs)
    name : str
        How to call the clean targets in the message.
    """
    mean, std = y.mean(0), y.std(0)
    c_mean = y_clean.mean(0)
    c_std = y_clean.std(0) if len(y_clean) > 1 else None
    spread = np.maximum(std, np.finfo(np.float64).tiny)
    far = np.abs(c_mean - mean) > SCALE_FACTOR * spread
    if c_std is not None:
        ratio = np.maximum(c_std, np.finfo(np.float64).tiny) / spread
        far |= ratio > SCALE_FACTOR
    if far.any():
        k = int(np.flatnonzero(far)[0])
        warnings.warn(
            f"the clean targets {name} (mean {c_mean[k]:.3g}, std "
            f"{'n/a' if c_std is None else f'{c_std[k]:.3g}'}) are on another scale than "
            f"y (mean {mean[k]:.3g}, std {std[k]:.3g}), so every row's weight would be "
            "judged against targets it cannot match. A TransformedTargetRegressor "
            "transforms y but not the clean set: transform the clean targets the same "
            "way (e.g. func(y_val), or transformer.transform(y_val)) before passing them",
            CleanTargetScaleWarning, stacklevel=6)


def codes_for_clean_labels(y_clean, classes):
    """Map original clean labels onto training codes 0..K-1, where that is certain.

    Meta-estimators that encode ``y`` with a ``LabelEncoder`` (VotingClassifier,
    StackingClassifier, BaggingClassifier) or a ``LabelBinarizer`` over two classes
    (OneVsRestClassifier on a binary task) give the estimator codes ``0..K-1`` in the
    sorted order of the labels. When the training labels are exactly those codes, no
    clean label is one of them, and the clean set holds exactly K distinct labels,
    the same sorted order maps the clean labels onto the codes.

    Returns
    -------
    numpy.ndarray or None
        The clean labels as codes, or None when the mapping is not certain.
    """
    if classes.dtype.kind not in "iu" or not np.array_equal(np.sort(classes),
                                                            np.arange(len(classes))):
        return None
    labels = np.unique(y_clean)
    if len(labels) != len(classes) or np.isin(y_clean, classes).any():
        return None
    return np.searchsorted(labels, y_clean).astype(classes.dtype)


def warn_missing_classes(y_clean, classes):
    """Warn when the clean labels cover only some of the classes.

    The clean set then says little about how to weight rows of the missing classes.
    """
    missing = classes[~np.isin(classes, y_clean)]
    if missing.size:
        warnings.warn(
            f"the clean set has no rows of classes {missing.tolist()}; its signal "
            "about rows of those classes is weak", MissingClassesWarning, stacklevel=5)


# ------------------------------------------------- an estimator's inputs, at fit

class FitData(NamedTuple):
    """Validated inputs of one ``fit``/``partial_fit`` call.

    ``X`` is a host array, or a torch Dataset (then ``y`` is None: the dataset
    yields the targets).
    """

    X: np.ndarray
    y: np.ndarray
    X_clean: np.ndarray = None
    y_clean: np.ndarray = None
    # Per clean row, mean 1 (clean_class_weight); None: all rows count the same.
    w_clean: np.ndarray = None
    # fit(..., trusted=mask): (positions of the training rows in X, rows of X), so
    # that the weight record covers every row of X; None otherwise.
    layout: tuple = None


_UNSET = object()

#: Parameter name -> validator, checked at every fit before anything else
#: (scikit-learn's ``_parameter_constraints`` idea; its helpers are private).
#: skorch's own parameters are here too: skorch checks their values only where
#: training uses them, mid-fit. A ``prefix__name`` parameter is checked when set.
PARAMETER_CONSTRAINTS = {
    "meta_gradient": check_meta_gradient,
    "clean_batch_size": check_clean_batch_size,
    "train_on_clean": check_train_on_clean,
    "categorical_features": check_categorical_features,
    "random_state": check_random_state,
    "device": check_device,
    "batch_size": check_batch_size,
    "iterator_train__batch_size": functools.partial(
        check_batch_size, name="iterator_train__batch_size"),
    "iterator_valid__batch_size": functools.partial(
        check_batch_size, name="iterator_valid__batch_size"),
    "iterator_train__shuffle": functools.partial(
        check_bool, name="iterator_train__shuffle"),
    "max_epochs": check_max_epochs,
    "lr": check_lr,
    "optimizer__lr": functools.partial(check_lr, name="optimizer__lr"),
    "warm_start": functools.partial(check_bool, name="warm_start"),
    "compile": functools.partial(check_bool, name="compile"),
    "verbose": check_verbose,
    "train_split": check_train_split,
    "predict_nonlinearity": check_predict_nonlinearity,
}


def is_torch_dataset(X):
    return isinstance(X, torch.utils.data.Dataset)


def row_shapes(X):
    """The shape of one row: of the array, or of every value of a dict."""
    if isinstance(X, Mapping):
        return {key: value.shape[1:] for key, value in X.items()}
    return X.shape[1:]


def flat_width(X):
    """Features per row once flattened (a torch Dataset: of its first item); None
    for a dict X, whose inputs a module sizes itself."""
    if isinstance(X, Mapping):
        return None
    if sp.issparse(X):
        return X.shape[1]
    first = X[0][0] if is_torch_dataset(X) else X[0]
    return int(np.prod(np.shape(first)))


def same_values(A, B):
    """Whether two arrays or sparse matrices of one shape hold the same values."""
    if sp.issparse(A) or sp.issparse(B):
        if not (sp.issparse(A) and sp.issparse(B)):
            return False
        return (A != B).nnz == 0
    return np.array_equal(A, B)


def check_params(net):
    """Check every parameter in ``net._parameter_constraints``.

    Not named ``_validate_params`` on the estimator: that is skorch's check of the
    parameter names (a typo such as ``iterator_train_shuffle``), which skorch runs
    when it initializes and which this must not hide.
    """
    for name, check in net._parameter_constraints.items():
        value = getattr(net, name, _UNSET)
        if value is not _UNSET:
            check(value)


def validate_fit(net, X, y, X_val, y_val, *, reset):
    """Check everything before anything changes; raise on the first problem.

    Returns the :class:`FitData`; sets the estimator's fitted input attributes
    (``n_features_in_``, ``feature_names_in_``, ``categories_``, ...) when ``reset``.
    """
    check_params(net)
    Xc, yc, where = clean_source(net, X_val, y_val)
    dtype = numpy_dtype(net._module_dtype())
    frame, levels = X, category_levels(net, X, reset=reset)
    if levels:  # a DataFrame with categorical columns: numeric block + codes
        X = encode_frame(X, levels, dtype=dtype)
        if Xc is not None:
            Xc = encode_frame(Xc, levels, dtype=dtype, name=f"the clean set {where[0]}")
    X_arr, names, y_arr, dataset = validate_training(net, X, y, dtype, reset=reset)
    row_shape = (tuple(np.shape(dataset[0][0])) if dataset is not None
                 else row_shapes(X_arr))
    if not reset:
        check_fitted_row_shape(net, row_shape)
    X_clean, y_clean = validate_clean(
        net, Xc, yc, where, dtype, row_shape,
        training=X_arr if dataset is None and X_val is not None else None,
        sparse=sp.issparse(X_arr))
    y_enc, y_clean_enc = net._encode_targets(y_arr, y_clean, reset=reset, where=where,
                                             dataset=dataset)
    w_clean = None if y_clean is None else net._clean_row_weights(y_clean)
    # Nothing above changed the estimator; from here on it may.
    if reset:
        _set_fitted_inputs(net, frame, levels, X_arr, names, row_shape, dataset)
    return FitData(X_arr, y_enc, X_clean, y_clean_enc, w_clean)


def _set_fitted_inputs(net, frame, levels, X_arr, names, row_shape, dataset):
    # the inputs of a dict X, checked again at predict and partial_fit
    net._x_keys = list(X_arr) if isinstance(X_arr, Mapping) else None
    # the shape of a row (of each input of a dict X), likewise
    net._row_shape_ = row_shape
    if levels:
        net.categories_ = levels
    else:
        net.__dict__.pop("categories_", None)
    if levels:
        net.n_features_in_ = frame.shape[1]
        net.feature_names_in_ = np.asarray(frame.columns, dtype=object)
    elif dataset is not None or isinstance(X_arr, Mapping):
        for attribute in ("n_features_in_", "feature_names_in_"):
            net.__dict__.pop(attribute, None)
    else:
        net.n_features_in_ = X_arr.shape[1]
        if names is not None:
            net.feature_names_in_ = names
        elif hasattr(net, "feature_names_in_"):
            del net.feature_names_in_


def category_levels(net, X, *, reset):
    """Levels of X's categorical columns: learned from X at a first fit, the
    fitted ones after; an empty dict when there are none."""
    if not reset:
        levels = getattr(net, "categories_", None) or {}
        if levels:
            check_frame_columns(net, X, "X")
        return levels
    columns = categorical_columns(X, net.categorical_features)
    if not columns:
        return {}
    explicit = () if net.categorical_features == "from_dtype" else columns
    return learn_levels(X, columns, explicit=explicit)


def check_frame_columns(net, X, name):
    """A frame for an estimator fitted on categorical columns has its columns."""
    columns = [str(c) for c in getattr(X, "columns", [])]
    if columns != list(net.feature_names_in_):
        raise ValueError(
            f"{name} must be a DataFrame with the columns the estimator was fitted "
            f"on, in that order ({list(net.feature_names_in_)}); got "
            f"{columns if hasattr(X, 'columns') else type(X).__name__}")


def input_width(net, X):
    """Numeric features per row, for a module sized from the data."""
    if getattr(net, "categories_", None):
        return X[NUMERIC_KEY].shape[1]
    return flat_width(X)


def sizes_from_data(net):
    """What ``initialize_module`` may fill in of a module's sizes; empty before any
    data (``net._module_sizes()`` adds what the targets say)."""
    sizes = {}
    if getattr(net, "_features_seen", None) is not None:
        sizes["n_features"] = net._features_seen
    if getattr(net, "categories_", None):
        # codes 0 (missing) and 1 (unknown) come before the learned levels
        sizes["n_categories"] = tuple(len(v) + 2 for v in net.categories_.values())
    try:
        sizes.update(net._module_sizes())
    except AttributeError:  # no targets seen yet (initialize() by hand)
        pass
    return sizes


def clean_source(net, X_val, y_val):
    """Where the clean set comes from: ``fit``'s X_val/y_val, else the
    constructor's clean_X/clean_y. Returns ``(X, y, (name of X, name of y))``."""
    if (X_val is None) != (y_val is None):
        given = "X_val" if X_val is not None else "y_val"
        raise ValueError(
            f"the clean set needs both X_val and y_val; only {given} was given")
    if (net.clean_X is None) != (net.clean_y is None):
        raise ValueError("the clean set needs both clean_X and clean_y; only "
                         f"{'clean_X' if net.clean_X is not None else 'clean_y'}"
                         " was given to the constructor")
    if X_val is not None:
        return X_val, y_val, ("X_val", "y_val")
    return net.clean_X, net.clean_y, ("clean_X", "clean_y")


def validate_training(net, X, y, dtype, *, reset):
    """The training rows: ``(X, feature names, y, dataset or None)``."""
    dataset = X if is_torch_dataset(X) else None
    if dataset is not None:
        if y is not None:
            raise ValueError("with a torch Dataset as X, pass y=None: the dataset's "
                             "items (x_i, target_i) hold the targets")
        if len(dataset) == 0:
            raise ValueError("the training Dataset X is empty")
        return dataset, None, None, dataset
    if y is None:
        raise ValueError(f"{type(net).__name__} requires y to be passed, but the "
                         "target y is None")
    if is_dict_input(X):
        X_arr = check_feature_dict(X, dtype=dtype, name="X")
        y_arr = net._check_targets(y, name="y")
        check_consistent_rows(next(iter(X_arr.values())), y_arr)
        if not reset:
            fitted = getattr(net, "_x_keys", None)
            if fitted is not None:
                check_same_keys(dict.fromkeys(fitted), X_arr,
                                names=("the X of the first fit", "X"))
        return X_arr, None, y_arr, None
    X_arr, names = check_features(X, dtype=dtype, name="X")
    y_arr = net._check_targets(y, name="y")
    check_consistent_rows(X_arr, y_arr)
    if not reset:
        check_same_features(net, X_arr, "X")
    return X_arr, names, y_arr, None


def validate_clean(net, Xc, yc, where, dtype, row_shape, *, training=None,
                   sparse=False):
    """The clean set as arrays ``(X, y)``, or ``(None, None)`` with a warning.

    ``training``: the training rows, when the clean set came through ``fit``.
    ``sparse``: X is a sparse matrix (the clean set is made one too).
    """
    if Xc is None:
        warnings.warn(
            f"{type(net).__name__} got no clean set: pass X_val and y_val to fit, "
            "or clean_X and clean_y to the constructor. Training with uniform "
            "weights (plain training).", NoCleanSetWarning, stacklevel=4)
        return None, None
    if isinstance(row_shape, Mapping) != is_dict_input(Xc):
        raise ValueError(
            f"X is {'a dict' if isinstance(row_shape, Mapping) else 'an array'} but "
            f"the clean set {where[0]} is {'a dict' if is_dict_input(Xc) else 'not'}: "
            "give both in the same form")
    if n_rows(Xc) == 0 or len(yc) == 0:
        raise ValueError(
            f"the clean set ({where[0]}, {where[1]}) is empty; give at least "
            "one trusted row, or none at all for plain training")
    X_clean = _clean_features(Xc, where, dtype, row_shape, sparse)
    y_clean = net._check_targets(yc, name=f"the clean set {where[1]}")
    check_consistent_rows(next(iter(X_clean.values())) if isinstance(X_clean, Mapping)
                          else X_clean, y_clean, names=where)
    # A clean set as long as X may be a whole clean set or one that a search
    # sliced per fold (it slices fit parameters as long as its own X); the two
    # cannot be told apart from here. Only the clean set that is the training
    # rows themselves, sliced or not, is certainly wrong.
    if (training is not None and not isinstance(training, Mapping)
            and X_clean.shape == training.shape and same_values(X_clean, training)):
        raise ValueError(
            "the clean set X_val holds exactly the training rows X: a clean set "
            "must be trusted rows kept apart from the (noisy) training rows. If a "
            "search or cross-validation tool sliced it per fold, it was as long as "
            "the X given to that tool; pass the clean set itself (clean_X, clean_y "
            "or X_val, y_val)")
    if row_shapes(X_clean) != row_shape:
        raise ValueError(
            f"the clean set {where[0]} has rows of shape {row_shapes(X_clean)} "
            f"but X has rows of shape {row_shape}; they must match "
            "(transform the clean set like X)")
    return X_clean, y_clean


def _clean_features(Xc, where, dtype, row_shape, sparse):
    """The clean set's rows, checked, in the form of X's."""
    if is_dict_input(Xc):
        check_same_keys(row_shape, Xc, names=("X", f"the clean set {where[0]}"))
        return check_feature_dict(Xc, dtype=dtype, name=f"the clean set {where[0]}")
    X_clean, _ = check_features(Xc, dtype=dtype, name=f"the clean set {where[0]}")
    # The clean set takes X's form; it is small, so densifying it is cheap.
    if sparse and not sp.issparse(X_clean):
        X_clean = sp.csr_matrix(X_clean.reshape(len(X_clean), -1))
    elif not sparse and sp.issparse(X_clean):
        X_clean = X_clean.toarray()
    return X_clean


def check_same_features(net, X, name):
    if X.shape[1] != net.n_features_in_:
        raise ValueError(
            f"{name} has {X.shape[1]} features, but {type(net).__name__} is "
            f"expecting {net.n_features_in_} features as input")


def check_fitted_row_shape(net, row_shape):
    """Rows of another shape than the fit's (e.g. ``(4, 1)`` after ``(4,)``, which
    has the same number of features) would reach the module."""
    fitted = getattr(net, "_row_shape_", None)
    if fitted is not None:
        check_row_shape(row_shape, fitted, name="X", owner=type(net).__name__)


def validate_predict(net, X):
    """X for ``predict``/``predict_proba`` of a fitted estimator, checked against
    what it was fitted on."""
    net.check_is_fitted()
    if isinstance(X, torch.utils.data.Dataset):
        return X  # skorch's route (e.g. its validation split): nothing to check
    dtype = numpy_dtype(net._module_dtype())
    levels = getattr(net, "categories_", None)
    if levels:
        check_frame_columns(net, X, "X")
        return encode_frame(X, levels, dtype=dtype)
    if is_dict_input(X):
        X = check_feature_dict(X, dtype=dtype)
        fitted = getattr(net, "_x_keys", None)
        if fitted is not None:
            check_same_keys(dict.fromkeys(fitted), X,
                            names=("the X the estimator was fitted on", "X"))
        check_fitted_row_shape(net, row_shapes(X))
        return X
    if torch.is_tensor(X):
        X = X.detach().cpu().numpy()
    if sp.issparse(X):
        X = check_sparse_features(X, dtype=dtype)
    fitted = getattr(net, "_row_shape_", None)
    if (isinstance(fitted, tuple) and hasattr(X, "shape")
            and len(X.shape) >= 2 and len(X.shape) != len(fitted) + 1):
        # e.g. (2, 5) after (10,): validate_data would name only shape[1] (and
        # a 1-D X gets its "Reshape your data" advice)
        check_fitted_row_shape(net, tuple(X.shape[1:]))
    X = validate_data(net, X, reset=False, allow_nd=True, accept_sparse="csr",
                      dtype=dtype)
    check_fitted_row_shape(net, row_shapes(X))
    return X


def check_module(net, data, to_device):
    """Run the module on two rows of X and of the clean set, without gradients.

    Turns a shape mismatch or a wrong output width into a ValueError that names
    it, before the first training step rather than in the middle of one.
    ``to_device(X, dtype, device, fit=False)`` moves a dict X's rows.
    """
    dtype = net._module_dtype()
    if dtype in (torch.float16, torch.bfloat16):
        raise ValueError(
            f"the module computes in {dtype}; L2RW's meta-gradients need float32 "
            "or float64 parameters (mixed precision is not supported)")
    module = net.module_
    was_training = module.training
    module.eval()
    try:
        if data.y is None:  # a torch Dataset: its first two items, collated
            first = default_collate([data.X[i] for i in range(min(2, len(data.X)))])
            train = (first[0], first[1])
        else:
            train = (take_rows(data.X, slice(0, 2)),
                     net._target_tensor(data.y[:2], "cpu"))
        clean = (None, None) if data.X_clean is None else (
            take_rows(data.X_clean, slice(0, 2)),
            net._target_tensor(data.y_clean[:2], "cpu"))
        for name, (X, y) in (("X", train), ("the clean set", clean)):
            if X is not None:
                _check_module_on(net, name, X, y, dtype, to_device)
    finally:
        module.train(was_training)


def _check_module_on(net, name, X, y, dtype, to_device):
    if isinstance(X, Mapping):
        rows = to_device(X, dtype, net.device_, fit=False)
    elif sp.issparse(X):
        rows = sparse_tensor(X, dtype, net.device_)
    else:
        rows = torch.as_tensor(X if torch.is_tensor(X) else np.array(X),
                               dtype=dtype).to(net.device_)
    try:
        with torch.no_grad():
            out = net.infer(rows)
            net.get_sample_losses(out, torch.as_tensor(y).to(net.device_))
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        shape = ({k: tuple(np.shape(v)[1:]) for k, v in X.items()}
                 if isinstance(X, Mapping) else tuple(np.shape(X)[1:]))
        hint = ""
        if getattr(net, "categories_", None):
            hint = (
                f". X has categorical columns {list(net.categories_)}, so "
                "the module is called as forward(X=numeric columns, "
                "categories=integer codes): use sk_l2rw.modules.MLP, or "
                "pass categorical_features=None and encode them yourself")
        raise ValueError(
            f"the module cannot process {name}: rows of shape "
            f"{shape} gave {type(exc).__name__}: {exc}{hint}") from exc
    net._check_output(out[0] if isinstance(out, tuple) else out)
