"""Does L2RW's gap to the ceiling on MNIST 4-vs-9 close with the paper's training length?

The quality benchmark trains every net for 20 epochs (320 optimizer steps at 2,000
rows, 800 at the paper's 5,000); the paper trained LeNet for 8,000 steps and reports
L2RW about 2 points of test error above balanced training at a 0.995 majority
proportion. This side study repeats the quality benchmark's paper-size cell (5,000
training rows at proportion 0.995, 10 clean rows per class, LeNet, Adam(1e-3), batch
128) at several step counts, the same count for every net:

- plain training on the imbalanced rows,
- ``L2RWClassifier`` with the clean set,
- the ceiling: the same net on 5,000 balanced rows.

The data, seeds and nets are the quality benchmark's (``benchmarks/quality.py``), so at
800 steps L2RW and the ceiling repeat its "Imbalance with the paper's training-set size"
table. Plain training does not: there its fit also scores the clean set after every
epoch (for the early-stopping extra), and every skorch DataLoader pass draws a seed
from torch's global random stream, which changes the later shuffles.

``--optimizer sgd`` uses the paper's optimizer instead (momentum SGD, lr 1e-3, batch
100) and writes ``imbalance_steps_sgd.md``; otherwise ``imbalance_steps.md`` is written
into ``--out`` (default ``benchmarks/results``; a ``--smoke`` run writes nothing unless
given), each with its rows next to it (``imbalance_steps.json``,
``imbalance_steps_sgd.json``: one per cell, with the setting and the run's metadata),
from which ``--render JSON`` rebuilds the report.

Usage::

    python -m benchmarks.imbalance_steps                 # 800 and 8,000 steps, seeds 0-2
    python -m benchmarks.imbalance_steps --steps 800,2000,8000 --seeds 0,1,2,3,4
    python -m benchmarks.imbalance_steps --optimizer sgd --steps 2000,8000   # the paper's
    python -m benchmarks.imbalance_steps --smoke         # digits, MLP (CI; no download)
    python -m benchmarks.imbalance_steps --render benchmarks/results/imbalance_steps_sgd.json
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# By its package name, so that worker processes can unpickle the configurations and
# nets that benchmarks/common/ defines.
from benchmarks.common import methods, protocol
from benchmarks.common.runner import limited_threads
from benchmarks.report import markdown_table, mean_std
from benchmarks.environment import (add_jobs_argument, add_report_arguments, report_header,
                                    study_command, worker_count)

#: --optimizer choices: the quality benchmark's setting, or the paper's (section 5.1:
#: momentum SGD, lr 1e-3, batch 100). Optimizer given by name, resolved in the worker.
OPTIMIZERS = {
    "adam": dict(label="the quality benchmark's Adam", lr=None, batch_size=None,
                 optimizer="Adam", extra={}),  # None: the quality configuration's
    "sgd": dict(label="the paper's SGD with momentum 0.9", lr=1e-3, batch_size=100,
                optimizer="SGD", extra={"optimizer__momentum": 0.9}),
}
METHODS = (("plain", "plain (imbalanced)"), ("l2rw", "L2RW"),
           ("ceiling", "ceiling (balanced rows)"))


def setting(smoke=False):
    """The quality benchmark's configuration for this study, and its training size."""
    if smoke:  # digits 4 vs 9 with the small MLP: bundled with scikit-learn
        cfg = protocol.smoke_config()
        return cfg, cfg.imb_train, 0.9
    cfg = protocol.use_module(protocol.full_config(), "lenet")
    return cfg, cfg.imb_paper_train, max(cfg.imb_proportions)


def epochs_for(steps, n_rows, batch_size):
    """Whole epochs that make at least ``steps`` optimizer steps."""
    return math.ceil(steps / math.ceil(n_rows / batch_size))


@limited_threads(1)
def fit_cell(cfg, pool, n_train, proportion, clean, steps, seed, optimizer="adam"):
    """Plain, L2RW and ceiling, each trained for ``steps`` steps; balanced accuracies."""
    import torch

    opt = OPTIMIZERS[optimizer]
    lr, batch_size = opt["lr"] or cfg.lr, opt["batch_size"] or cfg.batch_size
    epochs = epochs_for(steps, n_train, batch_size)
    run = dataclasses.replace(cfg, epochs=epochs, min_steps=0, lr=lr,
                              batch_size=batch_size)
    net_kw = dict(opt["extra"], optimizer=getattr(torch.optim, opt["optimizer"]))
    X, y = pool["X_train"], pool["y_train"]
    X_test, y_test = pool["X_test"], protocol.minority_codes(pool["y_test"], cfg.imb_classes[1])
    out = dict(seed=seed, steps=steps, epochs=epochs)
    # Same draws, in the same order, as the quality benchmark's paper-size extra.
    X_bal, y_bal = protocol.imbalanced_rows(cfg, X, y, 0.5, n_train, seed)
    net, _ = methods.fit_plain(run, X_bal, y_bal, 2, seed, **net_kw)
    out["ceiling"] = methods.metrics(net, X_test, y_test)["bal_acc"]
    X_rest, y_rest, X_clean, y_clean = protocol.imbalance_clean_split(cfg, X, y, clean, seed)
    X_imb, y_imb = protocol.imbalanced_rows(cfg, X_rest, y_rest, proportion, n_train, seed)
    net, _ = methods.fit_plain(run, X_imb, y_imb, 2, seed, **net_kw)
    out["plain"] = methods.metrics(net, X_test, y_test)["bal_acc"]
    net, warned = methods.fit_l2rw(run, X_imb, y_imb, X_clean, y_clean, 2, seed, **net_kw)
    out["l2rw"] = methods.metrics(net, X_test, y_test)["bal_acc"]
    out["warned"] = bool(warned)
    out["clean_loss_last"] = float(net.history[-1]["clean_loss"])
    return out


def run(steps, seeds, *, optimizer="adam", clean=10, smoke=False, jobs=2, log=print):
    """Every (steps, seed) cell; returns the rows and a description of the setting."""
    cfg, n_train, proportion = setting(smoke)
    pool = protocol.prepare_imbalance(cfg, protocol.load_pool(cfg.imb_dataset))
    cells = [(s, seed) for s in steps for seed in seeds]
    log(f"{len(cells)} cells on {jobs} worker(s)")
    args = [(cfg, pool, n_train, proportion, clean, s, seed, optimizer)
            for s, seed in cells]
    if jobs > 1:
        from joblib import Parallel, delayed

        # max_nbytes=None: arrays travel pickled, not as read-only memory maps.
        rows = Parallel(n_jobs=jobs, max_nbytes=None)(delayed(fit_cell)(*a)
                                                      for a in args)
    else:
        rows = [fit_cell(*a) for a in args]
    about = dict(module=cfg.module, dataset=cfg.imb_dataset, classes=cfg.imb_classes,
                 n_train=n_train, proportion=proportion, clean=clean,
                 optimizer=OPTIMIZERS[optimizer]["label"],
                 quality_setting=optimizer == "adam",
                 lr=OPTIMIZERS[optimizer]["lr"] or cfg.lr,
                 batch_size=OPTIMIZERS[optimizer]["batch_size"] or cfg.batch_size,
                 test_per_class=cfg.imb_test_per_class)
    return rows, about


def table(rows):
    """One line per step count: mean ± std over seeds, and L2RW's gap to the ceiling."""
    body = []
    for steps in sorted({r["steps"] for r in rows}):
        sel = sorted((r for r in rows if r["steps"] == steps), key=lambda r: r["seed"])
        gap = 100 * (np.mean([r["l2rw"] for r in sel]) - np.mean([r["ceiling"] for r in sel]))
        body.append([f"{steps:,}", str(sel[0]["epochs"]),
                     *(mean_std([r[m] for r in sel], scale=100) for m, _ in METHODS),
                     f"{gap:+.1f}", ", ".join(f"{100 * r['l2rw']:.1f}" for r in sel)])
    return markdown_table(["optimizer steps", "epochs", *(n for _, n in METHODS),
                           "L2RW − ceiling (points)", "L2RW per seed"], body,
                          align="rr" + "r" * len(METHODS) + "rl")


def render(rows, about, **run):
    """The Markdown report of :func:`run`'s rows and setting; ``run``:
    :func:`report_header`'s keywords (``command``, ``started``, ``elapsed``,
    ``smoke``...; as the JSON keeps them, :func:`~benchmarks.environment.run_record`)."""
    warned = sum(r["warned"] for r in rows)
    minority = round(about["n_train"] * (1 - about["proportion"]))
    lines = report_header("sk_l2rw: MNIST 4-vs-9 imbalance against training length",
                          **run)
    lines += [
        f"{about['dataset']} {about['classes'][0]} vs {about['classes'][1]}, "
        f"{about['n_train']:,} training rows at majority proportion {about['proportion']} "
        f"({about['clean']} clean rows per class, drawn first), the quality benchmark's "
        f"{about['module']} for every net, {about['optimizer']} (lr={about['lr']:g}, "
        f"batch {about['batch_size']}), the same number of optimizer steps for every net "
        f"(whole epochs, so slightly more). Test set: {about['test_per_class']} rows of "
        "each class, so "
        "accuracy equals balanced accuracy. Mean ± standard deviation over seeds, "
        "balanced accuracy in %.", "",
    ] + table(rows) + [
        "", f"The estimator's clean-loss warning fired in {warned} of {len(rows)} L2RW fits.",
        "",
    ]
    if about["quality_setting"]:
        lines += [
            "The data, seeds and nets are those of `benchmarks/quality.py`: at 800 steps "
            "L2RW and the ceiling repeat its paper-size table. Plain training does not, "
            "because there its fit also scores the clean set after every epoch, and each "
            "skorch DataLoader pass draws a seed from torch's global random stream, which "
            f"changes the later shuffles; with {minority} minority rows, plain training's "
            "score depends strongly on that order.", ""]
    else:
        lines += [
            "The data, seeds and module are those of `benchmarks/quality.py`; the "
            "optimizer and batch size are the paper's, for comparison with its figure "
            "rather than with the quality benchmark's tables.", ""]
    return "\n".join(lines)


def _ints(text):
    return tuple(int(v) for v in text.split(",") if v.strip())


def report(saved):
    """The Markdown report of what :func:`main` saved (``rows``, ``about``, ``meta``)."""
    return render(saved["rows"], saved["about"], **saved["meta"])


def main(argv=None):
    """The command line (module docstring); returns the rows, or with ``--render``
    the path of the rebuilt report (:func:`~benchmarks.environment.study_command`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=_ints, default=None,
                        help="comma-separated optimizer step counts (default 800,8000)")
    parser.add_argument("--seeds", type=_ints, default=None,
                        help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam",
                        help="adam: the quality benchmark's Adam(1e-3), batch 128 "
                             "(writes imbalance_steps.md); sgd: the paper's momentum "
                             "SGD, lr 1e-3, batch 100 (writes imbalance_steps_sgd.md)")
    add_report_arguments(parser, "imbalance_steps{,_sgd}.md",
                         smoke="digits and the small MLP, a few steps (CI; no download)")
    add_jobs_argument(parser)

    def measure(args):
        steps = args.steps or ((20, 60) if args.smoke else (800, 8000))
        seeds = args.seeds or ((0,) if args.smoke else (0, 1, 2))
        if min(steps) < 1:
            parser.error("--steps must be positive")
        rows, about = run(steps, seeds, optimizer=args.optimizer, smoke=args.smoke,
                          jobs=worker_count(args))
        return rows, dict(smoke=args.smoke), dict(about=about)

    def name(args):
        return "imbalance_steps" + ("" if args.optimizer == "adam" else f"_{args.optimizer}")

    return study_command("imbalance_steps", parser, argv, report, measure, name=name)


if __name__ == "__main__":
    main()
