"""Fuzzing a fitted estimator: thousands of drawn bad calls, and what each did.

Issue 31's bar: no call of any kind ends in an exception other than ``ValueError``,
``TypeError`` (or ``FloatingPointError`` for divergence), and none that fails changes a
fitted model. Each case copies one fitted ``L2RWClassifier``, draws one fault and
makes one call:

- a parameter set to a value of a wrong type or range (``batch_size``, ``max_epochs``,
  ``lr``, ``clean_batch_size``, ``meta_gradient``, ``train_on_clean``, ...), then
  ``fit`` or ``partial_fit``;
- X broken: NaN or infinity at a drawn position, scaled by 1e30, an extra axis, one
  column fewer, no rows, one row; y broken: a label never seen, one label too few,
  NaN labels; then ``fit``, ``partial_fit`` or (for X) ``predict_proba``;
- the same with the other input forms, each on an estimator fitted on that form
  (:data:`FORM_FAULTS`): a DataFrame of mixed dtypes (float32, float64, int, bool
  and a categorical column) with a column missing, added, renamed (to a string or
  a number), moved, of another dtype, NaN or infinite, or given as an array; a
  scipy sparse matrix one column wider or narrower, NaN or infinite, dense, in
  another format or dtype; a dict X with a key missing, added or renamed, a value
  of another width, dtype or length, NaN, or the columns given as one array; no
  rows and one row for each.

An outcome is ``ok`` (the call succeeded), ``refused`` (a documented error with a
message, and the model's predictions, parameters, history and weights exactly as
before), or a **violation**: another exception, an empty message, or a changed model.

Usage::

    python -m benchmarks.fuzz                 # 10,000 cases (about 2 minutes here)
    python -m benchmarks.fuzz --cases 500 --seed 1
    python -m benchmarks.fuzz --smoke         # 40 cases (CI)

Half the cases are the array estimator's (parameters and data, as above); the rest
fall alike to the DataFrame, sparse and dict estimators.
"""

from __future__ import annotations

import argparse
import collections
import copy
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from benchmarks.common.runner import limited_threads
from benchmarks.environment import add_report_arguments, report_header, study_command
from benchmarks.report import markdown_table

DOCUMENTED = (ValueError, TypeError, FloatingPointError)

#: Values of a wrong type or range for any parameter.
BAD_VALUES = (float("nan"), float("inf"), -1, 0, 1.5, "x", None, {}, [], True, 1e30)
PARAMETERS = ("batch_size", "max_epochs", "lr", "clean_batch_size", "meta_gradient",
              "train_on_clean", "random_state", "warm_start", "verbose",
              "iterator_train__batch_size", "clean_class_weight", "device")
DATA_FAULTS = ("nan", "inf", "scale", "extra_axis", "fewer_columns", "no_rows",
               "one_row", "unseen_label", "short_y", "nan_label")
#: Input form -> its faults, drawn on an estimator fitted on that form.
FORM_FAULTS = {
    "frame": ("missing_column", "extra_column", "renamed_column", "int_name",
              "moved_column", "text_column", "numeric_category", "unseen_category",
              "nan_category", "nullable_int", "float_to_int", "nan", "inf", "as_array",
              "no_rows", "one_row"),
    "sparse": ("wider", "narrower", "nan", "inf", "dense", "csc", "coo", "int_dtype",
               "sparse_array", "scale", "no_rows", "one_row"),
    "dict": ("missing_key", "extra_key", "renamed_key", "narrower_value", "wider_value",
             "extra_axis", "int_value", "text_value", "short_value", "nan", "as_array",
             "empty_dict", "no_rows", "one_row"),
}
COLOURS = np.array(["red", "green", "blue"])


def _problem(seed=0):
    from sklearn.datasets import make_classification

    X, y = make_classification(300, 6, n_informative=4, n_classes=3, random_state=seed)
    return X.astype(np.float32), y


def as_form(X, form):
    """The rows of ``X`` (the array problem) in another input form."""
    import pandas as pd

    if form == "frame":  # mixed dtypes, and a categorical column
        return pd.DataFrame({
            "a": X[:, 0], "b": X[:, 1].astype(np.float64),
            "c": np.round(3 * X[:, 2]).astype(np.int64), "d": X[:, 3] > 0,
            "e": X[:, 4],
            "colour": pd.Categorical(COLOURS[np.digitize(X[:, 5], [-0.5, 0.5])],
                                     categories=COLOURS)})
    if form == "sparse":
        return sp.csr_matrix(np.where(np.abs(X) > 0.7, X, 0).astype(np.float32))
    if form == "dict":
        return {"num": X[:, :4], "extra": X[:, 4:]}
    return X


class TwoInputs(nn.Module):
    """The dict estimator's module: ``forward(num, extra)``, 4 and 2 columns."""

    def __init__(self, n_classes=3):
        super().__init__()
        self.hidden = nn.Linear(6, 16)
        self.out = nn.Linear(16, n_classes)

    def forward(self, num, extra):
        return self.out(torch.relu(self.hidden(torch.cat([num, extra], dim=1))))


def fitted_net(seed=0, form="array"):
    """The estimator every case of ``form`` starts from: fitted for two epochs."""
    from sk_l2rw import L2RWClassifier
    from sk_l2rw.modules import MLP

    X, y = _problem(seed)
    X = as_form(X, form)
    module = TwoInputs if form == "dict" else MLP
    kwargs = dict(module__hidden_layer_sizes=(16,)) if form in ("frame", "sparse") else {}
    net = L2RWClassifier(module, rows(X, slice(0, 60)), y[:60],
                         criterion=torch.nn.CrossEntropyLoss, lr=0.05, max_epochs=2,
                         batch_size=32, random_state=seed, verbose=0, train_split=None,
                         **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return net.fit(rows(X, slice(60, None)), y[60:])


def rows(X, index):
    """Rows ``index`` of X in any of the forms."""
    if isinstance(X, dict):
        return {key: value[index] for key, value in X.items()}
    if hasattr(X, "iloc"):
        return X.iloc[index]
    return X[index]


def state(net, X):
    """What must not change when a call fails. A sparse probe is predicted as the
    same rows dense: on CUDA the sparse product sums in no fixed order, so two calls
    on an unchanged model may differ by one rounding."""
    if sp.issparse(X):
        X = X.toarray()
    return (net.predict_proba(X).tobytes(),
            tuple(v.detach().cpu().numpy().tobytes()
                  for v in net.module_.state_dict().values()),
            len(net.history), net.sample_weights_.tobytes(), dict(vars(net)).keys())


def draw_case(rng):
    """One fault: ``(kind, detail, method)``; ``kind`` is "parameter", "data" (the
    array estimator's) or an input form of :data:`FORM_FAULTS`."""
    if rng.rand() < 0.5:
        form = tuple(FORM_FAULTS)[rng.randint(len(FORM_FAULTS))]
        faults = FORM_FAULTS[form]
        methods = ("fit", "partial_fit", "predict_proba")
        return (form, (faults[rng.randint(len(faults))], int(rng.randint(1 << 30))),
                methods[rng.randint(len(methods))])
    if rng.rand() < 0.5:
        name = PARAMETERS[rng.randint(len(PARAMETERS))]
        value = BAD_VALUES[rng.randint(len(BAD_VALUES))]
        return "parameter", (name, value), ("fit", "partial_fit")[rng.randint(2)]
    fault = DATA_FAULTS[rng.randint(len(DATA_FAULTS))]
    methods = ("fit", "partial_fit") if "label" in fault or fault == "short_y" else (
        "fit", "partial_fit", "predict_proba")
    return "data", (fault, int(rng.randint(1 << 30))), methods[rng.randint(len(methods))]


def broken_data(fault, seed, X, y):
    rng = np.random.RandomState(seed)
    X, y = X.copy(), y.copy()
    if fault in ("nan", "inf"):
        X[rng.randint(len(X)), rng.randint(X.shape[1])] = np.nan if fault == "nan" else (
            np.inf)
    elif fault == "scale":
        X = X * np.float32(1e30)
    elif fault == "extra_axis":
        X = X[:, :, None]
    elif fault == "fewer_columns":
        X = X[:, :-1]
    elif fault == "no_rows":
        X, y = X[:0], y[:0]
    elif fault == "one_row":
        X, y = X[:1], y[:1]
    elif fault == "unseen_label":
        y[rng.randint(len(y))] = 7
    elif fault == "short_y":
        y = y[:-1]
    elif fault == "nan_label":
        y = y.astype(float)
        y[rng.randint(len(y))] = np.nan
    return X, y


def broken_form(form, fault, seed, X, y):
    """X in ``form`` (as :func:`as_form` gives it) broken by ``fault``; y as given,
    cut to the rows kept."""
    import pandas as pd

    rng = np.random.RandomState(seed)
    n = len(y)
    if fault == "no_rows":
        return rows(X, slice(0, 0)), y[:0]
    if fault == "one_row":
        return rows(X, slice(0, 1)), y[:1]
    row = rng.randint(n)
    if form == "frame":
        X = X.copy()
        column = X.columns[rng.randint(len(X.columns))]
        numeric = ["a", "b", "e"][rng.randint(3)]
        if fault == "missing_column":
            X = X.drop(columns=column)
        elif fault == "extra_column":
            X["z"] = rng.normal(size=n).astype(np.float32)
        elif fault == "renamed_column":
            X = X.rename(columns={column: column + "_2"})
        elif fault == "int_name":  # a column named by a number
            X = X.rename(columns={column: 0})
        elif fault == "moved_column":
            X = X[[*X.columns[1:], X.columns[0]]]
        elif fault == "text_column":  # a numeric column that holds a string
            X[numeric] = X[numeric].astype(object)
            X.loc[X.index[row], numeric] = "n/a"
        elif fault == "numeric_category":  # the categorical column as its codes
            X["colour"] = X["colour"].cat.codes.astype(np.int64)
        elif fault == "unseen_category":
            X["colour"] = X["colour"].cat.add_categories(["purple"])
            X.loc[X.index[row], "colour"] = "purple"
        elif fault == "nan_category":
            X.loc[X.index[row], "colour"] = np.nan
        elif fault == "nullable_int":
            X["c"] = X["c"].astype("Int64")
            X.loc[X.index[row], "c"] = pd.NA
        elif fault == "float_to_int":
            X[numeric] = np.round(X[numeric]).astype(np.int64)
        elif fault in ("nan", "inf"):
            X.loc[X.index[row], numeric] = np.nan if fault == "nan" else np.inf
        elif fault == "as_array":
            X = X.to_numpy()
        return X, y
    if form == "sparse":
        if fault == "wider":
            X = sp.hstack([X, sp.csr_matrix((n, 1), dtype=X.dtype)], format="csr")
        elif fault == "narrower":
            X = X[:, :-1]
        elif fault in ("nan", "inf"):
            X = X.tolil(copy=True)
            X[row, rng.randint(X.shape[1])] = np.nan if fault == "nan" else np.inf
            X = X.tocsr()
        elif fault == "dense":
            X = X.toarray()
        elif fault == "csc":
            X = X.tocsc()
        elif fault == "coo":
            X = X.tocoo()
        elif fault == "int_dtype":
            X = (X * 3).astype(np.int64)
        elif fault == "sparse_array":
            X = sp.csr_array(X)
        elif fault == "scale":
            X = X * np.float32(1e30)
        return X, y
    X = dict(X)
    key = sorted(X)[rng.randint(len(X))]
    if fault == "missing_key":
        del X[key]
    elif fault == "extra_key":
        X["other"] = rng.normal(size=(n, 2)).astype(np.float32)
    elif fault == "renamed_key":
        X[key + "_2"] = X.pop(key)
    elif fault == "narrower_value":
        X[key] = X[key][:, :-1]
    elif fault == "wider_value":
        X[key] = np.hstack([X[key], X[key][:, :1]])
    elif fault == "extra_axis":
        X[key] = X[key][:, :, None]
    elif fault == "int_value":
        X[key] = np.round(X[key]).astype(np.int64)
    elif fault == "text_value":
        X[key] = X[key].astype(str)
    elif fault == "short_value":
        X[key] = X[key][:-1]
    elif fault == "nan":
        X[key] = X[key].copy()
        X[key][row, 0] = np.nan
    elif fault == "as_array":
        X = np.hstack([X["num"], X["extra"]])
    elif fault == "empty_dict":
        X = {}
    return X, y


def call_quietly(net, method, X, y):
    """``net.<method>(X, y)`` (``predict_proba`` takes X alone), its warnings
    silenced: a drawn bad call may well warn, and only its outcome counts."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "predict_proba":
            return net.predict_proba(X)
        return getattr(net, method)(X, y)


def run_case(base, case, X_probe, X, y):
    """The outcome of one case: ``ok``, ``refused`` or a violation's description."""
    kind, detail, method = case
    net = copy.deepcopy(base)
    before = state(net, X_probe)
    old = dict(vars(net))
    if kind == "parameter":
        name, value = detail
        vars(net)[name] = value
    elif kind == "data":
        X, y = broken_data(*detail, X, y)
    else:
        X, y = broken_form(kind, *detail, X, y)
    try:
        call_quietly(net, method, X, y)
    except DOCUMENTED as exc:
        if not str(exc):
            return "violation: empty message"
        if kind == "parameter":  # the value this case set, and nothing else
            name = detail[0]
            if name in old:
                vars(net)[name] = old[name]
            else:
                vars(net).pop(name, None)
        if state(net, X_probe) != before:
            return f"violation: {type(exc).__name__} changed the model"
        return "refused"
    except Exception as exc:  # the bar: anything else is a finding
        return f"violation: {type(exc).__name__}: {str(exc)[:120]}"
    return "ok"


@limited_threads(1)
def run(cases=10000, seed=0):
    """Rows: one per case, with its fault, method and outcome."""
    X, y = _problem(seed)
    bases = {}
    for form in ("array", *FORM_FAULTS):
        X_form = as_form(X, form)
        bases[form] = (fitted_net(seed, form), rows(X_form, slice(0, 40)),
                       rows(X_form, slice(60, 120)), y[60:120])
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(cases):
        kind, detail, method = draw_case(rng)
        base = bases["array" if kind in ("parameter", "data") else kind]
        outcome = run_case(base[0], (kind, detail, method), *base[1:])
        label = f"{detail[0]}={detail[1]!r}" if kind == "parameter" else detail[0]
        out.append(dict(kind=kind, fault=label, method=method, outcome=outcome))
    return out


def report(saved):
    meta = dict(saved["meta"])
    smoke = meta.pop("smoke", False)
    rows = saved["rows"]
    lines = report_header("Fuzzing a fitted L2RWClassifier: drawn bad calls", **meta)
    if smoke:
        lines += ["**A `--smoke` run: it only shows that the script runs.**", ""]
    counts = collections.Counter("violation" if r["outcome"].startswith("violation")
                                 else r["outcome"] for r in rows)
    lines += [f"{len(rows)} cases: {counts['ok']} succeeded, {counts['refused']} refused "
              f"with a documented error and the model unchanged, **{counts['violation']} "
              "violations** (another exception, an empty message, or a changed model).",
              ""]
    by = collections.defaultdict(collections.Counter)
    for r in rows:
        key = r["fault"].split("=")[0] if r["kind"] == "parameter" else r["fault"]
        by[(r["kind"], key)][r["outcome"] if not r["outcome"].startswith("violation")
                             else "violation"] += 1
    body = [[kind, key, str(c["ok"]), str(c["refused"]), str(c["violation"])]
            for (kind, key), c in sorted(by.items())]
    lines += markdown_table(["kind", "fault", "ok", "refused, unchanged", "violations"],
                            body)
    found = sorted({(r["fault"], r["method"], r["outcome"]) for r in rows
                    if r["outcome"].startswith("violation")})
    if found:
        lines += ["", "## Violations", ""]
        lines += [f"- `{f}` in `{m}`: {o}" for f, m, o in found]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_report_arguments(parser, "fuzz.md", smoke="40 cases (CI)")
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)

    def measure(args):
        return run(40 if args.smoke else args.cases, args.seed), dict(smoke=args.smoke)

    return study_command("fuzz", parser, argv, report, measure)


if __name__ == "__main__":
    main()
