"""sk_l2rw.modules.MLP and the estimators sizing modules from the data."""

import numpy as np
import pytest
import torch
from torch import nn

from conftest import make_blobs_data
from sk_l2rw import L2RWClassifier, L2RWRegressor
from sk_l2rw.modules import MLP


class TestMLP:
    def test_sized_from_the_data_with_no_other_argument(self):
        X, y = make_blobs_data(150, n_features=7, n_classes=4)
        net = L2RWClassifier(MLP, X[:40], y[:40], max_epochs=2, verbose=0).fit(X[40:], y[40:])
        layers = net.module_.layers
        assert layers[0].in_features == 7 and layers[-2].out_features == 4
        assert isinstance(layers[-1], nn.Softmax)  # NLLLoss: skorch wants probabilities
        np.testing.assert_allclose(net.predict_proba(X).sum(1), 1.0, rtol=1e-5)
        assert net.meta_gradient_ == "ghost"

    def test_logits_with_cross_entropy(self):
        X, y = make_blobs_data(100)
        net = L2RWClassifier(MLP, X[:30], y[:30], criterion=nn.CrossEntropyLoss,
                             max_epochs=1, verbose=0).fit(X[30:], y[30:])
        assert isinstance(net.module_.layers[-1], nn.Linear)
        np.testing.assert_allclose(net.predict_proba(X).sum(1), 1.0, rtol=1e-5)

    def test_given_module_parameters_win(self):
        X, y = make_blobs_data(100)
        net = L2RWClassifier(MLP, X[:30], y[:30], module__hidden_layer_sizes=(5, 6),
                             module__softmax=False, criterion=nn.CrossEntropyLoss,
                             max_epochs=1, verbose=0).fit(X[30:], y[30:])
        widths = [m.out_features for m in net.module_.layers if isinstance(m, nn.Linear)]
        assert widths == [5, 6, 3]
        with pytest.raises(ValueError, match="cannot process X"):
            L2RWClassifier(MLP, X[:30], y[:30], module__n_features=4, max_epochs=1,
                           verbose=0).fit(X[30:], y[30:])

    def test_rows_of_several_dimensions_are_flattened(self):
        X, y = make_blobs_data(100, n_features=12)
        images = X.reshape(-1, 1, 3, 4)
        net = L2RWClassifier(MLP, images[:30], y[:30], max_epochs=1, verbose=0)
        net.fit(images[30:], y[30:])
        assert net.module_.layers[0].in_features == 12

    def test_refit_on_other_data_resizes(self):
        X, y = make_blobs_data(100, n_features=5, n_classes=2)
        X2, y2 = make_blobs_data(100, n_features=9, n_classes=4)
        net = L2RWClassifier(MLP, max_epochs=1, verbose=0)
        net.fit(X[30:], y[30:], X_val=X[:30], y_val=y[:30])
        net.fit(X2[30:], y2[30:], X_val=X2[:30], y_val=y2[:30])
        assert net.module_.layers[0].in_features == 9
        assert net.module_.layers[-2].out_features == 4

    def test_regressor_outputs_from_targets(self):
        rng = np.random.RandomState(0)
        X = rng.normal(size=(120, 6)).astype(np.float32)
        Y = np.c_[X[:, 0], X[:, 1] - X[:, 2]].astype(np.float32)
        net = L2RWRegressor(MLP, X[:30], Y[:30], max_epochs=2, verbose=0).fit(X[30:], Y[30:])
        assert net.module_.layers[-1].out_features == 2
        assert net.predict(X).shape == (120, 2)

    def test_outside_an_estimator_sizes_are_required(self):
        with pytest.raises(ValueError, match="MLP needs n_features"):
            MLP(n_outputs=3)
        with pytest.raises(ValueError, match="hidden_layer_sizes must be positive"):
            MLP(4, 3, hidden_layer_sizes=(0,))
        with pytest.raises(ValueError, match="dropout"):
            MLP(4, 3, dropout=1.0)
        module = MLP(4, 3, hidden_layer_sizes=(), dropout=0.5)
        assert [type(m) for m in module.layers] == [nn.Linear]
        assert module(torch.zeros(2, 4)).shape == (2, 3)

    def test_initialize_by_hand_names_the_missing_size(self):
        with pytest.raises(ValueError, match="module__n_features"):
            L2RWClassifier(MLP, verbose=0).initialize()
