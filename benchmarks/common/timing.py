"""What the timing studies share (``speed``, ``compiled_step``, ``last_layers``,
``sparse_memory``): the step cases and configuration of ``benchmarks/speed.py``,
their generated data, the estimators of a whole fit, interleaved timed blocks, the
share of the machine other processes used, and the peak of torch's CPU allocations.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
import torch
from torch import nn

from benchmarks.models import LeNet, mlp


@dataclasses.dataclass
class StepCase:
    """One model/batch combination of part 1."""

    label: str
    model: str  # "mlp" or "lenet"
    batch: int
    clean_batch: int
    sizes: tuple = (54, 256, 256, 7)  # MLP only
    n_classes: int = 7

    def build(self):
        return mlp(self.sizes) if self.model == "mlp" else LeNet(n_classes=self.n_classes)

    def input_shape(self):
        return (self.sizes[0],) if self.model == "mlp" else (1, 28, 28)


@dataclasses.dataclass
class Config:
    step_cases: list
    step_repeats: int = 15
    step_block_s: float = 0.3  # target wall time of one timed block of steps
    step_warmup: int = 10
    fit_rows: int = 50_000
    fit_features: int = 54
    fit_classes: int = 7
    fit_clean_per_class: int = 100
    fit_epochs: int = 5
    fit_batch: int = 128
    fit_hidden: tuple = (256, 256)
    fit_repeats: int = 5
    # Extra repeats (making up for busy ones) start only this long into a part.
    step_extra_until_s: float = 150.0
    fit_extra_until_s: float = 150.0
    fit_lr: float = 0.05
    # torch.compile's backend for "L2RWClassifier (compile=True)" (smoke: aot_eager,
    # the traced graph without inductor's C++ build).
    fit_compile_backend: str = "inductor"
    mem_sizes: tuple = (512, 1024, 512, 10)
    mem_batch: int = 1024
    mem_clean_batch: int = 128
    mem_repeats: int = 3
    lr: float = 0.05


def full_config():
    return Config(step_cases=[
        StepCase("MLP 54-256-256-7", "mlp", 128, 32),
        StepCase("MLP 54-256-256-7", "mlp", 128, 128),
        StepCase("LeNet 1x28x28", "lenet", 64, 64, n_classes=10),
    ])


def quick_config():
    cfg = full_config()
    cfg.step_repeats = 3
    cfg.step_block_s = 0.08
    cfg.step_warmup = 3
    cfg.fit_rows = 10_000
    cfg.fit_epochs = 2
    cfg.fit_repeats = 1
    cfg.step_extra_until_s = 15.0
    cfg.fit_extra_until_s = 10.0
    cfg.mem_repeats = 1
    return cfg


def smoke_config():
    """Every part at tiny sizes, seconds (CI): only shows that the script runs."""
    return Config(
        step_cases=[
            StepCase("MLP tiny", "mlp", 8, 4, sizes=(6, 8, 3), n_classes=3),
            StepCase("LeNet", "lenet", 2, 2, n_classes=10),
        ],
        step_repeats=2, step_block_s=0.002, step_warmup=1,
        fit_rows=200, fit_features=6, fit_classes=3, fit_clean_per_class=5,
        fit_epochs=1, fit_batch=32, fit_hidden=(8,), fit_repeats=1,
        fit_compile_backend="aot_eager",
        mem_sizes=(6, 16, 3), mem_batch=16, mem_clean_batch=4, mem_repeats=1,
    )


# A repeat during which other processes used more than this share of all cores is
# left out of the medians (unless every repeat was that busy).
BUSY_LIMIT = 0.10


def quiet_repeats(busy):
    """Indices of the repeats to keep: the quiet ones, or all if none was quiet."""
    keep = [i for i, b in enumerate(busy) if not b > BUSY_LIMIT]
    return keep or list(range(len(busy)))


def rotated(seq, r):
    seq = list(seq)
    k = r % len(seq)
    return seq[k:] + seq[:k]


def case_data(case, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = case.input_shape()
    X = torch.randn((case.batch, *shape), generator=g)
    Xc = torch.randn((case.clean_batch, *shape), generator=g)
    y = torch.randint(case.n_classes, (case.batch,), generator=g)
    yc = torch.randint(case.n_classes, (case.clean_batch,), generator=g)
    return [t.to(device) for t in (X, y, Xc, yc)]


def make_fit_data(cfg, seed=0):
    """Generated float32 rows: ``fit_rows`` training rows and a balanced clean set."""
    from sklearn.datasets import make_classification

    n_clean = cfg.fit_clean_per_class * cfg.fit_classes
    X, y = make_classification(
        n_samples=cfg.fit_rows + 2 * n_clean, n_features=cfg.fit_features,
        n_informative=min(20, cfg.fit_features), n_redundant=0,
        n_classes=cfg.fit_classes, n_clusters_per_class=1, random_state=seed)
    X = X.astype(np.float32)
    y = y.astype(np.int64)
    clean = np.concatenate([np.flatnonzero(y == c)[:cfg.fit_clean_per_class]
                            for c in range(cfg.fit_classes)])
    rest = np.setdiff1d(np.arange(len(y)), clean)[:cfg.fit_rows]
    return X[rest], y[rest], X[clean], y[clean]


def fit_estimators(cfg, device):
    from skorch import NeuralNetClassifier

    from sk_l2rw import L2RWClassifier
    from sk_l2rw.modules import MLP

    sizes = (cfg.fit_features, *cfg.fit_hidden, cfg.fit_classes)
    common = dict(module=MLP, module__n_features=sizes[0], module__n_outputs=sizes[-1],
                  module__hidden_layer_sizes=sizes[1:-1], module__softmax=False,
                  criterion=nn.CrossEntropyLoss,
                  optimizer=torch.optim.SGD, lr=cfg.fit_lr, max_epochs=cfg.fit_epochs,
                  batch_size=cfg.fit_batch, train_split=None,
                  iterator_train__shuffle=True, verbose=0, device=device)
    backend = ({} if cfg.fit_compile_backend == "inductor"
               else {"compile__backend": cfg.fit_compile_backend})
    return {
        "NeuralNetClassifier": lambda: NeuralNetClassifier(**common),
        "L2RWClassifier": lambda: L2RWClassifier(**common, meta_gradient="auto"),
        COMPILED: lambda: L2RWClassifier(**common, meta_gradient="auto", compile=True,
                                         **backend),
        SMALL_CLEAN: lambda: L2RWClassifier(**common, meta_gradient="auto",
                                            clean_batch_size=SMALL_CLEAN_BATCH),
    }


#: Part 2's L2RWClassifier with its step compiled (graphs built in the warm-up).
COMPILED = "L2RWClassifier (compile=True)"


#: Part 2's L2RWClassifier with a smaller clean batch than its default (= batch_size):
#: a step's extra cost over plain training grows with the clean batch.
SMALL_CLEAN_BATCH = 32


SMALL_CLEAN = f"L2RWClassifier (clean_batch_size={SMALL_CLEAN_BATCH})"


def cpu_peak_bytes(fn):
    """Peak of torch's CPU allocations made by ``fn()``, beyond those live before.

    Runs ``fn`` under ``torch.profiler.profile(profile_memory=True)``, which records
    every allocation and free of torch's CPU allocator as a ``[memory]`` event with
    a signed size and a timestamp. The running sum of those sizes over the
    timeline is the number of bytes allocated beyond the start; its maximum is the
    peak. (``tracemalloc`` does not see torch's allocator, and process RSS depends
    on what glibc malloc keeps or returns, so neither is used.)

    Returns
    -------
    peak : int
    end : int
        Bytes still allocated when ``fn`` returned (the net change).
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    cpu = torch._C._autograd.DeviceType.CPU
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == cpu]
    # Stable sort: events of one timestamp keep the order they were recorded in.
    events.sort(key=lambda e: e.start_ns())
    running = peak = 0
    for e in events:
        running += e.nbytes()
        peak = max(peak, running)
    return peak, running


class OtherLoad:
    """Share of the machine's CPU time that other processes used while measuring.

    All CPU time from ``/proc/stat`` minus this process's own (``os.times``),
    over cores x wall time. A busy machine slows multi-threaded torch far more
    than its share suggests (intra-op threads wait for each other), so the
    report says how quiet the machine was.
    """

    def __init__(self):
        self._start = self._snapshot()

    @staticmethod
    def _snapshot():
        try:
            with open("/proc/stat") as fh:
                fields = [int(x) for x in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)
        t = os.times()
        return (busy / os.sysconf("SC_CLK_TCK"), t.user + t.system, time.monotonic())

    def share(self):
        end = self._snapshot()
        if end is None or self._start is None:
            return float("nan")
        busy, own, wall = (e - s for e, s in zip(end, self._start))
        return max(0.0, busy - own) / max(wall * (os.cpu_count() or 1), 1e-9)



def timed_blocks(fns, repeats, block_s, log, what):
    """Interleaved timing: ms per call of each function, per repeat, and each
    repeat's largest share of the machine used by other processes."""
    per_block = {}
    for name, fn in fns.items():
        for _ in range(3):
            fn()
        t0 = time.perf_counter()
        fn()
        per_block[name] = max(2, int(block_s / max(time.perf_counter() - t0, 1e-6)))
    ms, busy = {name: [] for name in fns}, []
    for r in range(repeats):
        shares = []
        for name in rotated(fns, r):
            meter = OtherLoad()
            t0 = time.perf_counter()
            for _ in range(per_block[name]):
                fns[name]()
            ms[name].append((time.perf_counter() - t0) / per_block[name] * 1e3)
            shares.append(meter.share())
        busy.append(max(shares))
        log(f"  {what}: repeat {r + 1}/{repeats} (other processes {busy[-1]:.0%})")
    return ms, busy

