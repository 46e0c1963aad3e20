"""Everything to check on a GPU, in one command (36 s on one H200, 2026-12-04).

1. **Exactness**: the meta-gradients and weights of every computation (reference,
   jvp, ghost) on the exactness tests' modules (an MLP, a LeNet CNN, a
   batch-normalised MLP for jvp and reference), and the ``sample_weights_`` of whole
   ``L2RWClassifier`` fits (dense, dict and sparse X, clean batches,
   ``train_on_clean``, ``clean_class_weight``), computed in float64 on the device
   and on the CPU from the same parameters and rows: largest absolute difference,
   bar 1e-9.
2. **Host synchronisation**: ``torch.cuda.set_sync_debug_mode`` around L2RW's steps
   (``train_step_single``, and the slicing of each batch), for the same fits:
   ``"error"`` (does a step synchronise at all? the first message) and ``"warn"``
   (how many synchronising calls per step). skorch's own recording of the loss
   (``loss.item()``, once per step, outside ``train_step_single``) is outside the
   window, as is the one check of ghost against jvp that ``meta_gradient="auto"``
   runs on its first batch.
3. **Peak memory** of each fit (``torch.cuda.max_memory_allocated`` beyond what was
   allocated before it).
4. **Speed**: ``benchmarks.speed``'s quick configuration on the device (its own
   report, ``speed_cuda.md``, next to this one).

A case that raises is a row with its error, not the end of the run, and parts 1-3
are written before the speed part starts: a device lent for minutes returns what it
measured even when the speed part is cut short.

Writes ``gpu_check.md`` and ``gpu_check.json`` into ``--out``. Without CUDA it exits
with status 2 and says so; ``--dry-run`` runs every part on the CPU at tiny sizes
(seconds), to show that the code path works.

Usage::

    python -m benchmarks.gpu_check                  # on a machine with CUDA
    python -m benchmarks.gpu_check --dry-run --out /tmp/gpu_check
    python -m benchmarks.gpu_check --render benchmarks/results/gpu_check.json
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from benchmarks.environment import (StudyRun, add_render_argument, report_header, rerender,
                                    run_folder)
from benchmarks.models import LeNet, mlp
from benchmarks.report import markdown_table
# The speed study's parts and report (benchmarks.speed runs the same), on the GPU.
from benchmarks.common.speed_run import run as speed_run
from benchmarks.common.timing import quick_config as speed_quick_config
from benchmarks.common.timing import smoke_config as speed_smoke_config
from sk_l2rw import L2RWClassifier
from sk_l2rw.ghost import ghost_step
from sk_l2rw.meta_gradient import jvp_step, reference_step

STUDY = "gpu_check"
TOLERANCE = 1e-9
STEPS = {"reference": reference_step, "jvp": jvp_step, "ghost": ghost_step}
LOSS = nn.CrossEntropyLoss(reduction="none")


class BatchNormMLP(nn.Module):
    """Rows not independent (batch statistics): jvp and reference only."""

    def __init__(self, n_features=20, n_classes=4):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, 32), nn.BatchNorm1d(32), nn.ReLU(),
                                 nn.Linear(32, n_classes))

    def forward(self, X):
        return self.net(X)


class NumCat(nn.Module):
    """forward(num, cat): a dict X with an embedding."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(6, 3)
        self.hidden = nn.Linear(7, 32)
        self.out = nn.Linear(32, 3)

    def forward(self, num, cat):
        return self.out(torch.relu(self.hidden(torch.cat([num, self.embed(cat)], 1))))


# ---------------------------------------------------------------------------
# 1. Exactness of one step
# ---------------------------------------------------------------------------


def step_cases(dry):
    """(name, module factory, X, y, X_clean, y_clean, computations), float64, CPU."""
    g = torch.Generator().manual_seed(0)
    n, m = (8, 4) if dry else (64, 32)

    def rows(shape, k):
        return (torch.randn(n, *shape, generator=g, dtype=torch.float64),
                torch.randint(k, (n,), generator=g),
                torch.randn(m, *shape, generator=g, dtype=torch.float64),
                torch.randint(k, (m,), generator=g))

    return [
        ("MLP 20-64-64-4", lambda: mlp((20, 64, 64, 4)), *rows((20,), 4),
         ("reference", "jvp", "ghost")),
        ("LeNet", LeNet, *rows((1, 28, 28), 10), ("reference", "jvp", "ghost")),
        ("MLP with BatchNorm", BatchNormMLP, *rows((20,), 4), ("reference", "jvp")),
    ]


def step_differences(device, dry):
    """Largest |device - CPU| of the meta-gradients, weights and parameter gradients
    of one step of every computation, from the same float64 parameters."""
    out = []
    for name, make, X, y, Xc, yc, computations in step_cases(dry):
        torch.manual_seed(0)
        template = make().double()
        for computation in computations:
            row = dict(part="step", case=name, computation=computation)
            with _recorded(row):
                results = []
                for where in ("cpu", device):
                    module = copy.deepcopy(template).to(where)
                    result = STEPS[computation](module, LOSS, X.to(where), y.to(where),
                                                Xc.to(where), yc.to(where), lr=0.1)
                    grads = [p.grad.double().cpu() for p in module.parameters()]
                    results.append((result.meta_gradients.cpu(), result.weights.cpu(),
                                    grads))
                (u0, w0, g0), (u1, w1, g1) = results
                row.update(meta=float((u0 - u1).abs().max()),
                           weights=float((w0 - w1).abs().max()),
                           grads=max(float((a - b).abs().max()) for a, b in zip(g0, g1)))
            out.append(row)
    return out


@contextlib.contextmanager
def _recorded(row):
    """Run the block; an exception becomes ``row["error"]`` (its type and message)
    so that one failing case leaves the others measured."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - every failure is a finding here
        # torch.testing's messages say where and by how much on later lines.
        lines = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        row["error"] = f"{type(exc).__name__}: {lines}"[:400]


# ---------------------------------------------------------------------------
# 2-3. Whole fits: weights against the CPU, synchronisation, peak memory
# ---------------------------------------------------------------------------


def fit_problem(form, dry, seed=0):
    rng = np.random.RandomState(seed)
    n = 256 if dry else 4096
    X = rng.normal(size=(n, 20))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)
    if form == "sparse":
        X[np.abs(X) < 1] = 0
        X = sp.csr_matrix(X)
    elif form == "dict":
        X = {"num": X[:, :4], "cat": rng.randint(6, size=n)}
    clean = slice(0, 60)
    rest = slice(60, None)
    take = (lambda A, s: {k: v[s] for k, v in A.items()}) if form == "dict" else (
        lambda A, s: A[s])
    return take(X, rest), y[rest], take(X, clean), y[clean]


FIT_CASES = {
    "auto": ("dense", {}),
    "ghost": ("dense", {"meta_gradient": "ghost"}),
    "jvp": ("dense", {"meta_gradient": "jvp"}),
    "reference": ("dense", {"meta_gradient": "reference"}),
    "clean batch 16": ("dense", {"clean_batch_size": 16}),
    "train_on_clean + clean_class_weight": (
        "dense", {"train_on_clean": True, "clean_class_weight": "balanced",
                  "clean_batch_size": 16}),
    "dict X": ("dict", {}),
    "sparse X": ("sparse", {"clean_batch_size": 16}),
}


class _Watched(L2RWClassifier):
    """L2RWClassifier whose steps, and the slicing of their batches, run inside
    ``self.watch_`` (a context-manager factory); the first step of ``"auto"`` (its
    check of ghost against jvp, once per fit) runs outside."""

    watch_ = staticmethod(contextlib.nullcontext)

    def train_step_single(self, batch, **fit_params):
        if self._run_.computation.verifies_next:
            return super().train_step_single(batch, **fit_params)
        with self.watch_():
            return super().train_step_single(batch, **fit_params)

    def get_iterator(self, dataset, training=False):
        iterator = super().get_iterator(dataset, training=training)
        if not training:
            return iterator
        return _WatchedIterator(iterator, self)


class _WatchedIterator:
    def __init__(self, iterator, net):
        self.iterator, self.net = iterator, net

    def __len__(self):
        return len(self.iterator)

    def __iter__(self):
        it = iter(self.iterator)
        while True:
            with self.net.watch_():
                batch = next(it, StopIteration)
            if batch is StopIteration:
                return
            yield batch


def _net(form, options, device, dry):
    """A fresh float64 net (the same initial parameters every call) and its data."""
    torch.manual_seed(0)
    module = (NumCat() if form == "dict" else mlp((20, 64, 64, 3))).double()
    Xt, yt, Xc, yc = fit_problem(form, dry)
    net = _Watched(module, Xc, yc, criterion=nn.CrossEntropyLoss, max_epochs=2,
                   batch_size=128, lr=0.05, random_state=0, verbose=0, device=device,
                   **options)
    return net, Xt, yt


def _sync_mode(mode, cuda):
    """``torch.cuda.set_sync_debug_mode(mode)`` inside, as before outside; nothing on
    the CPU (the dry run)."""
    @contextlib.contextmanager
    def watch():
        if not cuda:
            yield
            return
        before = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode(mode)
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode(before)
    return watch


def fit_checks(device, dry):
    out = []
    for case, (form, options) in FIT_CASES.items():
        row = dict(part="fit", case=case)
        with _recorded(row):
            _fit_check(row, form, options, device, dry)
        out.append(row)
    return out


def _fit_check(row, form, options, device, dry):
    """Fill ``row``: weights against the CPU, peak memory, synchronisations."""
    cuda = torch.device(device).type == "cuda"
    weights = {}
    for where in ("cpu", device):
        net, X, y = _net(form, options, where, dry)
        if cuda and where == device:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net.fit(X, y)
        if cuda and where == device:
            row["peak_mib"] = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
        weights[where] = net.sample_weights_
    row["weights"] = float(np.nanmax(np.abs(weights["cpu"] - weights[device])))
    row["steps"] = int(np.ceil(len(y) / 128)) * 2
    # Synchronisation: "error" stops at the first; "warn" counts them all.
    net, X, y = _net(form, options, device, dry)
    net.watch_ = _sync_mode("error", cuda)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net.fit(X, y)
        row["sync_error"] = None
    except RuntimeError as exc:
        row["sync_error"] = str(exc).splitlines()[0][:200]
    net, X, y = _net(form, options, device, dry)
    net.watch_ = _sync_mode("warn", cuda)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net.fit(X, y)
    row["sync_warnings"] = sum("synchroniz" in str(w.message) for w in caught)


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def _e(x):
    return f"{x:.1e}"


def _within(row, *keys):
    """The "within bar" cell: yes, no, or the case's error."""
    if "error" in row:
        return f"**error**: `{row['error']}`"
    return "yes" if max(row[k] for k in keys) <= TOLERANCE else "**no**"


def _num(row, key, fmt=_e):
    value = row.get(key)
    return "-" if value is None else fmt(value)


def render(saved):
    rows, meta = saved["rows"], saved["meta"]
    lines = report_header("sk_l2rw GPU check", command=meta["command"],
                          started=meta["started"], elapsed=meta["elapsed"],
                          load=meta.get("load"), machine=meta.get("machine"),
                          versions=meta.get("versions"))
    device = saved["device"]
    if saved.get("dry_run"):
        lines += ["**A `--dry-run` on the CPU: it only shows that the code path works; "
                  "every difference is CPU against CPU.**", ""]
    lines += [f"Device: {saved['device_name']}", "",
              f"## 1. One step, {device} against cpu (float64; bar {TOLERANCE:g})", ""]
    body = [[r["case"], r["computation"], _num(r, "meta"), _num(r, "weights"),
             _num(r, "grads"), _within(r, "meta", "weights", "grads")]
            for r in rows if r["part"] == "step"]
    lines += [*markdown_table(["module", "computation", "meta-gradients", "weights",
                               "gradients", "within bar"], body), ""]
    lines += ["## 2. Whole fits (2 epochs, float64): weights against cpu, "
              "synchronisation in the steps, peak memory", "",
              "Synchronisation is watched with `torch.cuda.set_sync_debug_mode` around "
              "`train_step_single` and the slicing of each training batch; skorch's "
              "`loss.item()` (its loss record, once per step) is outside, as is "
              "`meta_gradient=\"auto\"`'s first step (its one check of ghost against "
              "jvp).", ""]
    body = []
    for r in rows:
        if r["part"] != "fit":
            continue
        if "sync_warnings" in r:
            sync = ("none" if r["sync_error"] is None else f"`{r['sync_error']}`",
                    f"{r['sync_warnings']} ({r['sync_warnings'] / r['steps']:.2f} per step)")
        else:
            sync = ("-", "-")
        body.append([r["case"], _num(r, "weights"), _within(r, "weights"), *sync,
                     _num(r, "peak_mib", lambda x: f"{x:.1f}")])
    lines += [*markdown_table(["fit", "max weight difference", "within bar",
                               "\"error\" mode", "\"warn\" mode: synchronising calls",
                               "peak memory (MiB)"], body), ""]
    lines += ["## 3. Speed", ""]
    if saved.get("speed_report"):
        lines += [f"`benchmarks.speed`'s {saved['speed_config']} configuration on "
                  f"{device}: see `{saved['speed_report']}`.", ""]
    elif saved.get("speed_error"):
        lines += [f"The speed part failed: `{saved['speed_error']}`.", ""]
    else:
        lines += ["Not run yet: parts 1-2 are written before the speed part starts, so "
                  "this report stays when the speed part is cut short.", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", "--smoke", dest="dry_run", action="store_true",
                        help="every part on the CPU at tiny sizes (seconds; tests)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: benchmarks/results; a --dry-run "
                             "writes into a new temporary folder)")
    add_render_argument(parser, "gpu_check.md")
    args = parser.parse_args(argv)
    args.out = run_folder(args.out, args.dry_run and not args.render, "gpu_check")
    if args.render:
        print(rerender(args.render, args.out, render))
        return 0
    if not args.dry_run and not torch.cuda.is_available():
        print("benchmarks.gpu_check needs a CUDA device and found none "
              "(torch.cuda.is_available() is False); --dry-run runs it on the CPU",
              file=sys.stderr)
        return 2
    device = "cpu" if args.dry_run else "cuda"
    study = StudyRun(STUDY, argv)
    rows = step_differences(device, args.dry_run) + fit_checks(device, args.dry_run)
    more = dict(device=device, dry_run=args.dry_run,
                device_name=(torch.cuda.get_device_name() if device == "cuda" else "cpu"),
                speed_config="smoke" if args.dry_run else "quick")
    # Written now, then again with the speed part: a cut-short run keeps parts 1-2.
    study.finish(rows, render, args.out, **more)
    speed_cfg = speed_smoke_config() if args.dry_run else speed_quick_config()
    row = {}
    with _recorded(row):
        more["speed_report"] = Path(speed_run(speed_cfg, Path(args.out), device=device,
                                              chart=False)).name
    if "error" in row:
        more["speed_error"] = row["error"]
    _, text = study.finish(rows, render, args.out, **more)
    print(text)
    return 1 if "speed_error" in more or any("error" in r for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
