"""Scale: fit time per epoch and peak memory as the number of rows grows.

One command measures, in the same run, plain skorch ``NeuralNetClassifier`` (its
default DataLoader route) and ``L2RWClassifier`` (auto) on generated float32 data of
10k, 100k and 1M rows x 50 features and on the KDD census set (about 300k rows,
one-hot encoded), two epochs each, the second one timed. Every (data set, estimator) pair runs in a fresh
subprocess, so peak memory is that process's high-water resident set size
(``ru_maxrss``) during ``fit`` beyond what it held once the data was ready.

    python benchmarks/scale.py [--sizes 10000 100000 1000000] [--no-kdd] [--device cpu]

Writes ``benchmarks/results/scale.md``. Bars: the L2RW/plain time ratio stays flat as
n grows (cost linear in n) and L2RW's peak memory stays within 1.5x of plain.
"""

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
N_FEATURES = 50


def _rss_mib():
    # ru_maxrss is in KiB on Linux: the process's high-water mark so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _data(name, seed=0):
    import numpy as np
    if name == "kdd_census":
        sys.path.insert(0, str(HERE))
        from datasets import kdd_census_preprocessor, load
        split = load("kdd_census")
        pre = kdd_census_preprocessor()
        X = pre.fit_transform(split.X_train).astype(np.float32)
        y = np.asarray(split.y_train)
        classes, y = np.unique(y, return_inverse=True)
        return np.ascontiguousarray(X), y.astype(np.int64)
    n = int(name)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, N_FEATURES), dtype=np.float32)
    w = rng.standard_normal((N_FEATURES, 3)).astype(np.float32)
    y = (X @ w).argmax(1)
    return X, y


def child(name, estimator, device):
    """Run one fit in this process and print a JSON line with time and memory."""
    import numpy as np
    import torch
    from skorch import NeuralNetClassifier
    from torch import nn

    from sk_l2rw import L2RWClassifier

    X, y = _data(name)
    rng = np.random.RandomState(1)
    clean = rng.choice(len(y), size=300, replace=False)
    mask = np.ones(len(y), bool)
    mask[clean] = False
    X_clean, y_clean = X[clean], y[clean]
    X_train, y_train = X[mask], y[mask]
    n_classes = int(y.max()) + 1

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential(nn.Linear(X.shape[1], 256), nn.ReLU(),
                                        nn.Linear(256, 256), nn.ReLU(),
                                        nn.Linear(256, n_classes))

        def forward(self, X):
            return self.layers(X)

    common = dict(module=MLP, criterion=nn.CrossEntropyLoss, lr=0.05, max_epochs=2,
                  batch_size=256, verbose=0, device=device)
    if estimator == "plain":
        net = NeuralNetClassifier(train_split=None, iterator_train__shuffle=True, **common)
        X_fit, y_fit = np.concatenate([X_train, X_clean]), np.concatenate([y_train, y_clean])
        kwargs = {}
    else:
        net = L2RWClassifier(random_state=0, **common)
        X_fit, y_fit = X_train, y_train
        kwargs = dict(X_val=X_clean, y_val=y_clean)
    before = _rss_mib()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    net.fit(X_fit, y_fit, **kwargs)
    # the second epoch: the first also pays for start-up (threads, lazy init)
    seconds = net.history[-1, "dur"]
    result = {"name": name, "estimator": estimator, "rows": len(y_fit),
              "features": int(X.shape[1]), "seconds": seconds,
              "peak_mib": _rss_mib() - before, "data_mib": X.nbytes / 2 ** 20}
    if device.startswith("cuda"):
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    if estimator == "l2rw":
        result["meta_gradient"] = net.meta_gradient_
    print(json.dumps(result))


def run(names, device, out):
    rows = []
    for name in names:
        for estimator in ("plain", "l2rw"):
            done = subprocess.run(
                [sys.executable, __file__, "--child", name, estimator, "--device", device],
                capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    return rows


def report(rows, command, device, out):
    import numpy
    import skorch
    import sklearn
    import torch

    by = {(r["name"], r["estimator"]): r for r in rows}
    names = list(dict.fromkeys(r["name"] for r in rows))
    lines = [
        "# Scale: time per epoch and peak memory as n grows", "",
        f"Command: `{command}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
        f"Machine: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, device {device}  ",
        f"Versions: python {platform.python_version()}, torch {torch.__version__}, "
        f"skorch {skorch.__version__}, scikit-learn {sklearn.__version__}, "
        f"numpy {numpy.__version__}", "",
        "Two epochs each, the second one timed (skorch's `dur`), batch 256, MLP d-256-256-k (logits), SGD lr=0.05. Plain skorch "
        "trains on noisy + clean rows through its default DataLoader; L2RWClassifier "
        "(auto) on the noisy rows with a clean set of 300 rows. Each fit runs in a fresh "
        "subprocess; peak memory is the growth of that process's high-water resident "
        "set size during `fit` (the data set itself is already loaded and not counted).",
        "",
        "| data set | rows x features | data (MiB) | plain s/epoch | L2RW s/epoch | "
        "time ratio | plain peak (MiB) | L2RW peak (MiB) | memory ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    ratios, memory = [], []
    for name in names:
        p, l = by[(name, "plain")], by[(name, "l2rw")]
        ratio = l["seconds"] / p["seconds"]
        mem = l["peak_mib"] / max(p["peak_mib"], 1e-9)
        ratios.append(ratio)
        memory.append(mem)
        lines.append(
            f"| {name if name == 'kdd_census' else f'generated {int(name):,}'} | "
            f"{p['rows']:,} x {p['features']} | {p['data_mib']:.0f} | {p['seconds']:.2f} | "
            f"{l['seconds']:.2f} | {ratio:.2f} | {p['peak_mib']:.0f} | {l['peak_mib']:.0f} | "
            f"{mem:.2f} |")
    generated = [r for n, r in zip(names, ratios) if n != "kdd_census"]
    flat = max(generated) / min(generated) if generated else float("nan")
    lines += ["", "## Bars", "",
              f"- time ratio flat as n grows (generated sets): max/min of the ratios = "
              f"{flat:.2f} -> {'PASS' if flat <= 1.3 else 'FAIL'} (<= 1.3 counted as flat)",
              f"- L2RW peak memory <= 1.5x plain: worst {max(memory):.2f}x -> "
              f"{'PASS' if max(memory) <= 1.5 else 'FAIL'}", ""]
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("scale.md" if device == "cpu" else "scale_cuda.md")
    path.write_text("\n".join(lines))
    print("\n".join(lines))
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["10000", "100000", "1000000"])
    parser.add_argument("--no-kdd", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--child", nargs=2, metavar=("NAME", "ESTIMATOR"))
    args = parser.parse_args(argv)
    if args.child:
        return child(*args.child, args.device)
    names = list(args.sizes) + ([] if args.no_kdd else ["kdd_census"])
    rows = run(names, args.device, args.out)
    command = "python benchmarks/scale.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report(rows, command.strip(), args.device, args.out)


if __name__ == "__main__":
    main()
