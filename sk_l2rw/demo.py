"""The main job: L2RW against plain training on digits with 40% background noise.

Run with ``python -m sk_l2rw.demo`` (``make demo``). Uses only scikit-learn's bundled
digits, so it needs no download; about half a minute on two CPU cores.
"""

import argparse
import time

import numpy as np
import torch
from skorch import NeuralNetClassifier
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from sk_l2rw import L2RWClassifier
from sk_l2rw.modules import MLP
from sk_l2rw.noise import flip_labels, split_clean


def run(*, noise=0.4, n_clean_per_class=10, max_epochs=60, lr=0.05, seed=0,
        background_class=1):
    """Train both nets and return a dict of results.

    Parameters
    ----------
    noise : float
        Share of training labels moved to ``background_class``.
    n_clean_per_class : int
    max_epochs : int
    lr : float
        SGD learning rate for both nets.
    seed : int
    background_class : int

    Returns
    -------
    dict
    """
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=seed)
    X_noisy, y_true, X_clean, y_clean = split_clean(X_train, y_train, n_clean_per_class,
                                                    random_state=seed)
    y_noisy, flipped = flip_labels(y_true, noise, kind="background",
                                   background_class=background_class, random_state=seed)
    # 64 pixels -> 128 ReLU units -> 10 logits, sized here so that plain skorch can
    # build it too (L2RWClassifier would size sk_l2rw.modules.MLP from the data).
    common = dict(module=MLP, module__n_features=64, module__n_outputs=10,
                  module__hidden_layer_sizes=(128,), module__softmax=False,
                  criterion=nn.CrossEntropyLoss,
                  optimizer=torch.optim.SGD, optimizer__momentum=0.9, lr=lr,
                  max_epochs=max_epochs, batch_size=64, verbose=0)

    torch.manual_seed(seed)
    start = time.perf_counter()
    plain = NeuralNetClassifier(train_split=None, iterator_train__shuffle=True, **common)
    plain.fit(np.vstack([X_noisy, X_clean]), np.concatenate([y_noisy, y_clean]))
    plain_time = time.perf_counter() - start

    start = time.perf_counter()
    l2rw = L2RWClassifier(clean_X=X_clean, clean_y=y_clean, random_state=seed, **common)
    l2rw.fit(X_noisy, y_noisy)
    l2rw_time = time.perf_counter() - start

    weights = np.nanmean(l2rw.sample_weights_, axis=0)
    return {
        "plain_accuracy": float((plain.predict(X_test) == y_test).mean()),
        "l2rw_accuracy": float((l2rw.predict(X_test) == y_test).mean()),
        "plain_seconds": plain_time,
        "l2rw_seconds": l2rw_time,
        "weight_flipped": float(weights[flipped].mean()),
        "weight_intact": float(weights[~flipped].mean()),
        "n_train": len(y_noisy),
        "n_flipped": int(flipped.sum()),
        "n_clean": len(y_clean),
        "meta_gradient": l2rw.meta_gradient_,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    r = run(max_epochs=args.epochs, seed=args.seed)
    print(f"digits: {r['n_train']} training rows, {r['n_flipped']} of them flipped to "
          f"class 1 (40% background noise); {r['n_clean']} clean rows (10 per class)\n")
    print(f"{'':32}{'plain skorch':>14}{'L2RW':>10}")
    print(f"{'test accuracy':32}{r['plain_accuracy']:>14.3f}{r['l2rw_accuracy']:>10.3f}")
    print(f"{'fit time (s)':32}{r['plain_seconds']:>14.1f}{r['l2rw_seconds']:>10.1f}")
    print(f"\nmean weight L2RW gave a row ({r['meta_gradient']} meta-gradients):")
    print(f"{'  flipped rows':32}{r['weight_flipped']:>24.5f}")
    print(f"{'  intact rows':32}{r['weight_intact']:>24.5f}")
    return r


if __name__ == "__main__":
    main()
