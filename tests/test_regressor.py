"""L2RWRegressor: corrupted targets get less weight; its own input checks."""

import warnings

import numpy as np
import pytest
import torch
from skorch import NeuralNetRegressor
from torch import nn

from conftest import make_blobs_data
from sk_l2rw import L2RWRegressor


class TestRegressor:
    def test_shifted_targets_get_less_weight_and_lower_rmse(self):
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))

            def forward(self, X):
                return self.layers(X)

        rng = np.random.RandomState(0)
        X = rng.normal(size=(1250, 8)).astype(np.float32)
        y = (X @ rng.normal(size=8) + 0.1 * rng.normal(size=1250)).astype(np.float32)
        X_test, y_test, Xc, yc = X[:200], y[:200], X[200:250], y[200:250]
        X_train, y_train = X[250:], y[250:].copy()
        corrupted = rng.rand(len(y_train)) < 0.3
        y_train[corrupted] += 15.0
        kwargs = dict(lr=0.01, max_epochs=30, batch_size=64, verbose=0)
        net = L2RWRegressor(Net, Xc, yc, random_state=0, **kwargs).fit(X_train, y_train)
        weights = np.nanmean(net.sample_weights_, axis=0)
        assert weights[corrupted].mean() < 0.3 * weights[~corrupted].mean()
        torch.manual_seed(0)
        plain = NeuralNetRegressor(Net, train_split=None, iterator_train__shuffle=True,
                                   **kwargs)
        plain.fit(np.vstack([X_train, Xc]), np.r_[y_train, yc][:, None])
        rmse = lambda pred: np.sqrt(np.mean((pred.ravel() - y_test) ** 2))
        assert net.predict(X_test).shape == (200,)
        assert rmse(net.predict(X_test)) < 0.5 * rmse(plain.predict(X_test))

    def test_regressor_validates_clean_targets(self):
        X, _ = make_blobs_data(60)
        y = X[:, 0]
        net = L2RWRegressor(nn.Linear, module__in_features=10, module__out_features=1,
                            max_epochs=1, verbose=0)
        with pytest.raises(ValueError, match="clean set y_val has 2 outputs per row"):
            net.fit(X[10:], y[10:], X_val=X[:10], y_val=np.c_[y[:10], y[:10]])
        assert not hasattr(net, "predict_proba")


class TestCleanTargetScale:
    def _problem(self):
        rng = np.random.RandomState(0)
        X = rng.normal(size=(300, 5)).astype(np.float32)
        y = np.exp(X[:, 0] + 3)
        return X, y

    def test_transformed_target_regressor_is_caught(self):
        from sklearn.compose import TransformedTargetRegressor

        from sk_l2rw.exceptions import CleanTargetScaleWarning
        from sk_l2rw.modules import MLP

        X, y = self._problem()
        net = L2RWRegressor(MLP, X[:30], y[:30], max_epochs=1, verbose=0)
        model = TransformedTargetRegressor(net, func=np.log, inverse_func=np.exp)
        with pytest.warns(CleanTargetScaleWarning, match="TransformedTargetRegressor"):
            model.fit(X[30:], y[30:])
        # the pattern that works: the clean targets on the transformed scale
        net = L2RWRegressor(MLP, X[:30], np.log(y[:30]), max_epochs=1, verbose=0)
        model = TransformedTargetRegressor(net, func=np.log, inverse_func=np.exp)
        with warnings.catch_warnings():
            warnings.simplefilter("error", CleanTargetScaleWarning)
            model.fit(X[30:], y[30:])

    def test_heavy_noise_is_not_another_scale(self):
        from sk_l2rw.exceptions import CleanTargetScaleWarning

        rng = np.random.RandomState(1)
        X = rng.normal(size=(400, 3)).astype(np.float32)
        y = X[:, 0].astype(np.float64)
        noisy = y.copy()
        noisy[rng.rand(400) < 0.4] += 30.0  # 40% of the targets shifted by 30 sd
        net = L2RWRegressor(nn.Linear, module__in_features=3, module__out_features=1,
                            max_epochs=1, verbose=0)
        with warnings.catch_warnings():
            warnings.simplefilter("error", CleanTargetScaleWarning)
            net.fit(X[50:], noisy[50:], X_val=X[:50], y_val=y[:50])
