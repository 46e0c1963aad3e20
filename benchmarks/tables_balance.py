"""Why the tabular route loses on binary sets with a per-class clean set.

For one seed of ``benchmarks/tables.py``'s cells on the binary sets, this fits
``ReweightedClassifier(HistGradientBoostingClassifier())`` as that benchmark does and
reports how L2RW's row weights split between the two *noisy* labels, against their
unweighted shares and the true ones, and the share of test rows each model predicts
positive: the reweighted HGB, HGB with uniform weights on the same rows (the clean
rows keeping their class weights), and plain HGB.

Usage::

    python -m benchmarks.tables_balance                 # adult and kdd_census, seed 0
    python -m benchmarks.tables_balance --smoke         # breast_cancer (bundled; CI)
"""

import argparse
import warnings

import numpy as np

from benchmarks.common.protocol import (KIND_NAMES, TABLES_SIZES, clean_split, load_pool,
                                        prepare, prior_weights, protocol_label,
                                        tables_full_config, tables_smoke_config)
from benchmarks.common.baselines import fit_reweighted, hgb
from benchmarks.environment import (RESULTS, StudyRun, add_report_arguments, report_folder,
                                    report_header, rerender)
from benchmarks.report import markdown_table
from sk_l2rw.noise import flip_labels


def run(datasets, seed=0, cfg=None, protocols=(("per_class", 10), ("audit", 200)),
        kinds=("uniform", "background")):
    """One row per (data set, protocol, noise kind, model)."""
    cfg = cfg or tables_full_config()
    rows = []
    for name in datasets:
        data = prepare(name, load_pool(name),
                       TABLES_SIZES.get(name, (None, None)), seed)
        X, y, X_test, y_test = data["X_train"], data["y_train"], data["X_test"], data["y_test"]
        prior = np.bincount(y) / len(y)
        background = int(np.bincount(y).argmax())
        for protocol in protocols:
            X_rest, y_rest, X_clean, y_clean = clean_split(X, y, protocol, seed)
            weights = (prior_weights(prior, y_clean) if protocol[0] == "per_class"
                       else None)
            c = (np.ones(len(y_clean)) if weights is None
                 else np.array([weights[k] for k in y_clean]))
            c = c / c.mean()
            for kind in kinds:
                y_noisy, _ = flip_labels(y_rest, cfg.rate, kind, background_class=background,
                                         random_state=seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = fit_reweighted(cfg, X_rest, y_noisy, X_clean, y_clean,
                                           seed, clean_class_weight=weights)
                w = model.sample_weight_
                both_X, both_y = np.vstack([X_rest, X_clean]), np.r_[y_noisy, y_clean]
                uniform = hgb(cfg, seed).fit(
                    both_X, both_y, sample_weight=np.r_[np.ones(len(y_noisy)), c])
                plain = hgb(cfg, seed).fit(both_X, both_y)
                base = dict(dataset=name, protocol=protocol[0], size=protocol[1], kind=kind,
                            seed=seed, noisy_1=float(np.mean(y_noisy == 1)),
                            weighted_noisy_1=float(w[y_noisy == 1].sum() / w.sum()),
                            true_1=float(np.mean(y_rest == 1)))
                for label, fitted in (("reweighted_hgb", model),
                                      ("hgb_uniform_weights", uniform), ("hgb", plain)):
                    pred = fitted.predict(X_test)
                    rows.append(dict(base, model=label, acc=float(np.mean(pred == y_test)),
                                     predicted_1=float(np.mean(pred == 1)),
                                     test_1=float(np.mean(y_test == 1))))
    return rows


def render(rows):
    """The table: one line per row of :func:`run`."""
    body = [[r["dataset"], protocol_label((r["protocol"], r["size"])),
             KIND_NAMES[r["kind"]],
             f"{r['noisy_1']:.3f} / {r['weighted_noisy_1']:.3f} ({r['true_1']:.3f})",
             r["model"], f"{100 * r['acc']:.1f}",
             f"{r['predicted_1']:.3f} ({r['test_1']:.3f})"] for r in rows]
    return markdown_table(["data set", "clean set", "noise",
                           "noisy label 1: share / weighted share (true share)", "model",
                           "accuracy", "predicted 1 (test)"], body, align="lllrlrr")


def report(saved):
    """The Markdown report of a run: ``saved`` is what :func:`main` wrote as JSON
    (``meta``, the run's record with its ``seed``; ``rows``, :func:`run`'s)."""
    meta = dict(saved["meta"])
    seed, smoke = meta.pop("seed"), meta.pop("smoke", False)
    lines = report_header(f"Class balance of L2RW's row weights on the binary sets "
                          f"(seed {seed})", **meta)
    if smoke:
        lines += ["**A `--smoke` run on breast_cancer: it only shows that the script "
                  "runs.**", ""]
    lines += ["Generated by `benchmarks/tables_balance.py` (its docstring says what is "
              "fitted); the reading is in `docs/findings/tables.md`.", ""]
    return "\n".join(lines + render(saved["rows"])) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_report_arguments(parser, "tables_balance.md", smoke="breast_cancer only (CI)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = report_folder(args, RESULTS)
    if args.render:
        return rerender(args.render, out or RESULTS, report)
    study = StudyRun("tables_balance", argv)
    if args.smoke:
        rows = run(["breast_cancer"], args.seed, cfg=tables_smoke_config(),
                   protocols=(("per_class", 10),), kinds=("uniform",))
    else:
        rows = run(["adult", "kdd_census"], args.seed)
    _, text = study.finish(rows, report, out, meta=dict(smoke=args.smoke, seed=args.seed))
    print(text)
    return rows


if __name__ == "__main__":
    main()
