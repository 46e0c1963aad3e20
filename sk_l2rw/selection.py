"""``TrustedClassifier``: the trusted rows choose how a noisy table is learned.

No way of learning from noisy labels wins on every table: GLC's correction is best
when the noise depends on the class only and worst when it does not; IRBL needs
trusted rows drawn like the test data; L2RW's weights shine when the noise is
concentrated, and cost effective rows when it is not. Cross-validation on the noisy
labels scores each of them against the noise. The trusted rows are the only honest
judge, so :class:`TrustedClassifier` scores every route on trusted rows it did not
train on (:class:`~sk_l2rw.model_selection.TrustedKFold`) and refits the winner.

The rule, fixed before any benchmark score was seen (:func:`choose_route`): each
route's out-of-fold class probabilities on the trusted rows are scored by the Brier
score (a proper score: sharper than accuracy on a few rows, and bounded, unlike the
log-loss of a probability 0); the route with the lowest mean is the best; the
routes are then taken in their prior order (``routes``), and the first whose mean
loss exceeds the best's by at most one standard error of the paired per-row
differences is chosen. So a route later in the order must beat the earlier ones
by more than the noise of the trusted sample, and with few trusted rows the choice
falls back on the order, which starts with the estimator on all rows.

When several routes lie within that margin the trusted rows cannot tell them apart,
and taking the first is a guess (``average=True``, the default): every one of them is
refitted on all rows and the mean of their class probabilities predicts
(:class:`RouteAverage`). Averaging routes that err differently often beats each of
them, and hedges the choice where the trusted rows are few. This was tested after
the rule, on fresh benchmark seeds, by a test written down before they were looked
at (``docs/findings/tables.md``).

Trusted rows picked per class (ten of each, say) are not drawn like the test data:
scored as they are, a balanced trusted set rewards routes that predict rare
classes often. Given the population's class shares (``class_prior``), every
held-out row is weighed by ``prior[c] / trusted share[c]`` of its class
(:func:`score_weights`), so that the scores estimate accuracy on the population.
The prior is not estimated from the noisy labels: under heavy noise it is not
identifiable from them with any precision (on 5,000 rows of kdd_census with 40%
of labels flipped uniformly, black-box shift estimation from the noisy model put
the 6% positive class at 72% to 100%).
"""

import time
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sk_l2rw.data import n_rows
from sk_l2rw.glc import GLCClassifier, is_plain_skorch_classifier
from sk_l2rw.irbl import IRBLClassifier
from sk_l2rw.model_selection import TrustedKFold
from sk_l2rw.modules import MLP
from sk_l2rw.pruning import fit_pruned
from sk_l2rw.reweighted import ReweightedClassifier, default_epochs, default_net
from sk_l2rw.trusted import (LabelPredictMixin, check_trusted_fit, class_proba,
                             default_estimator, fit_rows, fit_with_trusted,
                             sample_weight_key, take)

__all__ = ["ROUTES", "RouteAverage", "TrustedClassifier", "brier_losses", "choose_route",
           "corrected_net", "fit_route", "looks_per_class", "routes_within", "score_weights"]

#: Every route, in the default prior order: the estimator on all rows first (what a
#: user does without this package); the same estimator on the rows confident
#: learning keeps (no new model, only fewer rows); the corrections that cost a fit
#: or two (GLC's plug-in around the estimator, then GLC's corrected loss with a
#: net); L2RW's routes; and the estimator on trusted rows alone last (its
#: cross-validated score comes from the fewest rows, so it must win clearly).
ROUTES = ("mixed", "pruned", "glc", "glc_net", "irbl", "reweighted", "l2rw_net",
          "trusted_only")


_NEEDS = {"pruned": "predict_proba", "glc": "predict_proba", "irbl": "sample_weight",
          "reweighted": "sample_weight"}


def _lacks(route, estimator):
    """Why ``estimator`` cannot serve ``route``, or None when it can."""
    need = _NEEDS.get(route)
    if need == "sample_weight" and sample_weight_key(estimator) is None:
        return f"{type(estimator).__name__}.fit takes no sample_weight"
    if need == "predict_proba" and not (hasattr(estimator, "predict_proba")
                                        or is_plain_skorch_classifier(estimator)):
        return f"{type(estimator).__name__} has no predict_proba"
    return None


def _float32(X):
    return np.asarray(X, dtype=np.float32)


def _dense_numeric(X):
    """Whether X is a numeric array or an all-numeric DataFrame (what the
    corrected-loss net's preparation takes)."""
    if sp.issparse(X) or isinstance(X, dict) or isinstance(X, torch.Tensor):
        return False
    if hasattr(X, "dtypes"):
        from pandas.api.types import is_bool_dtype, is_numeric_dtype

        return all(is_numeric_dtype(d) and not is_bool_dtype(d) for d in X.dtypes)
    return np.issubdtype(np.asarray(X).dtype, np.number)


def corrected_net(n_rows, n_features, n_classes):
    """GLC's corrected-loss route: median imputation, standard scaling and a plain
    skorch net with the MLP and training settings of L2RW's default net
    (:func:`~sk_l2rw.reweighted.default_net`), inside :class:`~sk_l2rw.GLCClassifier`.
    """
    from skorch import NeuralNetClassifier

    net = NeuralNetClassifier(
        MLP, module__n_features=n_features, module__n_outputs=n_classes,
        module__softmax=False, criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam, lr=1e-3, batch_size=128,
        max_epochs=default_epochs(n_rows), train_split=None,
        iterator_train__shuffle=True, verbose=0)
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                         FunctionTransformer(_float32),
                         GLCClassifier(net, correction="loss"))


def _fit_seeded(model, X, y, trusted, random_state):
    """Fit a route whose net draws from torch's global generator: seeded inside a
    fork of it, so that the caller's random state is left as it was."""
    if random_state is None:
        return fit_with_trusted(model, X, y, trusted)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(random_state))
        return fit_with_trusted(model, X, y, trusted)


def fit_route(route, estimator, X, y, trusted, random_state=None):
    """Fit one route around ``estimator`` on rows X with labels y (codes 0..K-1).

    Parameters
    ----------
    route : str
        One of :data:`ROUTES`: ``"mixed"`` the estimator on every row;
        ``"pruned"`` the estimator on the rows confident learning keeps
        (:func:`~sk_l2rw.pruning.fit_pruned`, trusted rows always kept); ``"glc"``
        :class:`~sk_l2rw.GLCClassifier`; ``"irbl"`` :class:`~sk_l2rw.IRBLClassifier`;
        ``"reweighted"`` :class:`~sk_l2rw.ReweightedClassifier` (L2RW's row
        weights, default net); ``"l2rw_net"`` L2RW's own default net
        (:class:`~sk_l2rw.modules.MLP` with ``train_on_clean=True``, as
        ReweightedClassifier builds it); ``"trusted_only"`` the estimator on the
        trusted rows.
    estimator : classifier
    X : array-like, DataFrame or sparse matrix
    y : numpy.ndarray of int
    trusted : numpy.ndarray of bool
    random_state : None or int
        Seeds L2RW's nets and the folds of ``"pruned"``.

    Returns
    -------
    A fitted classifier.
    """
    if route == "mixed":
        return fit_rows(estimator, X, y)
    if route == "pruned":
        return fit_pruned(estimator, X, y, trusted, random_state=random_state)[0]
    if route == "trusted_only":
        return fit_rows(estimator, take(X, np.flatnonzero(trusted)), y[trusted])
    if route == "glc_net":
        model = corrected_net(n_rows(X), np.shape(X)[1], len(np.unique(y)))
        return _fit_seeded(model, X, y, trusted, random_state)
    if route == "glc":
        model = GLCClassifier(clone(estimator))
    elif route == "irbl":
        model = IRBLClassifier(clone(estimator))
    elif route == "reweighted":
        model = ReweightedClassifier(clone(estimator), random_state=random_state)
    elif route == "l2rw_net":
        model = default_net(n_rows(X), random_state, X)
        model.steps[-1][1].set_params(train_on_clean=True)
    else:
        raise ValueError(f"unknown route {route!r}; the routes are {list(ROUTES)}")
    return fit_with_trusted(model, X, y, trusted)


def route_proba(model, X, n_classes):
    """Class probabilities of a fitted route (one-hot predictions for a model that
    has no ``predict_proba``)."""
    if hasattr(model, "predict_proba"):
        return class_proba(model, X, n_classes)
    return np.eye(n_classes)[np.asarray(model.predict(X), dtype=int)]


def brier_losses(proba, y):
    """Each row's Brier loss ``sum_k (p_k - [y = k])^2`` (0 best, 2 worst).

    Parameters
    ----------
    proba : array-like of shape (n_rows, n_classes)
    y : array-like of int, shape (n_rows,)

    Returns
    -------
    numpy.ndarray of shape (n_rows,)
    """
    proba = np.asarray(proba, dtype=float)
    onehot = np.zeros_like(proba)
    onehot[np.arange(len(y)), y] = 1.0
    return ((proba - onehot) ** 2).sum(axis=1)


def score_weights(trusted_counts, prior):
    """Per-class weights that make trusted rows count as the population's classes.

    Parameters
    ----------
    trusted_counts : array-like of int, shape (n_classes,)
        Trusted rows of each class.
    prior : array-like of shape (n_classes,)
        The population's class shares.

    Returns
    -------
    numpy.ndarray of shape (n_classes,)
        ``prior[c] / share[c]`` (0 for a class without trusted rows), scaled so
        that the trusted rows' weights average 1.
    """
    counts = np.asarray(trusted_counts, dtype=float)
    prior = np.asarray(prior, dtype=float)
    shares = counts / counts.sum()
    weights = np.divide(prior, shares, out=np.zeros_like(prior), where=shares > 0)
    return weights * counts.sum() / (weights * counts).sum()


def looks_per_class(trusted_counts):
    """Whether trusted rows look picked per class rather than drawn at random.

    A random audit of an imbalanced table almost never comes out even (and the
    recorded labels cannot tell whether the table is imbalanced: 40% uniform noise
    moves a 6% class to 41%), so the same number of trusted rows, at least 5, in
    every class says they were picked per class.

    Parameters
    ----------
    trusted_counts : array-like of int, shape (n_classes,)
        Trusted rows of each class.

    Returns
    -------
    bool
    """
    trusted_counts = np.asarray(trusted_counts)
    return bool(len(trusted_counts) > 1 and trusted_counts.min() >= 5
                and trusted_counts.min() == trusted_counts.max())


#: How many standard errors of the paired per-row differences a route's mean loss
#: may exceed the best's and still keep its place in the prior order
#: (:func:`choose_route`).
SE_MARGIN = 1.0


def routes_within(gaps, errors, margin=SE_MARGIN):
    """Indices of the routes whose mean-loss gap to the best is at most ``margin``
    paired standard errors (the routes the trusted rows cannot tell apart), in
    order; the best route is always among them.

    Parameters
    ----------
    gaps, errors : array-like of shape (n_routes,)
        As :func:`choose_route` returns them.
    margin : float, default=SE_MARGIN

    Returns
    -------
    numpy.ndarray of int
    """
    return np.flatnonzero(np.asarray(gaps) <= margin * np.asarray(errors))


def choose_route(losses, margin=SE_MARGIN):
    """The rule: the first route (in order) within ``margin`` paired standard errors
    of the best mean loss.

    Parameters
    ----------
    losses : array-like of shape (n_routes, n_rows)
        Each route's loss on the same held-out rows; rows in the prior order.
    margin : float, default=SE_MARGIN
        In standard errors of each route's paired differences with the best.

    Returns
    -------
    chosen : int
        Index of the chosen route.
    gaps : numpy.ndarray of shape (n_routes,)
        Mean loss minus the best route's (0 for the best).
    errors : numpy.ndarray of shape (n_routes,)
        Standard error of each route's paired per-row differences with the best
        (0 for the best; 0 too with a single row).
    """
    losses = np.asarray(losses, dtype=float)
    means = losses.mean(axis=1)
    best = int(np.argmin(means))
    diffs = losses - losses[best]
    gaps = diffs.mean(axis=1)
    n = losses.shape[1]
    errors = diffs.std(axis=1, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(len(losses))
    return int(routes_within(gaps, errors, margin)[0]), gaps, errors


class RouteAverage:
    """Routes fitted on the same rows, predicting the mean of their class
    probabilities (what :class:`TrustedClassifier` fits when its trusted rows
    cannot tell several routes apart).

    Parameters
    ----------
    estimators : list of fitted classifiers
        Fitted on label codes ``0..n_classes-1``.
    n_classes : int

    Attributes
    ----------
    estimators_ : list of fitted classifiers
    classes_ : numpy.ndarray
        The codes ``0..n_classes-1``.
    """

    def __init__(self, estimators, n_classes):
        self.estimators_ = list(estimators)
        self.classes_ = np.arange(n_classes)

    def predict_proba(self, X):
        """The mean of the routes' class probabilities (one-hot for a route
        without ``predict_proba``), a column per code."""
        return np.mean([route_proba(m, X, len(self.classes_)) for m in self.estimators_],
                       axis=0)

    def predict(self, X):
        """The code of the largest mean probability of each row."""
        return self.predict_proba(X).argmax(axis=1)


class TrustedClassifier(LabelPredictMixin, MetaEstimatorMixin, ClassifierMixin,
                        BaseEstimator):
    """Learn a noisy table the way its trusted rows say is best.

    Every route (:data:`ROUTES`, :func:`fit_route`) is fitted around
    ``estimator`` in each fold of :class:`~sk_l2rw.model_selection.TrustedKFold`
    and scored on that fold's held-out trusted rows; the route chosen by
    :func:`choose_route` (Brier score, prior order, one paired standard error) is
    refitted on every row and predicts, averaged with every other route within the
    same standard error (``average``). Trusted rows picked per class are weighed
    to the population's ``class_prior`` when it is given (:func:`score_weights`).

    Parameters
    ----------
    estimator : classifier or None, default=None
        The model every route is built around. None:
        ``HistGradientBoostingClassifier(early_stopping=True)`` (scikit-learn's
        default stops early only above 10,000 rows, and learns the flipped labels
        below). Routes it cannot serve (GLC and ``pruned`` without
        ``predict_proba``, IRBL and L2RW's weights without ``sample_weight`` in
        ``fit``) are left out with a warning.
    routes : "auto" or sequence of str, default="auto"
        The candidates, in their prior order (the first is preferred when the
        trusted rows cannot tell the routes apart). "auto": :data:`ROUTES`
        (``glc_net`` only for numeric X: an array or an all-numeric DataFrame).
    cv : int or TrustedKFold, default=5
        Folds of the trusted rows. An int k: ``TrustedKFold(min(k, m),
        shuffle=True, random_state=random_state)`` where ``m`` is the fewest
        trusted rows of a class that has at least 2. A class with fewer (a small
        random audit of many classes) trains in every fold and is not scored,
        with a warning; when fewer than 2 classes have 2 trusted rows no choice is
        possible, and the first route is fitted with a warning. A TrustedKFold
        holds out every trusted row.
    class_prior : None or array-like of shape (n_classes,), default=None
        The population's class shares, in the order of the sorted labels, for
        trusted rows that were not drawn like the test data (so many of each
        class): every held-out trusted row is weighed by ``prior / trusted share``
        of its class in the scores. None: the trusted rows are taken as a random
        sample of the population (a random audit), weight 1 each; a warning says
        so when every class has the same number of trusted rows (5 or more).
    average : bool, default=True
        When the trusted rows cannot tell several routes apart (each within one
        paired standard error of the best mean Brier score), refit every one of
        them on all rows and predict the mean of their class probabilities. False:
        the first of them in the prior order alone (one model, one refit).
    random_state : None or int, default=None
        Seeds the folds, L2RW's nets and the default estimator (a given estimator
        keeps its own).

    Attributes
    ----------
    route_ : str
        The chosen route; routes averaged are named in the prior order, joined by
        ``"+"`` (``"pruned+irbl"``).
    estimator_ : classifier
        The chosen route fitted on every row (labels as codes of ``classes_``); a
        :class:`RouteAverage` of the routes averaged.
    cv_accuracy_ : float
        Trusted-CV accuracy of what predicts: the out-of-fold class probabilities
        of the chosen route, or the mean of the averaged routes' (weighed as the
        means of ``cv_results_``); NaN when no choice was possible.
    cv_results_ : dict of numpy.ndarray
        One entry per route that was scored, in the prior order: ``route``,
        ``mean_brier`` and ``mean_accuracy`` over every held-out trusted row (what
        the rule compares), ``std_brier`` and ``std_accuracy`` over the folds,
        ``gap`` (mean Brier minus the best's), ``gap_se`` (its paired standard
        error), ``mean_fit_time`` (seconds per fold). With ``class_prior``, means
        weigh each row by :func:`score_weights` of its class. Empty when no choice
        was possible.
    classes_ : numpy.ndarray
    n_features_in_ : int
        When the chosen model records it.

    Examples
    --------
    >>> from sk_l2rw import TrustedClassifier
    >>> clf = TrustedClassifier(random_state=0)
    >>> # clf.fit(X, y, trusted=mask); clf.route_, clf.cv_results_
    """

    __metadata_request__fit = {"trusted": True}

    def __init__(self, estimator=None, *, routes="auto", cv=5, class_prior=None,
                 average=True, random_state=None):
        self.estimator = estimator
        self.routes = routes
        self.cv = cv
        self.class_prior = class_prior
        self.average = average
        self.random_state = random_state

    def _check_routes(self, estimator, X):
        """The routes to score, in order; those the estimator or X cannot serve left
        out (``glc_net`` needs numeric X: left out of "auto" silently otherwise)."""
        auto = isinstance(self.routes, str) and self.routes == "auto"
        routes = ROUTES if auto else self.routes
        if isinstance(routes, str) or not hasattr(routes, "__iter__"):
            raise TypeError(f"routes must be 'auto' or a sequence of route names; got "
                            f"{self.routes!r}")
        routes = list(routes)
        unknown = [r for r in routes if r not in ROUTES]
        if unknown or not routes or len(set(routes)) != len(routes):
            raise ValueError(f"routes must name distinct routes among {list(ROUTES)}; "
                             f"got {routes!r}")
        kept = []
        for route in routes:
            reason = _lacks(route, estimator)
            if route == "glc_net" and not _dense_numeric(X):
                if auto:
                    continue
                reason = "its net takes numeric X only (an array or numeric DataFrame)"
            if reason is None:
                kept.append(route)
            else:
                warnings.warn(f"route {route!r} left out: {reason}", UserWarning,
                              stacklevel=3)
        if not kept:
            raise ValueError(f"no route is left for {type(estimator).__name__}: "
                             f"every one of {routes} needs what it lacks")
        return kept

    def _check_prior(self, n_classes):
        """``class_prior`` as shares of the classes, or None."""
        if self.class_prior is None:
            return None
        try:
            prior = np.asarray(self.class_prior, dtype=float)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"class_prior must be None or an array of class shares; "
                            f"got {self.class_prior!r}") from exc
        if prior.shape != (n_classes,):
            raise ValueError(f"class_prior must have one share per class ({n_classes}, "
                             f"in the order of the sorted labels); got shape "
                             f"{prior.shape}")
        if not np.isfinite(prior).all() or (prior < 0).any() or not np.isclose(
                prior.sum(), 1.0):
            raise ValueError(f"class_prior must hold non-negative shares summing to 1; "
                             f"got {prior.tolist()}")
        return prior

    def _check_cv(self, counts):
        """The splitter and which classes' trusted rows it holds out; the splitter
        is None when fewer than 2 classes have 2 trusted rows (nothing to compare
        on)."""
        if isinstance(self.cv, TrustedKFold):
            return self.cv, counts > 0
        if isinstance(self.cv, bool) or not isinstance(self.cv, (int, np.integer)) or (
                self.cv < 2):
            raise ValueError(f"cv must be an integer >= 2 or a TrustedKFold; got "
                             f"{self.cv!r}")
        # A class with a single trusted row cannot be held out and still be known
        # to the routes that need it (GLC, IRBL): it trains in every fold instead,
        # and the others are scored.
        scored = counts >= 2
        if scored.sum() < 2:
            return None, scored
        return TrustedKFold(min(int(self.cv), int(counts[scored].min())), shuffle=True,
                            random_state=self.random_state), scored

    def fit(self, X, y, *, trusted):
        """Score every route on the trusted rows, then refit the chosen one.

        Parameters
        ----------
        X : array-like, DataFrame or sparse matrix of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        trusted : array-like of bool, shape (n_samples,)
            True for the rows whose labels are trusted (a random audit is best:
            the routes are scored on these rows as if they were the test data).

        Returns
        -------
        self
        """
        estimator = default_estimator(self.estimator, self.random_state)
        if not isinstance(self.average, (bool, np.bool_)):
            raise TypeError(f"average must be True or False; got {self.average!r}")
        mask, classes, codes, _ = check_trusted_fit(X, y, trusted)
        prior = self._check_prior(len(classes))
        routes = self._check_routes(estimator, X)
        counts = np.bincount(codes[mask], minlength=len(classes))
        if prior is None and looks_per_class(counts):
            warnings.warn(
                f"the trusted rows hold {counts[0]} rows of every class: if they were "
                f"picked per class rather than drawn at random, pass class_prior (the "
                f"population's class shares), or the scores favour routes that predict "
                f"rare classes often", UserWarning, stacklevel=2)
        splitter, scored = self._check_cv(counts)
        if splitter is None:
            warnings.warn(
                f"too few trusted rows to compare routes (fewer than 2 classes have 2 "
                f"trusted rows or more): fitting the first route, {routes[0]!r}, "
                f"without a choice", UserWarning, stacklevel=2)
            results, chosen, cv_accuracy = {}, [routes[0]], float("nan")
        else:
            if not scored.all():
                warnings.warn(
                    f"classes {classes[~scored].tolist()} have fewer than 2 trusted rows: "
                    f"they train in every fold and the routes are scored on the other "
                    f"classes' trusted rows only", UserWarning, stacklevel=2)
            scored_counts = np.where(scored, counts, 0)
            weights = (np.ones(len(classes)) if prior is None
                       else score_weights(scored_counts, prior))
            results, chosen, cv_accuracy = self._score_routes(
                routes, estimator, X, codes, mask, mask & scored[codes], splitter,
                weights)
        models = [fit_route(route, estimator, X, codes, mask, self.random_state)
                  for route in chosen]
        final = models[0] if len(models) == 1 else RouteAverage(models, len(classes))
        self.route_, self.estimator_, self.cv_results_ = "+".join(chosen), final, results
        self.cv_accuracy_ = cv_accuracy

        self.classes_ = classes
        if hasattr(models[0], "n_features_in_"):
            self.n_features_in_ = models[0].n_features_in_
        return self

    def _score_routes(self, routes, estimator, X, codes, mask, scored, splitter,
                      class_weight):
        """Out-of-fold probabilities of every route on the ``scored`` trusted rows
        (each held out once); the rule, on losses weighed by ``class_weight`` of
        each row's class. Routes train knowing every trusted row of ``mask``.

        Returns the results, the routes to refit (prior order) and their
        out-of-fold accuracy."""
        K = len(class_weight)
        held = np.flatnonzero(scored)
        position = np.full(len(codes), -1)
        position[held] = np.arange(len(held))
        proba = {r: np.full((len(held), K), np.nan) for r in routes}
        per_fold = {r: [] for r in routes}
        seconds = {r: 0.0 for r in routes}
        failed = {}
        folds = list(splitter.split(X, codes, trusted=scored))
        for train, test in folds:
            for route in routes:
                if route in failed:
                    continue
                start = time.perf_counter()
                try:
                    model = fit_route(route, estimator, take(X, train), codes[train],
                                      mask[train], self.random_state)
                except Exception as exc:  # a route that breaks on a fold is dropped
                    failed[route] = exc
                    continue
                seconds[route] += time.perf_counter() - start
                p = route_proba(model, take(X, test), K)
                proba[route][position[test]] = p
                w = class_weight[codes[test]]
                per_fold[route].append((np.average(brier_losses(p, codes[test]), weights=w),
                                        np.average(p.argmax(axis=1) == codes[test],
                                                   weights=w)))
        for route, exc in failed.items():
            warnings.warn(f"route {route!r} left out: it failed on a fold with "
                          f"{type(exc).__name__}: {exc}", UserWarning, stacklevel=3)
        scored = [r for r in routes if r not in failed]
        if not scored:
            route, exc = next(iter(failed.items()))
            raise ValueError(
                f"every route failed during trusted cross-validation; the first, "
                f"{route!r}, with {type(exc).__name__}: {exc}") from exc
        y_held = codes[held]
        # Weights average 1 over the held-out rows: weighted losses keep their scale.
        row_weight = class_weight[y_held]
        losses = np.array([brier_losses(proba[r], y_held) * row_weight for r in scored])
        chosen, gaps, errors = choose_route(losses)
        # The routes the trusted rows cannot tell apart; the rule's is the first.
        picked = routes_within(gaps, errors) if self.average else [chosen]
        mean_proba = np.mean([proba[scored[i]] for i in picked], axis=0)
        cv_accuracy = float(np.average(mean_proba.argmax(axis=1) == y_held,
                                       weights=row_weight))
        folds_arr = {r: np.array(per_fold[r]) for r in scored}
        # Means over every held-out row (what the rule compares); spreads over folds.
        results = {
            "route": np.array(scored, dtype=object),
            "mean_brier": losses.mean(axis=1),
            "std_brier": np.array([folds_arr[r][:, 0].std() for r in scored]),
            "mean_accuracy": np.array([np.average(proba[r].argmax(axis=1) == y_held,
                                                  weights=row_weight) for r in scored]),
            "std_accuracy": np.array([folds_arr[r][:, 1].std() for r in scored]),
            "gap": gaps, "gap_se": errors,
            "mean_fit_time": np.array([seconds[r] / len(folds) for r in scored]),
        }
        return results, [scored[i] for i in picked], cv_accuracy

    def _proba(self, X):
        return route_proba(self.estimator_, X, len(self.classes_))
