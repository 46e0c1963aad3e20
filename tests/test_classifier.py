"""L2RWClassifier as a user sees it: fit, weights, labels, errors, reproducibility."""


import numpy as np
import pandas as pd
import pytest
import torch
from skorch import NeuralNetClassifier
from sklearn.metrics import roc_auc_score
from torch import nn

from conftest import MLP, make_blobs_data
from sk_l2rw import L2RWClassifier
from sk_l2rw.exceptions import NoCleanSetWarning
from sk_l2rw.noise import flip_labels

COMMON = dict(max_epochs=15, lr=0.1, batch_size=32, verbose=0)


def background_flip_problem(seed=0):
    """3 classes, 40% of training labels flipped to class 0, 30 clean rows."""
    X, y = make_blobs_data(n=930, n_features=10, n_classes=3, seed=seed)
    X_test, y_test = make_blobs_data(n=600, n_features=10, n_classes=3, seed=seed)
    # Same class centres for test: make_blobs_data draws centres from the seed first.
    X_clean, y_clean = X[:30], y[:30]
    X_train, y_true = X[30:], y[30:]
    y_noisy, flipped = flip_labels(y_true, 0.4, kind="background", background_class=0,
                                   random_state=seed)
    return X_train, y_noisy, flipped, X_clean, y_clean, X_test, y_test


@pytest.fixture(scope="module")
def noisy_fit():
    X, y, flipped, Xc, yc, X_test, y_test = background_flip_problem()
    net = L2RWClassifier(MLP, Xc, yc, random_state=0, **COMMON)
    net.fit(X, y)
    return net, X, y, flipped, Xc, yc, X_test, y_test


class TestBehaviour:
    def test_flipped_rows_get_less_weight(self, noisy_fit):
        net, X, y, flipped, *_ = noisy_fit
        mean_weight = np.nanmean(net.sample_weights_, axis=0)
        assert mean_weight[flipped].mean() < mean_weight[~flipped].mean()
        assert roc_auc_score(~flipped, mean_weight) >= 0.8

    def test_beats_plain_training(self, noisy_fit):
        net, X, y, flipped, Xc, yc, X_test, y_test = noisy_fit
        torch.manual_seed(0)
        plain = NeuralNetClassifier(MLP, train_split=None, iterator_train__shuffle=True,
                                    **COMMON)
        plain.fit(np.vstack([X, Xc]), np.concatenate([y, yc]).astype(np.int64))
        l2rw_acc = (net.predict(X_test) == y_test).mean()
        plain_acc = (plain.predict(X_test) == y_test).mean()
        assert l2rw_acc > plain_acc

    def test_sample_weights_shape_and_normalisation(self, noisy_fit):
        net, X, *_ = noisy_fit
        w = net.sample_weights_
        assert w.shape == (COMMON["max_epochs"], len(X))
        assert not np.isnan(w).any() and (w >= 0).all()
        # each epoch has ceil(n / batch) batches each summing to 1 (or 0)
        n_batches = -(-len(X) // COMMON["batch_size"])
        assert w.sum(axis=1) == pytest.approx(np.full(len(w), n_batches), abs=n_batches)
        assert (w.sum(axis=1) <= n_batches + 1e-5).all()

    def test_history_has_clean_loss_and_weight_stats(self, noisy_fit):
        net = noisy_fit[0]
        for key in ("clean_loss", "weight_zero_frac", "weight_ess", "train_loss"):
            values = net.history[:, key]
            assert len(values) == COMMON["max_epochs"]
            assert all(np.isfinite(values))
        assert net.history[-1, "clean_loss"] < net.history[0, "clean_loss"]
        assert 0 < net.history[-1, "weight_ess"] <= 1
        assert net.meta_gradient_ == "ghost"


class TestCriteria:
    def test_cross_entropy_on_logits(self):
        X, y = make_blobs_data(300)
        net = L2RWClassifier(MLP, X[:30], y[:30], module__logits=True,
                             criterion=nn.CrossEntropyLoss, random_state=0, **COMMON)
        net.fit(X[30:], y[30:])
        proba = net.predict_proba(X)
        assert proba == pytest.approx(proba / proba.sum(1, keepdims=True))
        assert (proba >= 0).all()
        assert (net.predict(X) == y).mean() > 0.9

    def test_nll_loss_on_probabilities_matches_cross_entropy_on_logits(self):
        X, y = make_blobs_data(200)
        nets = [L2RWClassifier(MLP, X[:20], y[:20], module__logits=logits,
                               criterion=crit, random_state=3, **dict(COMMON, max_epochs=3))
                .fit(X[20:], y[20:])
                for logits, crit in ((False, nn.NLLLoss), (True, nn.CrossEntropyLoss))]
        np.testing.assert_allclose(nets[0].sample_weights_, nets[1].sample_weights_,
                                   rtol=1e-3, atol=1e-5)


class TestLabels:
    def test_string_labels_round_trip(self):
        X, y = make_blobs_data(300)
        names = np.array(["cat", "dog", "emu"])[y]
        net = L2RWClassifier(MLP, X[:30], names[:30], random_state=0, **COMMON)
        net.fit(X[30:], names[30:])
        assert list(net.classes_) == ["cat", "dog", "emu"]
        pred = net.predict(X)
        assert pred.dtype == names.dtype
        assert (pred == names).mean() > 0.9
        proba = net.predict_proba(X)
        assert (net.classes_[proba.argmax(1)] == pred).all()

    def test_noncontiguous_integer_labels(self):
        X, y = make_blobs_data(300)
        labels = np.array([-5, 7, 100])[y]
        net = L2RWClassifier(MLP, X[:30], labels[:30], random_state=0, **COMMON)
        net.fit(X[30:], labels[30:])
        assert list(net.classes_) == [-5, 7, 100]
        assert set(net.predict(X)) <= {-5, 7, 100}

    def test_dataframe_sets_feature_names(self):
        X, y = make_blobs_data(200)
        df = pd.DataFrame(X, columns=[f"f{i}" for i in range(10)])
        net = L2RWClassifier(MLP, random_state=0, **dict(COMMON, max_epochs=2))
        net.fit(df.iloc[20:], pd.Series(y[20:]), X_val=df.iloc[:20], y_val=y[:20])
        assert list(net.feature_names_in_) == list(df.columns)
        assert net.n_features_in_ == 10
        assert net.predict(df).shape == (200,)


class TestCleanSetRoutes:
    def test_no_clean_set_warns_and_trains_uniformly(self):
        X, y = make_blobs_data(100)
        net = L2RWClassifier(MLP, **dict(COMMON, max_epochs=2, batch_size=25))
        with pytest.warns(NoCleanSetWarning, match="X_val.*clean_X"):
            net.fit(X, y)
        np.testing.assert_allclose(net.sample_weights_, 1 / 25)
        assert net.meta_gradient_ == "plain"

    def test_fit_clean_set_takes_precedence(self):
        X, y = make_blobs_data(200)
        # A constructor clean set of the wrong width would fail if it were used.
        net = L2RWClassifier(MLP, np.zeros((5, 3), np.float32), y[:5],
                             **dict(COMMON, max_epochs=1))
        net.fit(X[20:], y[20:], X_val=X[:20], y_val=y[:20])
        assert net.meta_gradient_ == "ghost"

    @pytest.mark.parametrize("meta_gradient", ["reference", "jvp", "ghost"])
    def test_explicit_computation_is_used(self, meta_gradient):
        X, y = make_blobs_data(100)
        net = L2RWClassifier(MLP, X[:10], y[:10], meta_gradient=meta_gradient,
                             **dict(COMMON, max_epochs=1))
        net.fit(X[10:], y[10:])
        assert net.meta_gradient_ == meta_gradient


class TestClassesParameter:
    def test_all_negative_batch_leaves_module_unchanged(self):
        class Linear(nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = nn.Linear(3, 2)
                nn.init.zeros_(self.lin.weight)
                nn.init.zeros_(self.lin.bias)

            def forward(self, X):
                return torch.softmax(self.lin(X), -1)

        X = np.random.RandomState(0).normal(size=(8, 3)).astype(np.float32)
        net = L2RWClassifier(Linear, X, np.ones(8, int), classes=[0, 1], max_epochs=1,
                             batch_size=8, lr=0.5, verbose=0)
        net.fit(X, np.zeros(8, int))
        assert (net.sample_weights_ == 0).all()
        assert all((p == 0).all() for p in net.module_.parameters())


class TestReproducibility:
    def test_same_random_state_same_weights(self):
        X, y, flipped, Xc, yc, *_ = background_flip_problem(seed=1)
        kwargs = dict(COMMON, max_epochs=3, clean_batch_size=8)
        a = L2RWClassifier(MLP, Xc, yc, random_state=7, **kwargs).fit(X, y)
        b = L2RWClassifier(MLP, Xc, yc, random_state=7, **kwargs).fit(X, y)
        np.testing.assert_array_equal(a.sample_weights_, b.sample_weights_)
        c = L2RWClassifier(MLP, Xc, yc, random_state=8, **kwargs).fit(X, y)
        assert not np.array_equal(a.sample_weights_, c.sample_weights_)

    def test_refit_is_identical(self):
        X, y = make_blobs_data(120)
        net = L2RWClassifier(MLP, X[:20], y[:20], random_state=0,
                             **dict(COMMON, max_epochs=2))
        first = net.fit(X[20:], y[20:]).sample_weights_
        second = net.fit(X[20:], y[20:]).sample_weights_
        np.testing.assert_array_equal(first, second)

    def test_global_torch_rng_untouched(self):
        X, y = make_blobs_data(60)
        torch.manual_seed(123)
        expected = torch.rand(3)
        torch.manual_seed(123)
        L2RWClassifier(MLP, X[:10], y[:10], random_state=0,
                       **dict(COMMON, max_epochs=1)).fit(X[10:], y[10:])
        assert torch.equal(torch.rand(3), expected)
