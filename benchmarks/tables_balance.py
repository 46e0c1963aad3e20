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
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from benchmarks import quality, tables


def run(datasets, seed=0, cfg=None, protocols=(("per_class", 10), ("audit", 200)),
        kinds=("uniform", "background")):
    """One row per (data set, protocol, noise kind, model)."""
    from sk_l2rw.noise import flip_labels

    cfg = cfg or tables.full_config()
    rows = []
    for name in datasets:
        data = quality.prepare(name, quality.load_pool(name),
                               tables.FULL_SIZES.get(name, (None, None)), seed)
        X, y, X_test, y_test = data["X_train"], data["y_train"], data["X_test"], data["y_test"]
        prior = np.bincount(y) / len(y)
        background = int(np.bincount(y).argmax())
        for protocol in protocols:
            X_rest, y_rest, X_clean, y_clean = tables.clean_split(X, y, protocol, seed)
            weights = (tables.prior_weights(prior, y_clean) if protocol[0] == "per_class"
                       else None)
            c = (np.ones(len(y_clean)) if weights is None
                 else np.array([weights[k] for k in y_clean]))
            c = c / c.mean()
            for kind in kinds:
                y_noisy, _ = flip_labels(y_rest, cfg.rate, kind, background_class=background,
                                         random_state=seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = tables.fit_reweighted(cfg, X_rest, y_noisy, X_clean, y_clean,
                                                  seed, clean_class_weight=weights)
                w = model.sample_weight_
                both_X, both_y = np.vstack([X_rest, X_clean]), np.r_[y_noisy, y_clean]
                uniform = tables._hgb(cfg, seed).fit(
                    both_X, both_y, sample_weight=np.r_[np.ones(len(y_noisy)), c])
                plain = tables._hgb(cfg, seed).fit(both_X, both_y)
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
    lines = ["| data set | clean set | noise | noisy label 1: share / weighted share "
             "(true share) | model | accuracy | predicted 1 (test) |",
             "|---|---|---|---:|---|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {tables.protocol_label((r['protocol'], r['size']))} | "
            f"{tables.KIND_NAMES[r['kind']]} | {r['noisy_1']:.3f} / "
            f"{r['weighted_noisy_1']:.3f} ({r['true_1']:.3f}) | {r['model']} | "
            f"{100 * r['acc']:.1f} | {r['predicted_1']:.3f} ({r['test_1']:.3f}) |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="breast_cancer only (CI)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if args.smoke:
        rows = run(["breast_cancer"], args.seed, cfg=tables.smoke_config(),
                   protocols=(("per_class", 10),), kinds=("uniform",))
    else:
        rows = run(["adult", "kdd_census"], args.seed)
    print(render(rows))
    return rows


if __name__ == "__main__":
    main()
