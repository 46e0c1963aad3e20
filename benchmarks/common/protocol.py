"""The protocol every label-noise study shares: its settings, the data and how a
seed's rows are drawn from it, the clean and noisy splits, and the 4-vs-9 imbalance
and collapse subsets; then the tables protocol (clean sets drawn per class or as an
audit of the rows).

``Setting`` is the one setting every method uses (``benchmarks/quality.py``'s and
``benchmarks/tables.py``'s); ``Config`` sizes a ``quality`` run, and the side studies
start from its ``full_config`` or ``smoke_config``; ``TablesConfig`` sizes a ``tables``
run, and ``tables_balance`` starts from its ``tables_full_config`` or
``tables_smoke_config``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from benchmarks import datasets as bench_data


KIND_NAMES = {"uniform": "UniformFlip", "background": "BackgroundFlip", "pair": "PairFlip"}
#: The parts of the quality study, in the order they run and are reported.
PARTS = ("noise", "imbalance", "collapse", "extras")


@dataclasses.dataclass
class Setting:
    """The cells of a label-noise run and the one setting every method uses (this
    benchmark's and ``benchmarks/tables.py``'s)."""

    mode: str
    seeds: tuple
    # name -> (training rows, test rows) drawn per seed; None keeps all.
    datasets: dict
    kinds: tuple = ("uniform", "background", "pair")
    rate: float = 0.4
    # The one setting every net uses: an MLP with `hidden` ReLU units, Adam at `lr`,
    # `epochs` epochs or `min_steps` steps if more; HGB with `hgb_max_iter` rounds;
    # cleanlab with `cv_folds` folds.
    hidden: int = 256
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 20
    min_steps: int = 200
    cv_folds: int = 3
    hgb_max_iter: int = 100


@dataclasses.dataclass
class Config(Setting):
    """Everything that sizes a run; ``full``, ``quick`` and ``smoke`` below."""

    clean_sizes: tuple = (10, 100)
    # module: "mlp" (every data set) or "lenet" (the paper's CNN; 28x28 images only,
    # so only mnist, fashion_mnist and 4-vs-9 run).
    module: str = "mlp"
    # MNIST 4-vs-9 imbalance (the paper's setting).
    imb_dataset: str = "mnist"
    imb_classes: tuple = (4, 9)
    imb_proportions: tuple = (0.9, 0.95, 0.98, 0.99, 0.995)
    imb_train: int = 2000
    imb_test_per_class: int = 900
    imb_clean_sizes: tuple = (10, 100)
    imb_seeds: tuple = None  # None: same as seeds
    # Extras: the paper's training-set size at the largest proportion.
    imb_paper_train: int = 5000
    imb_paper_seeds: tuple = (0, 1, 2)
    # Extras: weighted-gradient length (collapse mechanism).
    gradnorm_lr: float = 0.02
    gradnorm_epochs: tuple = (1, 3, 10, 30)
    gradnorm_seeds: tuple = (0, 1, 2)
    # Which parts run (PARTS).
    parts: tuple = PARTS
    # Accuracy against noise rate (BackgroundFlip).
    sweep_dataset: str = "digits"
    sweep_rates: tuple = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
    sweep_clean: int = 10
    # Collapse study (SGD).
    collapse_dataset: str = "letter"
    collapse_classes: tuple = tuple("ABCDEF")
    collapse_kinds: tuple = ("background", "uniform")
    collapse_lrs: tuple = (0.3, 0.1, 0.03, 0.01)
    collapse_epochs: int = 30
    collapse_seeds: tuple = (0, 1, 2)
    collapse_clean: int = 10
    collapse_max_train: int = None


def full_config():
    return Config(
        mode="full", seeds=(0, 1, 2, 3, 4),
        datasets={"digits": (None, None), "mnist": (2000, 2000),
                  "fashion_mnist": (2000, 2000), "letter": (4000, 3000),
                  "adult": (4000, 4000), "kdd_census": (4000, 4000)})


def quick_config():
    return Config(
        mode="quick", seeds=(0,), datasets=dict(bench_data.QUICK_SIZES),
        clean_sizes=(10,), epochs=10, min_steps=60, hgb_max_iter=30,
        imb_proportions=(0.9, 0.995), imb_train=800, imb_clean_sizes=(10,),
        imb_test_per_class=500, sweep_rates=(0.2, 0.4, 0.6), collapse_kinds=("background",),
        collapse_lrs=(0.1, 0.02), collapse_epochs=10, collapse_seeds=(0,),
        collapse_max_train=1500, imb_paper_train=1600, imb_paper_seeds=(0,),
        gradnorm_epochs=(1, 5), gradnorm_seeds=(0,))


def smoke_config():
    """Digits only (bundled with scikit-learn): nothing is downloaded."""
    return Config(
        mode="smoke", seeds=(0,), datasets={"digits": (500, 300)},
        clean_sizes=(10,), epochs=10, min_steps=40, hidden=64, cv_folds=2,
        hgb_max_iter=5, imb_dataset="digits", imb_proportions=(0.9,), imb_train=120,
        imb_test_per_class=40, imb_clean_sizes=(10,), sweep_rates=(0.2, 0.4),
        collapse_dataset="digits", collapse_classes=(0, 1, 2, 3, 4, 5),
        collapse_kinds=("background",), collapse_lrs=(0.1,), collapse_epochs=4,
        collapse_seeds=(0,), collapse_max_train=300, imb_paper_train=0,
        gradnorm_epochs=(1, 2), gradnorm_seeds=(0,))


def subsample(y, size, seed):
    """Row indices: ``size`` rows stratified by class (all rows when None or more)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    if size is None or size >= len(y):
        return idx
    picked, _ = train_test_split(idx, train_size=size, stratify=y, random_state=seed)
    return np.sort(picked)


def take(X, idx):
    return X.iloc[idx].reset_index(drop=True) if hasattr(X, "iloc") else X[idx]


def load_pool(name):
    """The whole train/test split of one data set (fixed split, seed 0)."""
    return tuple(bench_data.load(name, random_state=0))


def prepare(name, pool, size, seed):
    """Per-seed training/test rows, preprocessed to float32, labels as codes 0..K-1.

    The preprocessing (standard scaling; one-hot encoding for adult and kdd_census)
    is fitted on the training rows only.
    """
    from sklearn.preprocessing import StandardScaler

    X_tr, y_tr, X_te, y_te = pool
    n_train, n_test = size
    i_tr = subsample(np.asarray(y_tr).astype(str), n_train, seed)
    i_te = subsample(np.asarray(y_te).astype(str), n_test, seed)
    X_tr, y_tr, X_te, y_te = take(X_tr, i_tr), y_tr[i_tr], take(X_te, i_te), y_te[i_te]
    if name in ("adult", "kdd_census"):
        ds = bench_data
        pre = (ds.adult_preprocessor() if name == "adult" else ds.kdd_census_preprocessor())
    elif name in ("letter",):
        pre = StandardScaler()
    else:
        pre = None  # images: pixels already in [0, 1]
    if pre is not None:
        pre.fit(X_tr)
        X_tr, X_te = pre.transform(X_tr), pre.transform(X_te)
    classes, y_tr = np.unique(np.asarray(y_tr), return_inverse=True)
    y_te = np.searchsorted(classes, np.asarray(y_te))
    return dict(X_train=np.ascontiguousarray(X_tr, dtype=np.float32), y_train=y_tr,
                X_test=np.ascontiguousarray(X_te, dtype=np.float32), y_test=y_te,
                classes=[str(c) for c in classes])


def noisy_labels(y_train, y_rest, rate, kind, seed):
    """The labels of the rows outside the clean set, flipped as the quality cells
    (:func:`noise_splits`), the tables studies and clean_batch flip them
    (:func:`sk_l2rw.noise.flip_labels`): BackgroundFlip's background class is the
    most frequent class of all training rows ``y_train``. (quality's collapse parts
    flip to class 0 on purpose and do not call this.)

    Returns ``(y_noisy, flipped)``.
    """
    from sk_l2rw.noise import flip_labels

    return flip_labels(y_rest, rate, kind, background_class=int(np.bincount(y_train).argmax()),
                       random_state=seed)


def noise_splits(X, y, cells, seed):
    """For each clean size in ``cells`` ([(kind, rate, clean)]): the clean split of
    the training rows, then the noisy labels of that size's (kind, rate) cells.

    Yields ``(clean, X_rest, X_clean, y_clean, [(kind, rate, y_noisy, flipped)])``.
    The background class of BackgroundFlip is the most frequent training class.
    """
    from sk_l2rw.noise import split_clean

    for clean in sorted({c for _, _, c in cells}):
        X_rest, y_rest, X_clean, y_clean = split_clean(X, y, clean, random_state=seed)
        noisy = [(kind, rate, *noisy_labels(y, y_rest, rate, kind, seed))
                 for kind, rate, c in cells if c == clean]
        yield clean, X_rest, X_clean, y_clean, noisy


def minority_codes(labels, minor):
    """Binary targets of the imbalance setting: 1 for the minority class, else 0."""
    return (np.asarray(labels) == minor).astype(np.int64)


def imbalance_clean_split(cfg, X, y, clean, seed):
    """4-vs-9: ``clean`` rows per class drawn first (balanced). Returns the rest
    (original labels) and the clean set in :func:`minority_codes`."""
    from sk_l2rw.noise import split_clean

    X_rest, y_rest, X_clean, y_clean = split_clean(X, y, clean, random_state=seed)
    return X_rest, y_rest, X_clean, minority_codes(y_clean, cfg.imb_classes[1])


def imbalanced_rows(cfg, X, y, proportion, n_train, seed):
    """4-vs-9: ``n_train`` rows at majority ``proportion`` (0.5: balanced), labels in
    :func:`minority_codes`."""
    from sk_l2rw.noise import make_imbalanced

    X_imb, y_imb = make_imbalanced(X, y, proportion, classes=cfg.imb_classes,
                                   n_samples=n_train, random_state=seed)
    return X_imb, minority_codes(y_imb, cfg.imb_classes[1])


def prepare_imbalance(cfg, pool):
    """Training rows of the two classes; a test set with the same count of each."""
    X_tr, y_tr, X_te, y_te = pool
    y_tr, y_te = np.asarray(y_tr), np.asarray(y_te)
    keep = np.isin(y_tr, cfg.imb_classes)
    rng = np.random.RandomState(0)
    test_idx = np.concatenate([
        rng.choice(np.flatnonzero(y_te == c), size=cfg.imb_test_per_class, replace=False)
        for c in cfg.imb_classes])
    return dict(X_train=np.asarray(X_tr[keep], np.float32), y_train=y_tr[keep],
                X_test=np.asarray(X_te[test_idx], np.float32), y_test=y_te[test_idx])


def prepare_collapse(cfg, pool, seed):
    X_tr, y_tr, X_te, y_te = pool
    wanted = [str(c) for c in cfg.collapse_classes]
    keep_tr = np.isin(np.asarray(y_tr).astype(str), wanted)
    keep_te = np.isin(np.asarray(y_te).astype(str), wanted)
    sub = (X_tr[keep_tr], np.asarray(y_tr)[keep_tr], X_te[keep_te],
           np.asarray(y_te)[keep_te])
    return prepare(cfg.collapse_dataset, sub, (cfg.collapse_max_train, None), seed)


IMAGE_SETS = ("mnist", "fashion_mnist")


def use_module(cfg, module):
    """Switch ``cfg`` to ``module`` for every net. LeNet takes 28x28 images, so only
    the image data sets and the 4-vs-9 setting stay (the collapse study and the
    gradient-length extra run on letter, a tabular set, and are dropped)."""
    cfg.module = module
    if module == "lenet":
        cfg.datasets = {k: v for k, v in cfg.datasets.items() if k in IMAGE_SETS}
        if cfg.imb_dataset not in IMAGE_SETS:
            cfg.imb_proportions = ()
        cfg.collapse_kinds, cfg.gradnorm_seeds = (), ()
    return cfg



# ---------------------------------------------------------------------------
# The tables protocol (``benchmarks/tables.py`` and ``benchmarks/tables_balance.py``):
# clean sets drawn per class or as an audit of the training rows
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class TablesConfig(Setting):
    """What sizes a ``tables`` run: :func:`tables_full_config`, ``tables``' quick and
    reduced ones, and :func:`tables_smoke_config`; the net, HGB and cleanlab settings
    are the quality benchmark's (:class:`Setting`)."""

    # (protocol, size): per_class rows per class, or audit rows (an int) or share
    # of the training rows (a float below 1).
    protocols: tuple = (("per_class", 10), ("audit", 200), ("audit", 0.01), ("audit", 0.05))
    # Methods to fit (keys of ``tables.METHODS``); empty: every one.
    methods: tuple = ()


#: Rows (training, test) of every data set in a full tables run; None keeps the whole
#: split.
TABLES_SIZES = {"digits": (None, None), "letter": (None, 5000), "adult": (10000, 5000),
                "kdd_census": (15000, 10000), "mnist": (2000, 2000),
                "fashion_mnist": (2000, 2000)}


def tables_full_config():
    """Five seeds on digits and the three tabular sets at realistic sizes.

    mnist and fashion_mnist run only when named (``--datasets``): HGB on their 784
    pixel columns takes about a minute per fit here, so cleanlab around HGB and the
    nine cells make one seed cost about an hour of one core. quality.md covers them.
    """
    return TablesConfig(mode="full", seeds=(0, 1, 2, 3, 4),
                        datasets={d: TABLES_SIZES[d]
                                  for d in ("digits", "letter", "adult", "kdd_census")})


def tables_smoke_config():
    """Digits only (bundled with scikit-learn): nothing is downloaded."""
    return TablesConfig(
        mode="smoke", seeds=(0,), datasets={"digits": (500, 300)},
        kinds=("background",), protocols=(("per_class", 10), ("audit", 0.2)),
        hidden=32, epochs=3, min_steps=10, cv_folds=2, hgb_max_iter=5)


def protocol_label(protocol):
    kind, size = protocol
    if kind == "per_class":
        return f"{size} clean rows per class"
    if isinstance(size, float) and size < 1:
        return f"audit of {size:.0%} of the rows"
    return f"audit of {size} rows"


def clean_split(X, y, protocol, seed):
    """``(X_rest, y_rest, X_clean, y_clean)``: the trusted rows leave the training rows."""
    from sk_l2rw.noise import split_clean

    kind, size = protocol
    if kind == "per_class":
        return split_clean(X, y, size, random_state=seed)
    n = len(y)
    count = int(round(size * n)) if isinstance(size, float) and size < 1 else int(size)
    count = min(max(count, 2), n - 1)
    # An audit draws rows, not classes: its class shares follow the population's.
    picked = np.random.RandomState(seed).choice(n, size=count, replace=False)
    mask = np.zeros(n, dtype=bool)
    mask[picked] = True
    return X[~mask], y[~mask], X[mask], y[mask]


def prior_weights(prior, y_clean):
    """``{k: prior_k / clean share_k}`` for the classes of the clean set."""
    classes, counts = np.unique(y_clean, return_counts=True)
    shares = counts / counts.sum()
    return {int(k): float(prior[k] / q) for k, q in zip(classes, shares)}
