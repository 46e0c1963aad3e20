"""When should L2RW warn that a fit is blowing up? The clean-loss rule, measured.

``L2RWClassifier`` warns once per fit when :func:`sk_l2rw.callbacks.clean_loss_alarm`
says so: the epoch's clean loss is more than 10x its best so far *and* above the
first epoch's. This script fits the runs that tell a good rule from a bad one and
reports, for that rule and for the ratio alone, which fits it fires on:

- the quality benchmark's collapse study (letter restricted to 6 classes, 10 clean
  rows per class, 40% BackgroundFlip and UniformFlip, SGD with momentum 0.9 at
  learning rates 0.3, 0.1, 0.03, 0.01, seeds 0-2): large rates break L2RW;
- MNIST 4-vs-9 at majority proportions 0.9-0.995 with 10 and 100 clean rows per
  class, seeds 0-4, Adam at 1e-3, with the benchmark's MLP and with LeNet: fits that
  do not break, but whose small clean set is fitted almost perfectly.

A fit *failed* when training raised an error (non-finite loss) or its test balanced
accuracy is 20 or more points below the best fit of its group (collapse study: same
noise and seed, over the learning rates; 4-vs-9: same module, proportion and clean
size, over the seeds). That definition uses the test set only, not the clean loss
the rules watch.

Writes ``clean_loss_warning.md`` and its rows, ``clean_loss_warning.json`` (one per
fit, with the run's metadata), into ``--out`` (default ``benchmarks/results``; a
``--smoke`` run writes nothing unless given), from which ``--render JSON`` rebuilds
the report.

Usage::

    python -m benchmarks.clean_loss_warning           # 124 fits, about 4 min on 2 cores
    python -m benchmarks.clean_loss_warning --smoke   # digits only (CI; no download)
    python -m benchmarks.clean_loss_warning --render benchmarks/results/clean_loss_warning.json
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]

# benchmarks/common/ holds the data preparation and net settings. Imported by its
# package name, so that worker processes can unpickle the configurations and nets
# it defines.
from benchmarks.common import methods, protocol
from benchmarks.common.runner import limited_threads
from benchmarks.report import markdown_table
from benchmarks.environment import (add_jobs_argument, add_report_arguments, report_header,
                                    study_command, worker_count)

FAILED_POINTS = 0.20  # balanced accuracy this far below the best of the group
COLLAPSE_LRS = (0.3, 0.1, 0.03, 0.01)


def rules():
    """The estimator's rule and the ratio alone, as ``name -> f(losses) -> bool``."""
    from sk_l2rw.callbacks import CLEAN_LOSS_RISE, clean_loss_alarm

    def ratio_only(losses):
        return len(losses) > 1 and losses[-1] > CLEAN_LOSS_RISE * min(losses[:-1])

    return {"estimator (10x best and above epoch 1)": clean_loss_alarm,
            "10x best alone": ratio_only}


def first_alarm(rule, curve):
    """The 1-based epoch at which ``rule`` first fires on ``curve``, or None."""
    for epoch in range(2, len(curve) + 1):
        if rule(curve[:epoch]):
            return epoch
    return None


def plan(smoke=False):
    """The fits to run: ``(group, label, kind, args)``."""
    jobs = []
    cfg = protocol.smoke_config() if smoke else protocol.full_config()
    lrs = (0.3, 0.01) if smoke else COLLAPSE_LRS
    seeds = cfg.collapse_seeds
    pool = protocol.load_pool(cfg.collapse_dataset)
    for seed in seeds:
        data = protocol.prepare_collapse(cfg, pool, seed)
        for kind in cfg.collapse_kinds if smoke else ("background", "uniform"):
            for lr in lrs:
                jobs.append((("collapse", kind, seed),
                             f"collapse {kind} lr={lr:g} seed {seed}",
                             "collapse", (cfg, data, kind, lr, seed)))
    for module in ("mlp",) if smoke else ("mlp", "lenet"):
        mcfg = protocol.use_module(protocol.full_config(), module) if module == "lenet" else cfg
        imb = protocol.prepare_imbalance(mcfg, protocol.load_pool(mcfg.imb_dataset))
        for seed in (mcfg.imb_seeds or mcfg.seeds):
            for clean in mcfg.imb_clean_sizes:
                for p in mcfg.imb_proportions:
                    jobs.append(((f"4-vs-9 {module}", p, clean),
                                 f"4-vs-9 {module} p={p} clean={clean} seed {seed}",
                                 "imbalance", (mcfg, imb, p, clean, seed)))
    return jobs


@limited_threads(1)
def fit_one(kind, args):
    """One L2RW fit; returns its clean-loss curve and test outcome."""
    import torch

    from sk_l2rw import L2RWClassifier
    from sk_l2rw.noise import flip_labels, split_clean

    if kind == "collapse":
        cfg, data, noise, lr, seed = args
        X, y = data["X_train"], data["y_train"]
        X_test, y_test = data["X_test"], data["y_test"]
        K = len(data["classes"])
        X_fit, y_fit, X_clean, y_clean = split_clean(X, y, cfg.collapse_clean,
                                                     random_state=seed)
        y_fit, _ = flip_labels(y_fit, cfg.rate, noise, background_class=0,
                               random_state=seed)
        params = methods.net_params(cfg, X.shape[1], K, len(y_fit), lr=lr,
                              epochs=cfg.collapse_epochs)
        params.update(optimizer=torch.optim.SGD, optimizer__momentum=0.9)
    else:
        cfg, pool, p, clean, seed = args
        X, y = pool["X_train"], pool["y_train"]
        X_test = pool["X_test"]
        y_test = protocol.minority_codes(pool["y_test"], cfg.imb_classes[1])
        X_rest, y_rest, X_clean, y_clean = protocol.imbalance_clean_split(cfg, X, y, clean, seed)
        X_fit, y_fit = protocol.imbalanced_rows(cfg, X_rest, y_rest, p, cfg.imb_train, seed)
        params = methods.net_params(cfg, X.shape[1], 2, len(y_fit))
    net = L2RWClassifier(clean_X=X_clean, clean_y=y_clean, random_state=seed, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the rules are replayed on the curve
        try:
            net.fit(X_fit, y_fit)
            error = None
        except FloatingPointError as exc:
            error = str(exc).split(";")[0]
    curve = [float(r["clean_loss"]) for r in net.history if "clean_loss" in r]
    out = dict(curve=curve, error=error, bal_acc=None)
    if error is None:
        out["bal_acc"] = methods.metrics(net, X_test, y_test)["bal_acc"]
    return out


def run(smoke=False, jobs=2, log=print):
    planned = plan(smoke)
    log(f"{len(planned)} fits on {jobs} worker(s)")
    if jobs > 1:
        from joblib import Parallel, delayed

        outs = Parallel(n_jobs=jobs)(delayed(fit_one)(kind, args)
                                     for _, _, kind, args in planned)
    else:
        outs = [fit_one(kind, args) for _, _, kind, args in planned]
    rows = [dict(out, group=group, label=label)
            for (group, label, _, _), out in zip(planned, outs)]
    best = {}
    for r in rows:
        if r["bal_acc"] is not None:
            best[r["group"]] = max(best.get(r["group"], 0.0), r["bal_acc"])
    for r in rows:
        r["failed"] = (r["error"] is not None
                       or r["bal_acc"] < best[r["group"]] - FAILED_POINTS)
        r["best_of_group"] = best.get(r["group"])
        r["alarms"] = {name: first_alarm(rule, r["curve"]) for name, rule in rules().items()}
    return rows


def summary(rows):
    """Per study and rule: failed fits caught, and alarms on fits that did not fail."""
    body = []
    studies = list(dict.fromkeys(r["group"][0] for r in rows))
    for study in studies + ["all"]:
        sel = [r for r in rows if study == "all" or r["group"][0] == study]
        failed = [r for r in sel if r["failed"]]
        good = [r for r in sel if not r["failed"]]
        for name in rules():
            caught = sum(r["alarms"][name] is not None for r in failed)
            false = sum(r["alarms"][name] is not None for r in good)
            body.append([f"{study} ({len(sel)})", name, f"{caught} of {len(failed)}",
                         f"{false} of {len(good)}"])
    lines = markdown_table(["fits", "rule", "failed fits caught",
                            "alarms on fits that did not fail"], body, align="llrr")
    return lines


def fired_table(rows):
    names = list(rules())
    body = []
    for r in rows:
        if not any(v is not None for v in r["alarms"].values()):
            continue
        acc = ("error: " + r["error"]) if r["error"] else (
            f"{100 * r['bal_acc']:.1f} ({100 * r['best_of_group']:.1f})")
        c = r["curve"]
        body.append([r["label"], acc, "yes" if r["failed"] else "no",
                     *("-" if r["alarms"][n] is None else f"epoch {r['alarms'][n]}"
                       for n in names),
                     f"{c[0]:.3g}, {min(c):.3g}, {c[-1]:.3g}"])
    lines = markdown_table(["fit", "test balanced accuracy (best of group)", "failed",
                            *(f"first alarm: {n}" for n in names),
                            "clean loss: epoch 1, best, last"], body,
                           align="lrl" + "r" * len(names) + "l")
    if not body:
        lines.append("| (none) |" + " |" * (len(names) + 3))
    return lines


def render(rows, **run):
    """The Markdown report of :func:`run`'s rows; ``run``: :func:`report_header`'s
    keywords (``command``, ``started``, ``elapsed``, ``smoke``...; as the JSON keeps
    them, :func:`~benchmarks.environment.run_record`)."""
    lines = report_header("sk_l2rw: the clean-loss warning, measured", **run)
    lines += [
        "`L2RWClassifier` warns (once per fit) when the epoch's clean loss is more than "
        "10x its best so far and above the first epoch's "
        "(`sk_l2rw.callbacks.clean_loss_alarm`). The rules are replayed here on the clean-loss "
        "curve of every fit. A fit *failed* when training stopped on a non-finite loss "
        f"or its test balanced accuracy is {100 * FAILED_POINTS:.0f}+ points below the "
        "best fit of its group (collapse study: same noise and seed, over the learning "
        "rates; 4-vs-9: same module, proportion and clean size, over the seeds).", "",
        "## Summary", ""] + summary(rows) + [
        "", "## Every fit on which a rule fires", ""] + fired_table(rows) + [
        "", "## Fits", "",
        "- collapse: letter restricted to 6 classes, 10 clean rows per class, 40% "
        "BackgroundFlip and UniformFlip, the quality benchmark's MLP, SGD (momentum 0.9) "
        f"at learning rates {', '.join(f'{v:g}' for v in COLLAPSE_LRS)}, 30 epochs.",
        "- 4-vs-9 mlp / lenet: MNIST 4 vs 9, 2,000 training rows at majority proportions "
        "0.9-0.995, 10 and 100 clean rows per class, the quality benchmark's MLP or "
        "LeNet, Adam(1e-3), 20 epochs or 200 steps.",
    ]
    return "\n".join(lines) + "\n"


def report(saved):
    """The Markdown report of what :func:`main` saved (``rows`` and ``meta``)."""
    return render(saved["rows"], **saved["meta"])


def main(argv=None):
    """The command line (module docstring); returns the rows, or with ``--render``
    the path of the rebuilt report (:func:`~benchmarks.environment.study_command`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_report_arguments(parser, "clean_loss_warning.md",
                         smoke="digits only, a few fits (CI; nothing downloaded)")
    add_jobs_argument(parser)

    def measure(args):
        rows = run(smoke=args.smoke, jobs=worker_count(args))
        return rows, dict(smoke=args.smoke)

    return study_command("clean_loss_warning", parser, argv, report, measure)


if __name__ == "__main__":
    main()
