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
  NaN labels; then ``fit``, ``partial_fit`` or (for X) ``predict_proba``.

An outcome is ``ok`` (the call succeeded), ``refused`` (a documented error with a
message, and the model's predictions, parameters, history and weights exactly as
before), or a **violation**: another exception, an empty message, or a changed model.

Usage::

    python -m benchmarks.fuzz                 # 10,000 cases (about a minute here)
    python -m benchmarks.fuzz --cases 500 --seed 1
    python -m benchmarks.fuzz --smoke         # 40 cases (CI)
"""

from __future__ import annotations

import argparse
import collections
import copy
import warnings

import numpy as np

from benchmarks.common.runner import limited_threads
from benchmarks.environment import (RESULTS, StudyRun, add_report_arguments, report_folder,
                                    report_header, rerender)
from benchmarks.report import markdown_table

DOCUMENTED = (ValueError, TypeError, FloatingPointError)

#: Values of a wrong type or range for any parameter.
BAD_VALUES = (float("nan"), float("inf"), -1, 0, 1.5, "x", None, {}, [], True, 1e30)
PARAMETERS = ("batch_size", "max_epochs", "lr", "clean_batch_size", "meta_gradient",
              "train_on_clean", "random_state", "warm_start", "verbose",
              "iterator_train__batch_size", "clean_class_weight", "device")
DATA_FAULTS = ("nan", "inf", "scale", "extra_axis", "fewer_columns", "no_rows",
               "one_row", "unseen_label", "short_y", "nan_label")


def _problem(seed=0):
    from sklearn.datasets import make_classification

    X, y = make_classification(300, 6, n_informative=4, n_classes=3, random_state=seed)
    return X.astype(np.float32), y


def fitted_net(seed=0):
    """The estimator every case starts from: fitted for two epochs."""
    import torch

    from sk_l2rw import L2RWClassifier
    from sk_l2rw.modules import MLP

    X, y = _problem(seed)
    net = L2RWClassifier(MLP, X[:60], y[:60], criterion=torch.nn.CrossEntropyLoss,
                         lr=0.05, max_epochs=2, batch_size=32, random_state=seed,
                         verbose=0, train_split=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return net.fit(X[60:], y[60:])


def state(net, X):
    """What must not change when a call fails."""
    return (net.predict_proba(X).tobytes(),
            tuple(v.detach().cpu().numpy().tobytes()
                  for v in net.module_.state_dict().values()),
            len(net.history), net.sample_weights_.tobytes(), dict(vars(net)).keys())


def draw_case(rng):
    """One fault: ``(kind, detail, method)``."""
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


def run_case(base, case, X_probe, X, y):
    """The outcome of one case: ``ok``, ``refused`` or a violation's description."""
    kind, detail, method = case
    net = copy.deepcopy(base)
    before = state(net, X_probe)
    old = dict(vars(net))
    if kind == "parameter":
        name, value = detail
        vars(net)[name] = value
    else:
        X, y = broken_data(*detail, X, y)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if method == "predict_proba":
                net.predict_proba(X)
            else:
                getattr(net, method)(X, y)
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
    base = fitted_net(seed)
    X, y = _problem(seed)
    X_probe, X_train, y_train = X[:40], X[60:120], y[60:120]
    rng = np.random.RandomState(seed)
    rows = []
    for _ in range(cases):
        kind, detail, method = draw_case(rng)
        outcome = run_case(base, (kind, detail, method), X_probe, X_train, y_train)
        label = f"{detail[0]}={detail[1]!r}" if kind == "parameter" else detail[0]
        rows.append(dict(kind=kind, fault=label, method=method, outcome=outcome))
    return rows


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
    lines += markdown_table(["fault", "on", "ok", "refused, unchanged", "violations"],
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
    args = parser.parse_args(argv)
    out = report_folder(args, RESULTS)
    if args.render:
        return rerender(args.render, out or RESULTS, report)
    study = StudyRun("fuzz", argv)
    rows = run(40 if args.smoke else args.cases, args.seed)
    _, text = study.finish(rows, report, out, meta=dict(smoke=args.smoke))
    print(text)
    return rows


if __name__ == "__main__":
    main()
