"""TrustedClassifier: the rule that picks a route, and the estimator around it."""

import pickle
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_l2rw import TrustedClassifier
from sk_l2rw.model_selection import TrustedKFold
from sk_l2rw.selection import (RouteAverage, brier_losses, choose_route, fit_route,
                               looks_per_class, route_proba, routes_within,
                               score_weights)
from test_glc_irbl import noisy_problem

CHEAP = ("mixed", "glc", "irbl", "trusted_only")


class TestRule:
    def test_brier_against_the_definition(self):
        proba = np.array([[0.7, 0.2, 0.1], [0.0, 0.0, 1.0]])
        np.testing.assert_allclose(brier_losses(proba, np.array([0, 0])),
                                   [0.09 + 0.04 + 0.01, 1 + 0 + 1])

    def test_earlier_route_within_one_standard_error_is_kept(self):
        rng = np.random.RandomState(0)
        base = rng.uniform(0, 1, 40)
        noise = rng.normal(0, 0.2, 40)
        noise -= noise.mean()
        losses = np.array([base + 0.01 + noise, base])  # route 1 better, not clearly
        chosen, gaps, errors = choose_route(losses)
        assert gaps[0] <= errors[0] and chosen == 0
        assert gaps[1] == 0.0 and errors[1] == 0.0

    def test_clear_winner_overturns_the_order(self):
        rng = np.random.RandomState(0)
        base = rng.uniform(0, 1, 40)
        losses = np.array([base + 0.3 + rng.normal(0, 0.05, 40), base + 0.1, base])
        chosen, gaps, errors = choose_route(losses)
        assert chosen == 2 and gaps[0] > errors[0] and gaps[1] > errors[1]

    def test_score_weights_make_the_trusted_classes_count_as_the_prior(self):
        counts = np.array([10, 10, 0, 30])
        prior = np.array([0.6, 0.1, 0.1, 0.2])
        w = score_weights(counts, prior)
        assert w[2] == 0.0
        # Weighted class shares of the trusted rows equal the prior (renormalised
        # over the classes that have trusted rows), and the weights average 1.
        shares = w * counts / (w * counts).sum()
        np.testing.assert_allclose(shares, [0.6 / 0.9, 0.1 / 0.9, 0.0, 0.2 / 0.9])
        assert np.isclose((w * counts).sum(), counts.sum())

    def test_a_wider_margin_keeps_an_earlier_route(self):
        rng = np.random.RandomState(0)
        base = rng.uniform(0, 1, 40)
        noise = rng.normal(0, 0.2, 40)
        noise -= noise.mean()
        losses = np.array([base + 1.5 * noise.std() / np.sqrt(40) + noise, base])
        _, gaps, errors = choose_route(losses)
        assert errors[0] < gaps[0] <= 2 * errors[0]
        assert choose_route(losses, margin=1)[0] == 1
        assert choose_route(losses, margin=2)[0] == 0

    def test_the_chosen_route_is_the_first_within_its_error(self):
        rng = np.random.RandomState(3)
        losses = rng.uniform(0, 1, (5, 30))
        chosen, gaps, errors = choose_route(losses)
        assert gaps[chosen] <= errors[chosen]
        assert all(gaps[i] > errors[i] for i in range(chosen))
        within = routes_within(gaps, errors)
        assert within[0] == chosen and int(np.argmin(gaps)) in within
        assert list(within) == [i for i in range(5) if gaps[i] <= errors[i]]

    @pytest.mark.parametrize("counts, expected", [
        ([10, 10], True), ([10, 10, 10, 10], True), ([10, 11], False),
        ([4, 4], False), ([30], False), ([48, 152], False)])
    def test_looks_per_class_only_when_every_class_has_as_many(self, counts, expected):
        assert looks_per_class(np.array(counts)) is expected
        assert looks_per_class(counts) is expected


@pytest.fixture(scope="module")
def fitted():
    # seed 5: the trusted rows cannot tell IRBL from trusted_only (they are averaged)
    X, y, y_true, trusted = noisy_problem(n=1500, seed=5, n_trusted=150)
    model = TrustedClassifier(LogisticRegression(max_iter=1000), routes=CHEAP, cv=3,
                              random_state=0).fit(X, y, trusted=trusted)
    return model, X, y, y_true, trusted


class TestTrustedClassifier:
    def test_scores_every_route_and_follows_the_rule(self, fitted):
        model = fitted[0]
        results = model.cv_results_
        assert list(results["route"]) == list(CHEAP)
        for key in ("mean_brier", "std_brier", "mean_accuracy", "std_accuracy", "gap",
                    "gap_se", "mean_fit_time"):
            assert results[key].shape == (4,)
        # Averaged: every route within one paired standard error of the best, in
        # the prior order (the rule's choice first).
        within = [r for r, gap, se in zip(CHEAP, results["gap"], results["gap_se"])
                  if gap <= se]
        assert model.route_ == "+".join(within)
        chosen = list(CHEAP).index(within[0])
        assert all(results["gap"][i] > results["gap_se"][i] for i in range(chosen))

    def test_noise_that_depends_on_the_class_is_corrected(self, fitted):
        model, X, y, y_true, trusted = fitted
        # 40% of class b and 30% of class c relabelled a: the noisy model is beaten
        assert model.route_ != "mixed"
        plain = LogisticRegression(max_iter=1000).fit(X, y)
        assert np.mean(model.predict(X) == y_true) > np.mean(plain.predict(X) == y_true)
        assert set(model.predict(X)) <= set(y)

    def test_refit_is_the_mean_of_the_chosen_routes_on_every_row(self, fitted):
        model, X, y, _, trusted = fitted
        codes = np.searchsorted(model.classes_, y)
        routes = model.route_.split("+")
        assert len(routes) > 1 and isinstance(model.estimator_, RouteAverage)
        again = [route_proba(fit_route(route, LogisticRegression(max_iter=1000), X,
                                       codes, trusted), X, len(model.classes_))
                 for route in routes]
        np.testing.assert_allclose(model.predict_proba(X), np.mean(again, axis=0))
        assert model.n_features_in_ == X.shape[1]

    def test_without_averaging_the_first_route_within_its_error_predicts(self, fitted):
        model, X, y, _, trusted = fitted
        single = clone(model).set_params(average=False).fit(X, y, trusted=trusted)
        results = single.cv_results_
        np.testing.assert_allclose(results["mean_brier"], model.cv_results_["mean_brier"])
        assert single.route_ == model.route_.split("+")[0]
        chosen = list(results["route"]).index(single.route_)
        assert single.cv_accuracy_ == pytest.approx(results["mean_accuracy"][chosen])
        codes = np.searchsorted(model.classes_, y)
        again = fit_route(single.route_, LogisticRegression(max_iter=1000), X, codes,
                          trusted)
        np.testing.assert_allclose(single.predict_proba(X),
                                   route_proba(again, X, len(model.classes_)))

    def test_cv_accuracy_is_that_of_the_mean_out_of_fold_probabilities(self, fitted):
        model, X, y, _, trusted = fitted
        codes = np.searchsorted(model.classes_, y)
        folds = TrustedKFold(3, shuffle=True, random_state=0).split(X, codes,
                                                                      trusted=trusted)
        hits = []
        for train, test in folds:
            proba = np.mean([route_proba(fit_route(
                route, LogisticRegression(max_iter=1000), X[train], codes[train],
                trusted[train], 0), X[test], 3) for route in model.route_.split("+")],
                axis=0)
            hits += list(proba.argmax(axis=1) == codes[test])
        assert len(hits) == trusted.sum()
        assert model.cv_accuracy_ == pytest.approx(np.mean(hits))

    @pytest.mark.parametrize("average", [1, "yes", None])
    def test_average_must_be_a_bool_and_is_checked_before_any_fit(self, fitted,
                                                                   average):
        model, X, y, _, trusted = fitted
        before = model.predict_proba(X)
        with pytest.raises(TypeError, match="average must be True or False"):
            clone(model).set_params(average=average).fit(X, y, trusted=trusted)
        with pytest.raises(TypeError, match="average must be True or False"):
            model.set_params(average=average).fit(X, y, trusted=trusted)
        model.set_params(average=True)
        np.testing.assert_array_equal(model.predict_proba(X), before)

    def test_clone_pickle_and_a_failed_fit_changes_nothing(self, fitted):
        model, X, y, _, trusted = fitted
        again = pickle.loads(pickle.dumps(model))
        np.testing.assert_array_equal(again.predict(X), model.predict(X))
        assert clone(model).get_params()["routes"] == CHEAP
        before = model.predict_proba(X)
        with pytest.raises(TypeError, match="boolean mask"):
            model.fit(X, y, trusted=trusted.astype(int))
        with pytest.raises(ValueError, match="routes must name distinct routes"):
            clone(model).set_params(routes=("mixed", "best")).fit(X, y, trusted=trusted)
        np.testing.assert_array_equal(model.predict_proba(X), before)

    def test_routes_the_estimator_cannot_serve_are_left_out(self):
        X, y, _, trusted = noisy_problem(n=400, n_trusted=90)
        with pytest.warns(UserWarning, match="'irbl' left out: .*no sample_weight"):
            model = TrustedClassifier(KNeighborsClassifier(), routes=("mixed", "irbl"),
                                      cv=3).fit(X, y, trusted=trusted)
        assert list(model.cv_results_["route"]) == ["mixed"]
        with pytest.raises(ValueError, match="no route is left"), pytest.warns(
                UserWarning):
            TrustedClassifier(KNeighborsClassifier(), routes=("irbl",)).fit(
                X, y, trusted=trusted)

    def test_a_class_with_one_trusted_row_trains_in_every_fold_unscored(self):
        X, y, _, trusted = noisy_problem(n=400, n_trusted=90)
        one_c = trusted & ((y != "c") | (np.cumsum(trusted & (y == "c")) <= 1))
        with pytest.warns(UserWarning, match="classes \\['c'\\] have fewer than 2 "
                          "trusted rows: they train in every fold"):
            model = TrustedClassifier(LogisticRegression(max_iter=1000), routes=CHEAP,
                                      cv=3).fit(X, y, trusted=one_c)
        # GLC needs a trusted row of every class in each fold's training part: it
        # is scored only because the single row of c is never held out.
        assert list(model.cv_results_["route"]) == list(CHEAP)
        assert set(model.route_.split("+")) <= set(CHEAP)

    def test_too_few_trusted_rows_fit_the_first_route_with_a_warning(self):
        X, y, _, trusted = noisy_problem(n=400, n_trusted=90)
        seen = np.cumsum(trusted & (y != "a"))
        few = trusted & ((y == "a") | (seen <= 1))  # one trusted row outside a
        with pytest.warns(UserWarning, match="too few trusted rows .*fewer than 2 "
                          "classes"):
            model = TrustedClassifier(LogisticRegression(max_iter=1000), routes=CHEAP,
                                      cv=3).fit(X, y, trusted=few)
        assert model.route_ == "mixed" and model.cv_results_ == {}
        assert np.isnan(model.cv_accuracy_)

    @pytest.mark.parametrize("cv", [1, 2.5, "five"])
    def test_bad_cv(self, cv):
        X, y, _, trusted = noisy_problem(n=300, n_trusted=60)
        with pytest.raises(ValueError, match="cv must be an integer >= 2"):
            TrustedClassifier(LogisticRegression(), cv=cv).fit(X, y, trusted=trusted)

    def test_in_a_pipeline_and_a_trusted_search(self):
        X, y, _, trusted = noisy_problem(n=600, n_trusted=120)
        pipe = make_pipeline(StandardScaler(), TrustedClassifier(
            LogisticRegression(max_iter=1000), routes=("mixed", "glc"), cv=2))
        with sklearn.config_context(enable_metadata_routing=True):
            search = GridSearchCV(pipe, {"trustedclassifier__routes": [
                ("mixed",), ("mixed", "glc")]}, cv=TrustedKFold(3))
            search.fit(X, y, trusted=trusted)
        assert search.best_estimator_[-1].route_ in ("mixed", "glc", "mixed+glc")


class TestClassPrior:
    def test_uniform_prior_on_balanced_rows_changes_nothing(self, fitted):
        model, X, y, _, trusted = fitted
        counts = np.bincount(np.searchsorted(model.classes_, y[trusted]))
        again = clone(model).set_params(class_prior=counts / counts.sum()).fit(
            X, y, trusted=trusted)
        np.testing.assert_allclose(again.cv_results_["mean_brier"],
                                   model.cv_results_["mean_brier"])
        assert again.route_ == model.route_

    def test_the_prior_weighs_the_held_out_rows(self, fitted):
        model, X, y, _, trusted = fitted
        codes = np.searchsorted(model.classes_, y[trusted])
        prior = np.array([0.8, 0.1, 0.1])
        again = clone(model).set_params(class_prior=prior).fit(X, y, trusted=trusted)
        # The scores move, and the row weights make class 0 count for 80% of the
        # held-out rows while averaging 1 (the losses keep their scale).
        assert not np.allclose(again.cv_results_["mean_brier"],
                               model.cv_results_["mean_brier"])
        w = score_weights(np.bincount(codes), prior)[codes]
        assert np.isclose(w.mean(), 1.0)
        assert np.isclose(np.sum(w[codes == 0]) / len(codes), 0.8)

    @pytest.mark.parametrize("prior, error, match", [
        ([0.5, 0.5], ValueError, "one share per class \\(3"),
        ([0.5, 0.6, -0.1], ValueError, "non-negative shares summing to 1"),
        ([0.2, 0.2, 0.2], ValueError, "summing to 1"),
        ([np.nan, 0.5, 0.5], ValueError, "summing to 1"),
        ("uniform", TypeError, "class_prior must be None or an array"),
    ])
    def test_bad_prior_is_refused_before_any_fit(self, fitted, prior, error, match):
        model, X, y, _, trusted = fitted
        before = model.predict_proba(X)
        with pytest.raises(error, match=match):
            model.set_params(class_prior=prior).fit(X, y, trusted=trusted)
        model.set_params(class_prior=None)
        np.testing.assert_array_equal(model.predict_proba(X), before)


class TestDefaultEstimator:
    def test_the_default_hgb_stops_early(self):
        model = TrustedClassifier(routes=("mixed",), cv=2, random_state=0)
        X, y, _, trusted = noisy_problem(n=400, n_trusted=60)
        model.fit(X, y, trusted=trusted)
        assert model.estimator_.get_params()["early_stopping"] is True
        assert model.estimator_.n_iter_ < 100

    def test_a_trusted_set_too_small_to_split_is_fitted_without_it(self):
        from sklearn.ensemble import HistGradientBoostingClassifier

        from sk_l2rw.trusted import fit_rows

        X, y, _, trusted = noisy_problem(n=400, n_trusted=60)
        hgb = HistGradientBoostingClassifier(early_stopping=True, max_iter=5)
        # 11 rows, one of class c: no stratified validation split can hold it
        small = np.flatnonzero(trusted)[:25]
        rows = np.r_[small[y[small] == "a"][:5], small[y[small] == "b"][:5],
                     small[y[small] == "c"][:1]]
        with pytest.raises(ValueError):
            clone(hgb).fit(X[rows], y[rows])
        model = fit_rows(hgb, X[rows], y[rows])
        assert model.get_params()["early_stopping"] is False
        assert hgb.get_params()["early_stopping"] is True  # the given one untouched
        big = fit_rows(hgb, X, y)
        assert big.get_params()["early_stopping"] is True

    def test_trusted_only_and_irbl_survive_a_small_trusted_set(self):
        # 26 trusted rows over 3 classes: 10% validation rows (3) hold every class
        # only by luck; early stopping would refuse some folds and drop the routes
        from sklearn.ensemble import HistGradientBoostingClassifier

        X, y, _, trusted = noisy_problem(n=400, n_trusted=26)
        hgb = HistGradientBoostingClassifier(early_stopping=True, max_iter=10)
        model = TrustedClassifier(hgb, routes=("mixed", "irbl", "trusted_only"), cv=2,
                                  random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            model.fit(X, y, trusted=trusted)
        assert list(model.cv_results_["route"]) == ["mixed", "irbl", "trusted_only"]


class TestCorrectedNet:
    def test_glc_net_route_fits_predicts_and_is_seeded(self):
        X, y, _, trusted = noisy_problem(n=400, n_trusted=90)
        codes = np.searchsorted(np.unique(y), y)
        torch = pytest.importorskip("torch")
        state = torch.get_rng_state()
        first = fit_route("glc_net", None, X, codes, trusted, random_state=3)
        assert torch.equal(torch.get_rng_state(), state)  # caller's generator kept
        second = fit_route("glc_net", None, X, codes, trusted, random_state=3)
        np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
        proba = route_proba(first, X, 3)
        assert proba.shape == (400, 3)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
        assert first[-1].correction_ == "loss"

    def test_auto_routes_include_it_for_numeric_x_only(self):
        import pandas as pd

        from sklearn.ensemble import HistGradientBoostingClassifier

        X, y, _, trusted = noisy_problem(n=300, n_trusted=60)
        hgb = HistGradientBoostingClassifier()
        model = TrustedClassifier()
        assert "glc_net" in model._check_routes(hgb, X)
        frame = pd.DataFrame(X).assign(colour=pd.Categorical(["r"] * 300))
        assert "glc_net" not in model._check_routes(hgb, frame)
        assert "glc_net" in model._check_routes(hgb, pd.DataFrame(X))
        with pytest.warns(UserWarning, match="'glc_net' left out: .*numeric X"):
            TrustedClassifier(routes=("mixed", "glc_net"))._check_routes(hgb, frame)


class TestPerClassWarning:
    def test_an_even_trusted_set_without_a_prior_is_named(self):
        X, y, _, trusted = noisy_problem(n=400, n_trusted=90)
        even = np.zeros(len(y), bool)
        for label in "abc":
            even[np.flatnonzero(trusted & (y == label))[:6]] = True
        model = TrustedClassifier(LogisticRegression(max_iter=1000), routes=("mixed",),
                                  cv=2)
        with pytest.warns(UserWarning, match="hold 6 rows of every class: .*pass "
                          "class_prior"):
            model.fit(X, y, trusted=even)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            model.set_params(class_prior=[0.5, 0.3, 0.2]).fit(X, y, trusted=even)
            model.set_params(class_prior=None).fit(X, y, trusted=trusted)  # uneven


class TestPrunedRoute:
    def test_is_fit_pruned_with_the_route_seed(self):
        from sk_l2rw.pruning import fit_pruned

        X, y, _, trusted = noisy_problem(n=600, n_trusted=90)
        codes = np.searchsorted(np.unique(y), y)
        estimator = LogisticRegression(max_iter=1000)
        route = fit_route("pruned", estimator, X, codes, trusted, random_state=4)
        direct, kept = fit_pruned(estimator, X, codes, trusted, random_state=4)
        assert 0 < (~kept).sum() < len(kept)
        np.testing.assert_allclose(route.predict_proba(X), direct.predict_proba(X))

    def test_is_in_auto_second_and_needs_predict_proba(self):
        from sklearn.svm import LinearSVC

        X, y, _, trusted = noisy_problem(n=300, n_trusted=60)
        model = TrustedClassifier()
        assert model._check_routes(LogisticRegression(), X)[:2] == ["mixed", "pruned"]
        with pytest.warns(UserWarning) as record:
            routes = model._check_routes(LinearSVC(), X)
        assert "pruned" not in routes and "glc" not in routes
        assert {str(w.message) for w in record} == {
            f"route {r!r} left out: LinearSVC has no predict_proba"
            for r in ("pruned", "glc")}


class TestL2RWRoutes:
    def test_l2rw_routes_fit_and_are_scored(self):
        X, y, _, trusted = noisy_problem(n=400, n_trusted=90)
        model = TrustedClassifier(LogisticRegression(max_iter=1000),
                                  routes=("reweighted", "l2rw_net"), cv=2,
                                  random_state=0).fit(X, y, trusted=trusted)
        assert list(model.cv_results_["route"]) == ["reweighted", "l2rw_net"]
        assert np.isfinite(model.cv_results_["mean_brier"]).all()
        assert model.predict_proba(X).shape == (len(X), 3)


def test_a_dataframe_with_categorical_columns():
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y, _, trusted = noisy_problem(n=500, n_trusted=120)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame["colour"] = pd.Categorical(np.where(X[:, 0] > 0, "red", "blue"))
    model = TrustedClassifier(HistGradientBoostingClassifier(max_iter=20),
                              routes=("mixed", "glc", "irbl", "trusted_only"), cv=3,
                              random_state=0).fit(frame, y, trusted=trusted)
    assert list(model.cv_results_["route"]) == ["mixed", "glc", "irbl", "trusted_only"]
    assert model.predict(frame.iloc[:7]).shape == (7,)


def test_a_pipeline_keeps_the_weighted_routes():
    X, y, y_true, trusted = noisy_problem(n=500, n_trusted=120)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model = TrustedClassifier(pipe, routes=("mixed", "irbl"), cv=3,
                              random_state=0).fit(X, y, trusted=trusted)
    assert list(model.cv_results_["route"]) == ["mixed", "irbl"]


def test_when_every_route_fails_the_cause_is_named():
    X, y, _, trusted = noisy_problem(n=300, n_trusted=60)
    X = X.astype(object)
    X[0, 0] = "not a number"
    with pytest.raises(ValueError, match="the first, 'mixed', with ValueError: .*"
                       "not a number") as info, pytest.warns(UserWarning):
        TrustedClassifier(LogisticRegression(), routes=("mixed", "glc"),
                          cv=2).fit(X, y, trusted=trusted)
    assert info.value.__cause__ is not None


def test_means_are_over_every_held_out_row(fitted):
    model = fitted[0]
    results = model.cv_results_
    best = int(np.argmin(results["mean_brier"]))
    assert results["gap"][best] == 0.0
    np.testing.assert_allclose(results["gap"], results["mean_brier"]
                               - results["mean_brier"][best], atol=1e-12)
