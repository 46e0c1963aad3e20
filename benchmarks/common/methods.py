"""The nets of the label-noise protocol and the fit of each method on one cell's
rows (``benchmarks/quality.py`` and its side studies): one module, optimizer, learning
rate, epochs and batch size for every net.
"""

from __future__ import annotations

import copy
import importlib.util
import warnings

import numpy as np

from benchmarks.common import baselines
from benchmarks.common.baselines import seed_torch
from sk_l2rw.exceptions import CleanLossWarning


def module_class(kind="mlp"):
    """The module of every net: ``"mlp"``, :class:`sk_l2rw.modules.MLP` with one hidden
    ReLU layer; ``"lenet"``, the paper's LeNet (:class:`benchmarks.models.LeNet`) on
    28x28 images given as 784 flat pixels. Both return logits."""
    if kind == "mlp":
        from sk_l2rw.modules import MLP

        return MLP
    if kind == "lenet":
        from benchmarks.models import LeNet

        return LeNet
    raise ValueError(f"unknown module {kind!r}: use 'mlp' or 'lenet'")


def net_params(cfg, n_features, n_classes, n_rows, *, optimizer=None, lr=None,
               epochs=None):
    """:func:`benchmarks.common.baselines.net_params` with the protocol's module
    (``cfg.module``); side studies may change the optimizer, rate or epochs."""
    params = baselines.net_params(cfg, n_features, n_classes, n_rows)
    if cfg.module != "mlp":
        params = dict(module=module_class(cfg.module), module__n_features=n_features,
                      module__n_classes=n_classes,
                      **{k: v for k, v in params.items() if not k.startswith("module")})
    if optimizer is not None:
        params["optimizer"] = optimizer
    if lr is not None:
        params["lr"] = lr
    if epochs:
        params["max_epochs"] = epochs
    return params


def metrics(model, X_test, y_test, max_share=True):
    """Test accuracy and balanced accuracy; with ``max_share``, also the share of the
    test rows given the most predicted class (a collapse shows as 1.0)."""
    from sklearn.metrics import balanced_accuracy_score

    pred = np.asarray(model.predict(X_test))
    scores = dict(acc=float(np.mean(pred == y_test)),
                  bal_acc=float(balanced_accuracy_score(y_test, pred)))
    if max_share:
        scores["max_share"] = float(np.bincount(pred).max() / len(pred))
    return scores


def fit_plain(cfg, X, y, K, seed, *, X_clean=None, y_clean=None, class_weight=None,
              **overrides):
    """skorch's NeuralNetClassifier; with a clean set, also the best clean-loss epoch.
    ``overrides``: further net parameters (side studies only)."""
    import torch
    from skorch import NeuralNetClassifier
    from skorch.callbacks import Callback

    params = net_params(cfg, X.shape[1], K, len(y))
    params.update(overrides)
    if class_weight is not None:
        params["criterion__weight"] = torch.as_tensor(class_weight, dtype=torch.float32)
    best = {}

    class BestOnClean(Callback):
        def on_epoch_end(self, net, **kwargs):
            proba = net.predict_proba(X_clean)
            loss = -np.mean(np.log(proba[np.arange(len(y_clean)), y_clean] + 1e-12))
            if not best or loss < best["loss"]:
                best.update(loss=loss, epoch=len(net.history),
                            state=copy.deepcopy(net.module_.state_dict()))

    if X_clean is not None:
        params["callbacks"] = [("best_on_clean", BestOnClean())]
    seed_torch(seed)
    net = NeuralNetClassifier(iterator_train__shuffle=True, **params)
    net.fit(X, y)
    return net, best


def fit_l2rw(cfg, X, y, X_clean, y_clean, K, seed, **overrides):
    from sk_l2rw import L2RWClassifier

    params = net_params(cfg, X.shape[1], K, len(y))
    params.update(overrides)
    net = L2RWClassifier(clean_X=X_clean, clean_y=y_clean, random_state=seed, **params)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net.fit(X, y)
    collapse_warned = any(issubclass(w.category, CleanLossWarning) for w in caught)
    return net, collapse_warned


def fit_cleanlab(cfg, X, y, K, seed):
    """cleanlab around the protocol's net; returns the model and how many rows it
    flagged."""
    from skorch import NeuralNetClassifier

    clf = NeuralNetClassifier(iterator_train__shuffle=True,
                              **net_params(cfg, X.shape[1], K, len(y)))
    model = baselines.fit_cleanlab(cfg, clf, X, y, seed)
    return model, int(np.asarray(model.label_issues_mask).sum())


def fit_hgb(cfg, X, y, seed):
    return baselines.hgb(cfg, seed).fit(X, y)


def have_cleanlab():
    return importlib.util.find_spec("cleanlab") is not None


def weight_ratio(net, mask):
    """Mean weight of rows in ``mask`` over the mean weight of the others."""
    w = np.nanmean(net.sample_weights_, axis=0)
    rest = w[~mask].mean()
    return float(w[mask].mean() / rest) if rest > 0 else float("nan")

