"""Peak memory and time of one L2RW step on sparse X against the same step on the
densified X.

A text-like problem: ``n`` rows of ``d`` features with ``nnz`` non-zeros each (TF-IDF
of short documents), 2 classes, :class:`sk_l2rw.modules.MLP` with 256 hidden units.
Each step takes a training batch of 256 rows and a clean batch of 32 from the
training matrix exactly as ``fit`` does (a sparse matrix: host CSR slicing into a
torch sparse COO batch; a dense one: rows indexed out of one tensor) and runs the
ghost step; plain training's step (uniform weights) on the same batches is the
baseline. Peak memory is torch's CPU allocator's, measured as
``benchmarks/speed.py`` does (:func:`benchmarks.common.timing.cpu_peak_bytes`), over
everything a step allocates beyond what was live before it; times are medians of
interleaved repeats.

Usage::

    python -m benchmarks.sparse_memory                 # d = 2k ... 50k
    python -m benchmarks.sparse_memory --smoke         # tiny (CI)

Writes ``results/sparse_memory.{json,md,png}``.
"""

import argparse
import json
import time
from pathlib import Path
from statistics import median

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from benchmarks.report import markdown_table
from benchmarks.environment import add_report_arguments, report_header, study_command
from benchmarks.common.timing import cpu_peak_bytes

FULL = dict(widths=(2_000, 5_000, 10_000, 20_000, 50_000), n_rows=4096, nnz=100,
            batch=256, clean_batch=32, hidden=256, repeats=9)
SMOKE = dict(widths=(300,), n_rows=300, nnz=10, batch=32, clean_batch=8, hidden=16,
             repeats=2)


def problem(n_rows, width, nnz, seed=0):
    """A CSR matrix with ``nnz`` non-zeros per row (positive, TF-IDF-like) and labels
    from a sparse linear score."""
    import scipy.sparse as sp

    rng = np.random.RandomState(seed)
    cols = np.concatenate([rng.choice(width, nnz, replace=False) for _ in range(n_rows)])
    X = sp.csr_matrix((rng.uniform(0.05, 0.3, n_rows * nnz).astype(np.float32),
                       cols, np.arange(0, n_rows * nnz + 1, nnz)), shape=(n_rows, width))
    X.sort_indices()
    y = (X @ rng.randn(width) > 0).astype(np.int64)
    return X, y


def measure(width, n_rows, nnz, batch, clean_batch, hidden, repeats, seed=0):
    """Rows for one width: (layout, step) -> peak bytes, median seconds."""
    import torch
    from torch import nn

    from sk_l2rw.data import SparseRows
    from sk_l2rw.ghost import ghost_step
    from sk_l2rw.meta_gradient import plain_step
    from sk_l2rw.modules import MLP

    X, y = problem(n_rows, width, nnz, seed)
    sources = {"sparse": SparseRows(X, torch.float32, "cpu"),
               "dense": torch.as_tensor(X.toarray())}
    targets = torch.as_tensor(y)
    torch.manual_seed(seed)
    module = MLP(width, 2, hidden_layer_sizes=(hidden,))
    loss_fn = lambda out, t: nn.functional.cross_entropy(out, t, reduction="none")  # noqa: E731
    rng = np.random.RandomState(seed)
    steps = {"l2rw": ghost_step, "plain": plain_step}

    def one_step(layout, step, rows, clean_rows):
        source = sources[layout]
        Xb, Xc = source[torch.as_tensor(rows)], source[torch.as_tensor(clean_rows)]
        module.zero_grad(set_to_none=True)
        steps[step](module, loss_fn, Xb, targets[rows], Xc, targets[clean_rows], lr=0.1)

    combos = [(layout, step) for step in steps for layout in sources]
    draws = [(rng.choice(n_rows, batch, replace=False),
              rng.choice(n_rows, clean_batch, replace=False)) for _ in range(repeats + 1)]
    for combo in combos:  # warm-up: first calls allocate caches
        one_step(*combo, *draws[0])
    peaks = {}
    for combo in combos:
        module.zero_grad(set_to_none=True)
        peaks[combo] = cpu_peak_bytes(lambda: one_step(*combo, *draws[1]))[0]
    times = {combo: [] for combo in combos}
    for rows, clean_rows in draws[1:]:
        for combo in combos:  # interleaved, so that noise hits every variant alike
            started = time.perf_counter()
            one_step(*combo, rows, clean_rows)
            times[combo].append(time.perf_counter() - started)
    return [dict(width=width, n_rows=n_rows, nnz=nnz, batch=batch, clean_batch=clean_batch,
                 hidden=hidden, layout=layout, step=step, peak_bytes=int(peaks[(layout, step)]),
                 step_s=median(times[(layout, step)]),
                 weight_bytes=4 * width * hidden)
            for layout, step in combos]


def run(settings):
    import torch

    torch.set_num_threads(2)
    rows = []
    for width in settings["widths"]:
        rows += measure(width, **{k: v for k, v in settings.items() if k != "widths"})
    return rows


def _get(rows, width, layout, step):
    return next(r for r in rows if (r["width"], r["layout"], r["step"]) == (width, layout, step))


def render(rows):
    """The table: one line per width, L2RW and plain steps on sparse and dense X."""
    body = []
    for width in sorted({r["width"] for r in rows}):
        ls, ld = _get(rows, width, "sparse", "l2rw"), _get(rows, width, "dense", "l2rw")
        ps, pd_ = _get(rows, width, "sparse", "plain"), _get(rows, width, "dense", "plain")
        body.append([f"{width:,}", f"{ls['weight_bytes'] / 1e6:.1f}",
                     f"{ls['peak_bytes'] / 1e6:.1f} / {ld['peak_bytes'] / 1e6:.1f}",
                     f"{ls['peak_bytes'] / ld['peak_bytes']:.2f}",
                     f"{ps['peak_bytes'] / 1e6:.1f} / {pd_['peak_bytes'] / 1e6:.1f}",
                     f"{1e3 * ls['step_s']:.1f} / {1e3 * ld['step_s']:.1f}",
                     f"{ls['step_s'] / ps['step_s']:.2f}"])
    return "\n".join(markdown_table(
        ["features", "first-layer weight (MB)", "L2RW step peak, sparse / dense (MB)", "ratio",
         "plain step peak, sparse / dense (MB)", "L2RW step time, sparse / dense (ms)",
         "L2RW / plain time, sparse"], body, align="r" * 7)) + "\n"


def figure(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = sorted({r["width"] for r in rows})
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for layout, style in (("sparse", "o-"), ("dense", "s--")):
        for step, colour in (("l2rw", "C0"), ("plain", "C1")):
            ax.plot(widths, [_get(rows, w, layout, step)["peak_bytes"] / 1e6 for w in widths],
                    style, color=colour, label=f"{step}, {layout} X")
    ax.plot(widths, [_get(rows, w, "sparse", "l2rw")["weight_bytes"] / 1e6 for w in widths],
            ":", color="grey", label="first-layer weight")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("features")
    ax.set_ylabel("peak memory of one step (MB)")
    ax.set_title("One step, batch 256 + clean 32, MLP 256")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(saved):
    """The Markdown report of a run: ``saved`` is what :func:`main` wrote as JSON
    (``meta``, the run's record; ``settings``; ``rows``, :func:`run`'s)."""
    lines = report_header("Sparse X: peak memory and time of one step", **saved["meta"])
    lines += [f"Settings: {json.dumps(saved['settings'])}. Generated by "
              "`benchmarks/sparse_memory.py` (its docstring says what is measured).", "",
              render(saved["rows"]), "![peak memory](sparse_memory.png)", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_report_arguments(parser, "sparse_memory.md", smoke="tiny sizes (CI)")

    def measure(args):
        settings = SMOKE if args.smoke else FULL
        return run(settings), None, dict(settings=settings)

    def plot(saved, folder):
        figure(saved["rows"], folder / "sparse_memory.png")

    return study_command("sparse_memory", parser, argv, report, measure, beside=plot)


if __name__ == "__main__":
    main()
