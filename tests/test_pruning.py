"""Confident learning's pruning (sk_l2rw.pruning) against cleanlab and by its effect."""

import cleanlab.filter as cleanlab_filter
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from sk_l2rw.pruning import fit_pruned, label_issues, out_of_fold_proba


def uniform_noise(n=1200, noise=0.35, n_trusted=60, seed=0):
    """Four classes, ``noise`` of the untrusted labels moved to another class at
    random; returns X, noisy codes, true codes, the trusted mask and the flips."""
    X, y_true = make_classification(n_samples=n, n_features=8, n_informative=6,
                                    n_redundant=0, n_classes=4,
                                    n_clusters_per_class=1, class_sep=2.0,
                                    random_state=seed)
    rng = np.random.RandomState(seed)
    trusted = np.zeros(n, bool)
    trusted[rng.choice(n, n_trusted, replace=False)] = True
    flipped = (rng.uniform(size=n) < noise) & ~trusted
    y = np.where(flipped, (y_true + rng.randint(1, 4, n)) % 4, y_true)
    return X, y, y_true, trusted, flipped


@pytest.fixture(scope="module")
def problem():
    return uniform_noise()


LOGREG = LogisticRegression(max_iter=500)


class TestOutOfFold:
    def test_matches_cross_val_predict_with_the_same_folds(self, problem):
        X, y, *_ = problem
        proba = out_of_fold_proba(LOGREG, X, y, n_splits=4, random_state=2)
        folds = StratifiedKFold(4, shuffle=True, random_state=2)
        expected = cross_val_predict(LOGREG, X, y, cv=folds, method="predict_proba")
        np.testing.assert_allclose(proba, expected)

    def test_a_class_with_one_row_gives_none(self, problem):
        X, y, *_ = problem
        y = y.copy()
        y[np.flatnonzero(y == 3)[1:]] = 2  # a single row of class 3 left
        assert out_of_fold_proba(LOGREG, X, y) is None

    def test_an_absent_code_has_a_zero_column(self, problem):
        X, y, *_ = problem
        y = np.where(y == 1, 0, y)  # codes 0, 2, 3
        proba = out_of_fold_proba(LOGREG, X, y, n_splits=3, random_state=0)
        assert proba.shape == (len(y), 4)
        np.testing.assert_array_equal(proba[:, 1], 0.0)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)


class TestLabelIssues:
    def test_is_cleanlabs_answer_without_the_trusted_rows(self, problem):
        X, y, _, trusted, _ = problem
        proba = out_of_fold_proba(LOGREG, X, y, random_state=0)
        reference = cleanlab_filter.find_label_issues(y, proba, n_jobs=1)
        issues = label_issues(proba, y, trusted)
        np.testing.assert_array_equal(issues, reference & ~trusted)
        assert (reference & trusted).any()  # the mask does change something here

    def test_finds_the_flipped_rows(self, problem):
        X, y, _, trusted, flipped = problem
        issues = label_issues(out_of_fold_proba(LOGREG, X, y, random_state=0), y,
                              trusted)
        assert flipped[issues].mean() > 0.8  # most flagged rows were flipped
        assert issues[flipped].mean() > 0.6  # and most flips are flagged

    def test_an_absent_code_is_left_out_of_the_count(self, problem):
        X, y, _, trusted, _ = problem
        y = np.where(y == 1, 0, y)
        proba = out_of_fold_proba(LOGREG, X, y, random_state=0)
        present = np.array([0, 2, 3])
        reference = cleanlab_filter.find_label_issues(
            np.searchsorted(present, y), proba[:, present], n_jobs=1)
        np.testing.assert_array_equal(label_issues(proba, y, trusted),
                                      reference & ~trusted)

    def test_a_single_class_has_no_issues(self):
        proba = np.tile([0.2, 0.8], (10, 1))
        assert not label_issues(proba, np.zeros(10, int), np.zeros(10, bool)).any()


class TestFitPruned:
    def test_fits_the_kept_rows(self, problem):
        X, y, _, trusted, _ = problem
        model, kept = fit_pruned(LOGREG, X, y, trusted, random_state=0)
        assert kept[trusted].all() and not kept.all()
        again = LogisticRegression(max_iter=500).fit(X[kept], y[kept])
        np.testing.assert_allclose(model.predict_proba(X), again.predict_proba(X))

    def test_beats_the_noisy_fit_on_held_out_rows(self):
        from sklearn.ensemble import HistGradientBoostingClassifier

        X, y, y_true, trusted, _ = uniform_noise(n=3000, noise=0.4)
        train, test = np.arange(2000), np.arange(2000, 3000)
        hgb = HistGradientBoostingClassifier(max_iter=50, random_state=0)
        model, _ = fit_pruned(hgb, X[train], y[train], trusted[train], random_state=0)
        plain = hgb.fit(X[train], y[train])  # 50 rounds learn some of the flips
        assert model.score(X[test], y_true[test]) > plain.score(X[test], y_true[test])

    def test_keeps_every_row_when_nothing_can_be_judged(self, problem):
        X, y, _, trusted, _ = problem
        y = y.copy()
        y[np.flatnonzero(y == 3)[1:]] = 2
        _, kept = fit_pruned(LOGREG, X, y, trusted)
        assert kept.all()

    def test_the_given_estimator_is_not_fitted(self, problem):
        X, y, _, trusted, _ = problem
        estimator = LogisticRegression(max_iter=500)
        fit_pruned(estimator, X, y, trusted, random_state=0)
        assert not hasattr(estimator, "coef_")
