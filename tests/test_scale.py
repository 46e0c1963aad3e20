"""Big inputs without copies, skorch's Dataset route, and many fits on a Dask cluster."""

import contextlib
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV, cross_validate
from torch.utils.data import TensorDataset

import sk_l2rw.net as net_module
from conftest import MLP, BatchNormMLP, make_blobs_data
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
        # On the CPU only: rows for a GPU are copied there by definition.
        L2RWClassifier(MLP, X[:50], y[:50], device="cpu", **FAST).fit(X[50:], y[50:])
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


@contextlib.contextmanager
def default_dtype(dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


class TestOneBatchOrder:
    """A torch Dataset draws the batches of the same rows given as arrays."""

    @staticmethod
    def fits(dtype, module=MLP, **params):
        X, y = make_blobs_data(300, dtype=np.float64 if dtype == torch.float64
                               else np.float32)
        dataset = TensorDataset(torch.as_tensor(X[30:]), torch.as_tensor(y[30:]))
        kwargs = dict(FAST, max_epochs=3, batch_size=32, classes=[0, 1, 2], **params)
        with default_dtype(dtype):
            arrays = L2RWClassifier(module, X[:30], y[:30], **kwargs).fit(X[30:], y[30:])
            on_dataset = L2RWClassifier(module, X[:30], y[:30], **kwargs).fit(dataset, None)
        return arrays, on_dataset

    @pytest.mark.parametrize("dtype, tol", [
        (torch.float64, dict(rtol=0, atol=1e-12)),
        (torch.float32, dict(rtol=1e-5, atol=1e-6)),  # rounding
    ])
    def test_a_dataset_fit_equals_the_same_rows_as_arrays(self, dtype, tol):
        arrays, on_dataset = self.fits(dtype)
        assert next(arrays.module_.parameters()).dtype == dtype
        np.testing.assert_allclose(on_dataset.sample_weights_, arrays.sample_weights_,
                                   **tol)
        for (name, a), b in zip(arrays.module_.state_dict().items(),
                                on_dataset.module_.state_dict().values()):
            np.testing.assert_allclose(b.cpu().numpy(), a.cpu().numpy(), err_msg=name, **tol)

    def test_dropout_draws_the_same_numbers(self):
        # The DataLoader's per-epoch worker seed comes from its own generator, so
        # torch's global one (dropout) is where the in-memory path leaves it.
        arrays, on_dataset = self.fits(torch.float32, BatchNormMLP,
                                       criterion=torch.nn.CrossEntropyLoss)
        np.testing.assert_allclose(on_dataset.sample_weights_, arrays.sample_weights_,
                                   rtol=1e-5, atol=1e-6)

    def test_a_sampler_of_the_users_keeps_its_order(self):
        X, y = make_blobs_data(100)
        dataset = TensorDataset(torch.as_tensor(X[20:]), torch.as_tensor(y[20:]))
        sampler = torch.utils.data.SequentialSampler(range(80))
        net = L2RWClassifier(MLP, X[:20], y[:20], classes=[0, 1, 2],
                             iterator_train__sampler=sampler,
                             iterator_train__shuffle=False,
                             **dict(FAST, max_epochs=1, batch_size=32))
        seen = []
        original = net.train_step_single

        def spy(batch, **kwargs):
            seen.append(batch[0][1].tolist())
            return original(batch, **kwargs)

        net.train_step_single = spy
        net.fit(dataset, None)
        assert sum(seen, []) == list(range(80))


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
