"""sk_l2rw.diagnostics (label-quality scores from the weights) and sk_l2rw.plotting."""

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from skorch.dataset import ValidSplit

from conftest import MLP, make_blobs_data
from sk_l2rw import L2RWClassifier, L2RWRegressor
from sk_l2rw.exceptions import NoCleanSetWarning
from sk_l2rw.diagnostics import (
    DEFAULT_THRESHOLD,
    find_label_issues,
    label_quality_scores,
    relative_weights,
)
from sk_l2rw.noise import flip_labels, split_clean

FAST = dict(lr=0.1, batch_size=32, verbose=0, random_state=0)
N_EPOCHS = 12


def noisy_problem(kind="background", n=660, seed=0):
    X, y = make_blobs_data(n, seed=seed)
    X, y_true, Xc, yc = split_clean(X, y, 10, random_state=seed)
    y_noisy, flipped = flip_labels(y_true, 0.4, kind=kind, random_state=seed)
    return X, y_noisy, Xc, yc, flipped


@pytest.fixture(scope="module")
def fitted():
    """One L2RW fit on blobs with 40% background flips: (net, X, y_noisy, flipped)."""
    X, y, Xc, yc, flipped = noisy_problem()
    net = L2RWClassifier(MLP, Xc, yc, max_epochs=N_EPOCHS, **FAST).fit(X, y)
    return net, X, y, flipped


# --------------------------------------------------------------------- scores

class TestScores:
    def test_flipped_rows_score_low(self, fitted):
        net, _, _, flipped = fitted
        scores = label_quality_scores(net)
        assert scores.shape == flipped.shape
        assert roc_auc_score(flipped, -scores) >= 0.8
        assert scores[flipped].mean() < scores[~flipped].mean()

    @pytest.mark.parametrize("kind", ["pair", "uniform"])
    def test_other_noise_kinds(self, kind):
        X, y, Xc, yc, flipped = noisy_problem(kind, seed=1)
        net = L2RWClassifier(MLP, Xc, yc, max_epochs=N_EPOCHS, **FAST).fit(X, y)
        assert roc_auc_score(flipped, -label_quality_scores(net)) >= 0.8

    def test_positive_share(self, fitted):
        net, _, _, flipped = fitted
        share = label_quality_scores(net, method="positive_share")
        np.testing.assert_allclose(share, (net.sample_weights_ > 0).mean(axis=0))
        assert share.min() >= 0 and share.max() <= 1
        assert roc_auc_score(flipped, -share) >= 0.9
        last = label_quality_scores(net, last_epochs=2, method="positive_share")
        np.testing.assert_allclose(last, (net.sample_weights_[-2:] > 0).mean(axis=0))

    def test_relative_to_uniform(self, fitted):
        net, X, _, _ = fitted
        relative = relative_weights(net)
        np.testing.assert_allclose(relative, net.sample_weights_ * 32)
        # Each full batch sums to its size: about one row's worth per row.
        assert 0.8 < np.nanmean(relative) < 1.1
        np.testing.assert_allclose(label_quality_scores(net, method="mean_weight"),
                                   relative.mean(axis=0))

    def test_default_is_positive_share(self, fitted):
        net = fitted[0]
        np.testing.assert_array_equal(label_quality_scores(net),
                                      label_quality_scores(net, method="positive_share"))
        np.testing.assert_array_equal(find_label_issues(net),
                                      find_label_issues(net, method="positive_share"))

    def test_last_epochs(self, fitted):
        net, _, _, flipped = fitted
        relative = relative_weights(net)
        for last in (1, 3, N_EPOCHS):
            scores = label_quality_scores(net, last_epochs=last, method="mean_weight")
            np.testing.assert_allclose(scores, relative[-last:].mean(axis=0))
            assert relative_weights(net, last_epochs=last).shape == (last, len(flipped))
        assert not np.allclose(label_quality_scores(net, 1), label_quality_scores(net))
        assert roc_auc_score(flipped, -label_quality_scores(net, last_epochs=3)) >= 0.7

    def test_iterator_batch_size_wins(self):
        X, y, Xc, yc, _ = noisy_problem(n=330)
        net = L2RWClassifier(MLP, Xc, yc, max_epochs=2, iterator_train__batch_size=50,
                             **FAST).fit(X, y)
        np.testing.assert_allclose(relative_weights(net), net.sample_weights_ * 50)

    def test_whole_batch(self):
        X, y, Xc, yc, _ = noisy_problem(n=330)
        net = L2RWClassifier(MLP, Xc, yc, max_epochs=2, **dict(FAST, batch_size=-1))
        net.fit(X, y)
        np.testing.assert_allclose(relative_weights(net), net.sample_weights_ * len(X))

    def test_nan_epochs_ignored(self, fitted):
        net, X, y, _ = fitted
        net = L2RWClassifier(MLP, max_epochs=1, **FAST).fit(X[:64], y[:64], X_val=X[:10],
                                                               y_val=y[:10])
        w = np.full((3, 64), 1 / 32)
        w[0, :5] = np.nan        # rows 0-4 missed epoch 1
        w[1:, 5:10] = np.nan     # rows 5-9 trained only in epoch 1
        w[:, 10] = np.nan        # row 10 never trained
        w[:, 11] = [0.0, 1 / 16, np.nan]
        net._weight_rows_ = list(w)
        scores = label_quality_scores(net, method="mean_weight")
        np.testing.assert_allclose(scores[:10], 1.0)
        assert np.isnan(scores[10])
        assert scores[11] == pytest.approx(1.0)
        share = label_quality_scores(net, method="positive_share")
        np.testing.assert_allclose(share[:10], 1.0)
        assert np.isnan(share[10]) and share[11] == pytest.approx(0.5)
        assert not find_label_issues(net, threshold=np.inf)[10]
        assert 10 not in find_label_issues(net, n_issues=63, return_indices_ranked_by="score")

    def test_validation_rows_are_nan(self):
        X, y, Xc, yc, _ = noisy_problem(n=330)
        net = L2RWClassifier(MLP, Xc, yc, max_epochs=2, train_split=ValidSplit(5),
                             **FAST).fit(X, y)
        scores = label_quality_scores(net)
        assert np.isnan(scores).sum() == len(X) // 5
        assert not find_label_issues(net, threshold=10.0)[np.isnan(scores)].any()

    def test_pipeline_and_search(self, fitted):
        _, X, y, _ = fitted
        X, y, Xc, yc = X[30:230], y[30:230], X[:30], y[:30]
        pipe = Pipeline([("scale", StandardScaler()),
                         ("net", L2RWClassifier(MLP, Xc, yc, max_epochs=2, **FAST))])
        pipe.fit(X, y)
        np.testing.assert_array_equal(label_quality_scores(pipe),
                                      label_quality_scores(pipe[-1]))
        search = GridSearchCV(L2RWClassifier(MLP, Xc, yc, max_epochs=2, **FAST),
                              {"lr": [0.05, 0.1]}, cv=2).fit(X, y)
        np.testing.assert_array_equal(label_quality_scores(search),
                                      label_quality_scores(search.best_estimator_))

    def test_regressor(self):
        rng = np.random.RandomState(0)
        X = rng.normal(size=(400, 5)).astype(np.float32)
        y = (X @ rng.normal(size=5)).astype(np.float32)
        corrupted = rng.rand(400) < 0.3
        y_noisy = y + 10.0 * corrupted
        net = L2RWRegressor(torch.nn.Linear, X[:40], y[:40], module__in_features=5,
                            module__out_features=1, max_epochs=10, lr=0.02, batch_size=32,
                            verbose=0, random_state=0).fit(X[40:], y_noisy[40:])
        scores = label_quality_scores(net)
        assert roc_auc_score(corrupted[40:], -scores) >= 0.8


# ----------------------------------------------------------------- find issues

class TestFindLabelIssues:
    def test_mask_and_indices_agree(self, fitted):
        net, _, _, flipped = fitted
        scores = label_quality_scores(net)
        mask = find_label_issues(net)
        assert mask.dtype == bool and mask.shape == flipped.shape
        np.testing.assert_array_equal(mask, scores < DEFAULT_THRESHOLD)
        ranked = find_label_issues(net, return_indices_ranked_by="score")
        assert ranked.dtype == np.int64
        np.testing.assert_array_equal(np.sort(ranked), np.flatnonzero(mask))
        assert np.all(np.diff(scores[ranked]) >= 0)
        # It finds most flipped rows. On blobs this easy the fitted model also
        # leaves easy intact rows tiny gradients, hence small weights: the
        # precision of the default threshold is well above the base rate, no more.
        assert mask[flipped].mean() > 0.8
        assert flipped[mask].mean() > 1.5 * flipped.mean()

    def test_threshold(self, fitted):
        net, _, _, _ = fitted
        scores = label_quality_scores(net)
        for cut in (0.0, 0.2, 1.0, 5.0):
            np.testing.assert_array_equal(find_label_issues(net, threshold=cut),
                                          scores < cut)
        assert find_label_issues(net, threshold=0).sum() == 0
        assert find_label_issues(net, threshold=np.float32(0.5)).sum() > 0

    def test_n_issues(self, fitted):
        net, _, _, flipped = fitted
        scores = label_quality_scores(net)
        k = int(flipped.sum())
        ranked = find_label_issues(net, n_issues=k, return_indices_ranked_by="score")
        assert len(ranked) == k
        np.testing.assert_array_equal(ranked, np.argsort(scores, kind="stable")[:k])
        mask = find_label_issues(net, n_issues=k)
        assert mask.sum() == k
        np.testing.assert_array_equal(np.flatnonzero(mask), np.sort(ranked))
        assert flipped[mask].mean() > 0.7  # precision at k
        assert find_label_issues(net, n_issues=0).sum() == 0
        assert len(find_label_issues(net, n_issues=0, return_indices_ranked_by="score")) == 0

    def test_positive_share_method(self, fitted):
        net, _, _, flipped = fitted
        share = label_quality_scores(net, method="positive_share")
        mask = find_label_issues(net, method="positive_share")
        np.testing.assert_array_equal(mask, share < DEFAULT_THRESHOLD)
        assert mask[flipped].mean() > 0.8 and flipped[mask].mean() > 0.8
        ranked = find_label_issues(net, method="positive_share", n_issues=20,
                                   return_indices_ranked_by="score")
        np.testing.assert_array_equal(ranked, np.argsort(share, kind="stable")[:20])

    def test_last_epochs_passed_on(self, fitted):
        net, _, _, _ = fitted
        np.testing.assert_array_equal(find_label_issues(net, last_epochs=2),
                                      label_quality_scores(net, 2) < DEFAULT_THRESHOLD)


# ------------------------------------------------------------------------ errors

class TestErrors:
    @pytest.mark.parametrize("func", [label_quality_scores, find_label_issues,
                                      relative_weights])
    def test_unfitted(self, func):
        with pytest.raises(NotFittedError, match="not fitted"):
            func(L2RWClassifier(MLP))
        with pytest.raises(NotFittedError, match="not fitted"):
            func(Pipeline([("net", L2RWClassifier(MLP))]))
        with pytest.raises(NotFittedError, match="best_estimator_"):
            func(GridSearchCV(L2RWClassifier(MLP), {"lr": [0.1]}))

    def test_not_an_l2rw_estimator(self):
        X, y = make_blobs_data(60)
        with pytest.raises(TypeError, match="LogisticRegression.*sample_weights_"):
            label_quality_scores(LogisticRegression().fit(X, y))
        with pytest.raises(TypeError, match="ndarray"):
            find_label_issues(np.zeros(3))

    @pytest.mark.parametrize("last", [0, -1, 1.5, True, "3", N_EPOCHS + 1])
    def test_bad_last_epochs(self, fitted, last):
        with pytest.raises(ValueError, match="last_epochs"):
            label_quality_scores(fitted[0], last_epochs=last)
        with pytest.raises(ValueError, match="last_epochs"):
            find_label_issues(fitted[0], last_epochs=last)

    def test_bad_method(self, fitted):
        with pytest.raises(ValueError, match="method must be one of"):
            label_quality_scores(fitted[0], method="weights")

    def test_too_many_last_epochs_names_the_count(self, fitted):
        with pytest.raises(ValueError, match=f"only {N_EPOCHS} epochs"):
            label_quality_scores(fitted[0], last_epochs=N_EPOCHS + 1)

    @pytest.mark.parametrize("kwargs, match", [
        (dict(threshold=0.5, n_issues=3), "not both"),
        (dict(threshold=float("nan")), "threshold"),
        (dict(threshold="0.5"), "threshold"),
        (dict(threshold=True), "threshold"),
        (dict(n_issues=-1), "n_issues"),
        (dict(n_issues=2.0), "n_issues"),
        (dict(n_issues=False), "n_issues"),
        (dict(n_issues=10 ** 6), "only"),
        (dict(return_indices_ranked_by="self_confidence"), "return_indices_ranked_by"),
        (dict(method="self_confidence"), "method must be one of"),
    ])
    def test_bad_arguments(self, fitted, kwargs, match):
        with pytest.raises(ValueError, match=match):
            find_label_issues(fitted[0], **kwargs)

    def test_different_sizes_after_partial_fit(self, fitted):
        net, X, y, _ = fitted
        net = L2RWClassifier(MLP, X[:20], y[:20], max_epochs=1, **FAST).fit(X[20:100],
                                                                          y[20:100])
        net.partial_fit(X[20:90], y[20:90])
        with pytest.raises(ValueError, match="different sizes"):
            label_quality_scores(net)


# ---------------------------------------------------------------------- plotting

@pytest.fixture
def plt():
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as pyplot
    yield pyplot
    pyplot.close("all")


class TestPlotting:
    def test_weight_history(self, fitted, plt):
        from sk_l2rw.plotting import plot_weight_history

        net, X, _, _ = fitted
        ax = plot_weight_history(net)
        assert len(ax.images) == 1
        image = ax.images[0].get_array()
        assert image.shape == (len(X), N_EPOCHS)
        # sorted by score: the top rows have the lowest mean weight
        means = image.mean(axis=1)
        assert means[: len(X) // 4].mean() < means[-len(X) // 4:].mean()
        assert len(ax.figure.axes) == 2  # and a colour bar

    def test_weight_history_on_given_ax_subsampled(self, fitted, plt):
        from sk_l2rw.plotting import plot_weight_history

        fig, ax = plt.subplots()
        out = plot_weight_history(fitted[0], ax=ax, last_epochs=4, max_rows=100,
                                  colorbar=False, method="positive_share")
        assert out is ax
        assert ax.images[0].get_array().shape == (100, 4)
        assert len(fig.axes) == 1

    def test_weight_distributions(self, fitted, plt):
        from sk_l2rw.plotting import plot_weight_distributions

        net, _, _, flipped = fitted
        ax = plot_weight_distributions(net, flipped)
        assert len(ax.patches) > 0
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any(lab.startswith("flipped (") for lab in labels)
        assert any(lab.startswith("intact") for lab in labels)
        ax = plot_weight_distributions(net, ax=plt.subplots()[1], threshold=False)
        assert len(ax.patches) > 0 and not ax.lines
        ax = plot_weight_distributions(net, flipped, method="positive_share")
        assert len(ax.patches) == 2 * (N_EPOCHS + 1)  # one bin per possible share
        assert "positive" in ax.get_xlabel()

    def test_weight_distributions_bad_mask(self, fitted, plt):
        from sk_l2rw.plotting import plot_weight_distributions

        with pytest.raises(ValueError, match="boolean array of shape"):
            plot_weight_distributions(fitted[0], np.zeros(5, dtype=bool))
        with pytest.raises(ValueError, match="boolean"):
            plot_weight_distributions(fitted[0], fitted[3].astype(int))

    def test_training_curves(self, fitted, plt):
        from sk_l2rw.plotting import plot_training_curves

        ax = plot_training_curves(fitted[0])
        assert len(ax.lines) == 1
        np.testing.assert_allclose(ax.lines[0].get_ydata(),
                                   fitted[0].history[:, "clean_loss"])
        assert len(ax.right_ax.lines) == 2
        assert ax.get_legend() is not None

    def test_training_curves_needs_clean_set(self, fitted, plt):
        from sk_l2rw.plotting import plot_training_curves

        _, X, y, _ = fitted
        with pytest.warns(NoCleanSetWarning, match="no clean set"):
            plain = L2RWClassifier(MLP, max_epochs=1, **FAST).fit(X, y)
        with pytest.raises(ValueError, match="clean_loss"):
            plot_training_curves(plain)

    def test_plot_unfitted(self, plt):
        from sk_l2rw.plotting import plot_weight_history

        with pytest.raises(NotFittedError):
            plot_weight_history(L2RWClassifier(MLP))

    def test_missing_matplotlib_names_the_extra(self, fitted, monkeypatch):
        import sys

        from sk_l2rw import plotting

        monkeypatch.setitem(sys.modules, "matplotlib", None)
        monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
        with pytest.raises(ImportError, match=r"pip install sk-l2rw\[plot\]"):
            plotting.plot_weight_history(fitted[0])
