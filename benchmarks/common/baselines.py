"""Every method and baseline a study fits, written once.

Each ``fit_*`` takes the study's setting (``cfg``: a ``Setting`` with ``hidden``,
``lr``, ``batch_size``, ``epochs``, ``min_steps``, ``cv_folds``, ``hgb_max_iter``
and ``mode``), the rows, and the seed, and returns the fitted model.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

__all__ = ["TABLE_BASELINES", "Timer", "fit_cleanlab", "fit_glc_hgb", "fit_glc_net",
           "fit_irbl_hgb", "fit_l2rw", "fit_net", "fit_reweighted", "fit_trusted", "hgb",
           "n_epochs", "net_params", "routes_within_cv", "seed_torch", "stacked_rows",
           "trusted_estimator"]


class Timer:
    """Wall and CPU seconds of a ``with`` block (``.wall``, ``.cpu``)."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def seed_torch(seed):
    """Seed torch and numpy's global generator (skorch's shuffles and inits)."""
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)


def n_epochs(cfg, n_rows, batch_size=None):
    """``cfg.epochs`` epochs, or ``cfg.min_steps`` optimizer steps if that is more."""
    batch_size = batch_size or cfg.batch_size
    per_epoch = max(1, math.ceil(n_rows / batch_size))
    return max(cfg.epochs, math.ceil(cfg.min_steps / per_epoch))


def net_params(cfg, n_features, K, n_rows):
    """The tabular MLP every net of a study uses: one hidden layer of
    ``cfg.hidden`` ReLU units, logits, cross-entropy, Adam."""
    import torch

    from sk_l2rw.modules import MLP

    return dict(module=MLP, module__n_features=n_features, module__n_outputs=K,
                module__hidden_layer_sizes=(cfg.hidden,), module__softmax=False,
                criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam,
                lr=cfg.lr, batch_size=cfg.batch_size,
                max_epochs=n_epochs(cfg, n_rows), train_split=None, verbose=0)


def hgb(cfg, seed):
    """``HistGradientBoostingClassifier`` with early stopping and ``cfg.hgb_max_iter``
    rounds."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(early_stopping=True, max_iter=cfg.hgb_max_iter,
                                          random_state=seed)


def net(cfg, n_features, K, n_rows):
    """An unfitted skorch ``NeuralNetClassifier`` with the study's setting."""
    from skorch import NeuralNetClassifier

    return NeuralNetClassifier(iterator_train__shuffle=True,
                               **net_params(cfg, n_features, K, n_rows))


def fit_net(cfg, X, y, K, seed):
    """Plain skorch on the rows."""
    seed_torch(seed)
    return net(cfg, X.shape[1], K, len(y)).fit(X, y)


def fit_cleanlab(cfg, clf, X, y, seed):
    """cleanlab's ``CleanLearning`` around ``clf``."""
    from cleanlab.classification import CleanLearning

    seed_torch(seed)
    # n_jobs=1: cleanlab's own process pool cannot start inside a worker process.
    model = CleanLearning(clf=clf, seed=seed, cv_n_folds=cfg.cv_folds, verbose=False,
                          find_label_issues_kwargs={"n_jobs": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    return model


def fit_l2rw(cfg, X, y, X_clean, y_clean, K, seed, **options):
    """``L2RWClassifier`` with the study's net and the clean set."""
    from sk_l2rw import L2RWClassifier

    model = L2RWClassifier(clean_X=X_clean, clean_y=y_clean, random_state=seed,
                           **net_params(cfg, X.shape[1], K, len(y)), **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # classes missing from an audit
        return model.fit(X, y)


def fit_reweighted(cfg, X, y, X_clean, y_clean, seed, clean_class_weight=None):
    """``ReweightedClassifier(HGB)``: the shipped default net in a full or reduced
    run, the study's smaller net otherwise."""
    from sk_l2rw import L2RWClassifier, ReweightedClassifier
    from sk_l2rw.modules import MLP

    if cfg.mode in ("full", "reduced"):
        weights_net = None  # the shipped default net: the benchmark's setting
    else:  # smaller runs shrink the net like every other one
        import torch
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        weights_net = make_pipeline(StandardScaler(), L2RWClassifier(
            MLP, module__hidden_layer_sizes=(cfg.hidden,),
            criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam, lr=cfg.lr,
            batch_size=cfg.batch_size, max_epochs=n_epochs(cfg, len(y)),
            random_state=seed, verbose=0))
    model = ReweightedClassifier(hgb(cfg, seed), net=weights_net, random_state=seed,
                                 clean_class_weight=clean_class_weight)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return model.fit(X, y, X_val=X_clean, y_val=y_clean)


def stacked_rows(X, y, X_clean, y_clean):
    """Noisy rows then trusted rows, and the mask of the trusted ones."""
    trusted = np.r_[np.zeros(len(y), bool), np.ones(len(y_clean), bool)]
    return np.vstack([X, X_clean]), np.concatenate([y, y_clean]), trusted


def fit_glc_hgb(cfg, X, y, X_clean, y_clean, seed):
    """GLC's plug-in correction around the study's HGB."""
    from sk_l2rw import GLCClassifier

    X_all, y_all, trusted = stacked_rows(X, y, X_clean, y_clean)
    return GLCClassifier(hgb(cfg, seed), correction="plugin").fit(X_all, y_all,
                                                                  trusted=trusted)


def fit_glc_net(cfg, X, y, X_clean, y_clean, K, seed):
    """GLC's forward-corrected loss with the study's net."""
    from sk_l2rw import GLCClassifier

    seed_torch(seed)
    X_all, y_all, trusted = stacked_rows(X, y, X_clean, y_clean)
    model = GLCClassifier(net(cfg, X.shape[1], K, len(y_all)), correction="loss")
    return model.fit(X_all.astype(np.float32), y_all, trusted=trusted)


def fit_irbl_hgb(cfg, X, y, X_clean, y_clean, seed):
    """IRBL's weights around the study's HGB.

    The two probability models are HGB with scikit-learn's default early stopping
    ("auto": only above 10,000 rows): the study's always-on early stopping holds out
    10% of the rows, stratified, which a trusted set of 200 rows over 26 classes
    cannot give."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from sk_l2rw import IRBLClassifier

    prober = HistGradientBoostingClassifier(max_iter=cfg.hgb_max_iter, random_state=seed)
    X_all, y_all, trusted = stacked_rows(X, y, X_clean, y_clean)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # classes missing from an audit
        return IRBLClassifier(hgb(cfg, seed), probability_estimator=prober).fit(
            X_all, y_all, trusted=trusted)


#: The baselines of a tables run (``benchmarks/tables.py``'s methods that are not
#: its routes): a route is judged against the best of them.
TABLE_BASELINES = ("plain_noisy", "plain_both", "clean_only", "cleanlab", "cleanlab_hgb",
                   "hgb", "glc_hgb", "glc_net", "irbl_hgb")


def trusted_estimator(cfg, seed):
    """The estimator inside a tables run's ``TrustedClassifier``: its default (None)
    in full and reduced runs; smaller runs put the study's HGB inside."""
    return None if cfg.mode in ("full", "reduced") else hgb(cfg, seed)


def routes_within_cv(cv, k):
    """The routes of a tables row's ``cv_routes`` (route -> mean Brier, mean accuracy,
    gap, its SE; prior order) whose Brier gap to the best is at most ``k`` paired
    standard errors, in the prior order (:func:`sk_l2rw.selection.routes_within`)."""
    from sk_l2rw.selection import routes_within

    names = list(cv)
    return [names[i] for i in routes_within([v[2] for v in cv.values()],
                                            [v[3] for v in cv.values()], k)]


def fit_trusted(cfg, X, y, X_clean, y_clean, seed, class_prior=None):
    """``TrustedClassifier()`` with its default settings (seeded; ``class_prior``
    when given): the route a tabular user is told to take. Smaller runs put the
    study's HGB inside (:func:`trusted_estimator`) and use the study's ``cv_folds``
    folds, as cleanlab does."""
    from sk_l2rw import TrustedClassifier

    full = cfg.mode in ("full", "reduced")
    X_all, y_all, trusted = stacked_rows(X, y, X_clean, y_clean)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return TrustedClassifier(trusted_estimator(cfg, seed),
                                 cv=5 if full else cfg.cv_folds, class_prior=class_prior,
                                 random_state=seed).fit(X_all, y_all, trusted=trusted)
