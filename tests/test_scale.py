"""Big inputs without copies, skorch's Dataset route, and many fits on a Dask cluster."""

import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV, cross_validate
from torch.utils.data import TensorDataset

import sk_l2rw.net as net_module
from conftest import MLP, make_blobs_data
from sk_l2rw import L2RWClassifier, L2RWRegressor

FAST = dict(max_epochs=2, lr=0.1, batch_size=64, verbose=0, random_state=0)


class TestNoCopies:
    def test_float32_rows_are_used_in_place(self, monkeypatch):
        seen = []
        original = net_module._as_device_tensor

        def spy(X, dtype, device):
            out = original(X, dtype, device)
            seen.append((X, out))
            return out

        monkeypatch.setattr(net_module, "_as_device_tensor", spy)
        X, y = make_blobs_data(5000)
        L2RWClassifier(MLP, X[:50], y[:50], **FAST).fit(X[50:], y[50:])
        source, tensor = seen[0]
        assert np.shares_memory(source, X)           # validation made no copy
        assert tensor.data_ptr() == source.ctypes.data  # neither did the tensor

    def test_memmap_input(self, tmp_path):
        X, y = make_blobs_data(600)
        path = tmp_path / "X.npy"
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=X.shape)
        mm[:] = X
        mm.flush()
        on_disk = np.load(path, mmap_mode="r")
        a = L2RWClassifier(MLP, X[:50], y[:50], **FAST).fit(on_disk[50:], y[50:])
        b = L2RWClassifier(MLP, X[:50], y[:50], **FAST).fit(X[50:], y[50:])
        np.testing.assert_array_equal(a.sample_weights_, b.sample_weights_)


class TestTorchDataset:
    def test_classifier_on_a_dataset_with_separate_clean_set(self):
        X, y = make_blobs_data(400)
        dataset = TensorDataset(torch.as_tensor(X[40:]), torch.as_tensor(y[40:]))
        net = L2RWClassifier(MLP, X[:40], y[:40], classes=[0, 1, 2],
                             **dict(FAST, max_epochs=6, batch_size=32))
        net.fit(dataset, None)
        assert net.sample_weights_.shape == (6, 360)
        assert not np.isnan(net.sample_weights_).any()
        assert (net.predict(X) == y).mean() > 0.8
        assert net.predict(dataset).shape == (360,)

    def test_dataset_needs_classes_and_no_y(self):
        X, y = make_blobs_data(100)
        dataset = TensorDataset(torch.as_tensor(X), torch.as_tensor(y))
        with pytest.raises(ValueError, match="pass classes="):
            L2RWClassifier(MLP, X[:10], y[:10], **FAST).fit(dataset, None)
        with pytest.raises(ValueError, match="pass y=None"):
            L2RWClassifier(MLP, X[:10], y[:10], classes=[0, 1, 2], **FAST).fit(dataset, y)

    def test_regressor_on_a_dataset(self):
        rng = np.random.RandomState(0)
        X = rng.normal(size=(300, 10)).astype(np.float32)
        y = X[:, 0].astype(np.float32)
        dataset = TensorDataset(torch.as_tensor(X[30:]), torch.as_tensor(y[30:, None]))
        net = L2RWRegressor(torch.nn.Linear, X[:30], y[:30], module__in_features=10,
                            module__out_features=1, **FAST).fit(dataset, None)
        assert net.n_outputs_ == 1 and net.predict(X).shape == (300, 1)


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                           processes=True, host="127.0.0.1",
                                           dashboard_address=None)
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def test_grid_search_on_dask_equals_serial(dask_client):
    X, y = make_blobs_data(300)
    grid = {"lr": [0.05, 0.2], "clean_batch_size": [8, 30]}
    kwargs = dict(X_val=X[:30], y_val=y[:30])
    serial = GridSearchCV(L2RWClassifier(MLP, **FAST), grid, cv=3, error_score="raise")
    serial.fit(X[30:], y[30:], **kwargs)
    on_dask = GridSearchCV(L2RWClassifier(MLP, **FAST), grid, cv=3, error_score="raise",
                           n_jobs=-1)
    with joblib.parallel_backend("dask"):
        on_dask.fit(X[30:], y[30:], **kwargs)
    np.testing.assert_allclose(on_dask.cv_results_["mean_test_score"],
                               serial.cv_results_["mean_test_score"])
    assert on_dask.best_params_ == serial.best_params_
    with joblib.parallel_backend("dask"):
        scores = cross_validate(L2RWClassifier(MLP, **FAST), X[30:], y[30:], cv=3,
                                params=kwargs, n_jobs=-1)["test_score"]
    serial_scores = cross_validate(L2RWClassifier(MLP, **FAST), X[30:], y[30:], cv=3,
                                   params=kwargs)["test_score"]
    np.testing.assert_allclose(scores, serial_scores)
