"""scikit-learn citizenship: Pipelines, routing, search, CV, checks, pickling, callbacks."""

import pickle
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
import torch
from skorch.callbacks import (Checkpoint, EarlyStopping, EpochScoring, LRScheduler,
                              ProgressBar)
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_l2rw.exceptions import NoCleanSetWarning
from sk_l2rw.modules import MLP as TabularMLP
from torch import nn

from conftest import MLP, make_blobs_data
from sk_l2rw import L2RWClassifier, L2RWRegressor

FAST = dict(max_epochs=8, lr=0.1, batch_size=32, verbose=0, random_state=0)
# What device="auto" (the default) resolves to on this machine.
AUTO_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


class Recorder(nn.Module):
    """An MLP on LazyLinear that keeps every input row it sees (float64 copy)."""

    def __init__(self, n_hidden=16, n_classes=3):
        super().__init__()
        self.hidden = nn.LazyLinear(n_hidden)
        self.out = nn.Linear(n_hidden, n_classes)
        self.seen = []

    def forward(self, X):
        if torch._C._functorch.peek_interpreter_stack() is None:  # not inside jvp
            self.seen.append(X.detach().double().clone())
        return torch.softmax(self.out(torch.relu(self.hidden(X))), -1)


def seen_rows(net):
    return torch.cat(net.module_.seen).cpu().numpy()


def contains_rows(haystack, rows, tol=1e-5):
    return all(np.abs(haystack - r).max(1).min() < tol for r in rows)


@pytest.fixture
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


def scaled_problem():
    X, y = make_blobs_data(400)
    X = X * 1000 + 5000  # raw scale ~1000: untransformed rows would be obvious
    return X[30:], y[30:], X[:30], y[:30]


def table_problem(n=400, seed=0):
    rng = np.random.RandomState(seed)
    colour = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(size=n) * 100
    y = (colour == "red").astype(int) + (size > 0)
    df = pd.DataFrame({"colour": colour, "size": size, "noise": rng.normal(size=n)})
    return df.iloc[40:], y[40:], df.iloc[:40], y[:40]


def table_pipeline(net):
    pre = ColumnTransformer([("onehot", OneHotEncoder(), ["colour"]),
                             ("scale", StandardScaler(), ["size", "noise"])],
                            sparse_threshold=0)
    return Pipeline([("pre", pre), ("net", net)], transform_input=["X_val"])


class TestRouting:
    def test_scaler_transforms_the_clean_set(self, routing):
        X, y, Xc, yc = scaled_problem()
        net = L2RWClassifier(Recorder, **FAST).set_fit_request(X_val=True, y_val=True)
        pipe = Pipeline([("scale", StandardScaler()), ("net", net)],
                        transform_input=["X_val"])
        pipe.fit(X, y, X_val=Xc, y_val=yc)
        seen = seen_rows(pipe[-1])
        expected = pipe[0].transform(Xc)
        assert contains_rows(seen, expected)
        assert np.abs(seen).max() < 20  # never a raw row
        assert (pipe.predict(X) == y).mean() > 0.9

    def test_column_transformer_on_dataframe(self, routing):
        X, y, Xc, yc = table_problem()
        net = L2RWClassifier(Recorder, **dict(FAST, max_epochs=30)).set_fit_request(
            X_val=True, y_val=True)
        pipe = table_pipeline(net).fit(X, y, X_val=Xc, y_val=yc)
        assert contains_rows(seen_rows(pipe[-1]), pipe[0].transform(Xc))
        assert (pipe.predict(X) == y).mean() > 0.85

    def test_constructor_route_is_not_transformed(self):
        X, y, Xc, yc = scaled_problem()
        pipe = Pipeline([("scale", StandardScaler()),
                         ("net", L2RWClassifier(Recorder, Xc, yc, **dict(FAST, max_epochs=1)))])
        pipe.fit(X, y)
        assert contains_rows(seen_rows(pipe[-1]), Xc.astype(np.float64), tol=1e-2)


class TestSearchAndCV:
    @pytest.mark.parametrize("n_jobs", [1, 2])
    def test_grid_search_plain(self, n_jobs):
        X, y, Xc, yc = scaled_problem()
        X, Xc = X / 1000, Xc / 1000
        net = L2RWClassifier(MLP, **FAST)
        grid = {"lr": [0.05, 0.1], "module__n_hidden": [8, 16], "clean_batch_size": [10, 30]}
        search = GridSearchCV(net, grid, cv=2, n_jobs=n_jobs, error_score="raise")
        search.fit(X, y, X_val=Xc, y_val=yc)
        assert len(search.cv_results_["params"]) == 8
        assert search.best_score_ > 0.9

    @pytest.mark.parametrize("n_jobs", [1, 2])
    def test_cross_validate_in_pipeline_gets_whole_clean_set(self, routing, n_jobs):
        X, y, Xc, yc = scaled_problem()
        net = L2RWClassifier(Recorder, **dict(FAST, max_epochs=2)).set_fit_request(
            X_val=True, y_val=True)
        pipe = Pipeline([("scale", StandardScaler()), ("net", net)],
                        transform_input=["X_val"])
        result = cross_validate(pipe, X, y, cv=3, n_jobs=n_jobs, return_estimator=True,
                                params=dict(X_val=Xc, y_val=yc), error_score="raise")
        for fitted in result["estimator"]:
            assert contains_rows(seen_rows(fitted[-1]), fitted[0].transform(Xc))
        assert np.mean(result["test_score"]) > 0.8

    def test_search_over_pipeline(self, routing):
        X, y, Xc, yc = table_problem()
        net = L2RWClassifier(MLP, module__n_features=5, **FAST).set_fit_request(
            X_val=True, y_val=True)
        search = GridSearchCV(table_pipeline(net), {"net__lr": [0.05, 0.2]}, cv=2,
                              n_jobs=2, error_score="raise")
        search.fit(X, y, X_val=Xc, y_val=yc)
        assert search.best_score_ > 0.8

    def test_training_rows_as_clean_set_are_refused_sliced_or_not(self):
        X, y = make_blobs_data(120)
        search = GridSearchCV(L2RWClassifier(MLP, **FAST), {"lr": [0.1]}, cv=2,
                              error_score="raise")
        with pytest.raises(ValueError, match="holds exactly the training rows"):
            search.fit(X, y, X_val=X, y_val=y)
        with pytest.raises(ValueError, match="holds exactly the training rows"):
            L2RWClassifier(MLP, **FAST).fit(X, y, X_val=X, y_val=y)

    def test_whole_clean_set_as_long_as_a_fold(self, routing):
        # The client cases: a whole clean set of 100 rows meets training folds of
        # 100 rows (HalvingGridSearchCV over a routed Pipeline; cross_val_score).
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401
        from sklearn.model_selection import HalvingGridSearchCV, cross_val_score

        rows, labels, _, _ = table_problem(n=540)
        Xc, yc = rows.iloc[:100], labels[:100]
        X, y = rows.iloc[100:500], labels[100:500]
        net = L2RWClassifier(MLP, module__n_features=5, **FAST).set_fit_request(
            X_val=True, y_val=True)
        search = HalvingGridSearchCV(table_pipeline(net), {"net__lr": [0.05, 0.2]},
                                     cv=2, min_resources=200, error_score="raise",
                                     random_state=0)
        search.fit(X, y, X_val=Xc, y_val=yc)
        assert search.n_resources_[0] == 200  # folds of 100 rows, as the clean set
        scores = cross_val_score(table_pipeline(net), X.iloc[:150], y[:150], cv=3,
                                 params=dict(X_val=Xc, y_val=yc), error_score="raise")
        assert len(scores) == 3 and np.all(scores > 0.5)


class Adaptive(nn.Module):
    """Adapts to the input width (LazyLinear); output width given by the estimator."""

    def __init__(self, n_out=1, softmax=True, dtype=torch.float32):
        super().__init__()
        self.hidden = nn.LazyLinear(8, dtype=dtype)
        self.out = nn.Linear(8, n_out, dtype=dtype)
        self.softmax = softmax

    def forward(self, X):
        z = self.out(torch.relu(self.hidden(X)))
        return torch.softmax(z, -1) if self.softmax else z


class AdaptiveClassifier(L2RWClassifier):
    """skorch's documented pattern: size the module from the fitted data."""

    def initialize_module(self):
        kwargs = self.get_params_for("module")
        kwargs.setdefault("n_out", len(self.classes_))
        self.module_ = self.initialized_instance(self.module, kwargs)
        return self


class AdaptiveRegressor(L2RWRegressor):
    def initialize_module(self):
        kwargs = self.get_params_for("module")
        kwargs.setdefault("n_out", self.n_outputs_)
        kwargs["softmax"] = False
        self.module_ = self.initialized_instance(self.module, kwargs)
        return self


# Failures inherent to skorch, each with its reason; nothing else may fail.
SKORCH_FAILURES = {
    "check_no_attributes_set_in_init":
        "skorch's NeuralNet.__init__ sets history_, initialized_ and virtual_params_",
    "check_set_params":
        "skorch exposes callbacks as parameters; callbacks__*=-inf cannot be set",
}


@parametrize_with_checks(
    [AdaptiveClassifier(Adaptive, max_epochs=40, lr=0.2, batch_size=32, verbose=0,
                        random_state=0),
     # float64: check_methods_subset_invariance compares predictions at rtol=1e-7,
     # and float32 BLAS rounding depends on the batch's composition (3e-7 seen).
     # small lr: the checks' regression targets are unscaled (hundreds)
     AdaptiveRegressor(Adaptive, module__dtype=torch.float64, max_epochs=40, lr=0.005,
                       batch_size=32, verbose=0, random_state=0),
     # the shipped tabular module, sized by the estimator itself
     L2RWClassifier(TabularMLP, module__hidden_layer_sizes=(8,), max_epochs=40, lr=0.2,
                    batch_size=32, verbose=0, random_state=0)],
    expected_failed_checks=lambda est: SKORCH_FAILURES)
def test_sklearn_estimator_checks(estimator, check):
    import warnings
    # One thread: with two, the first fit in a process can differ from later ones
    # by ~1e-9 in float64 (kernel warm-up), which check_fit_idempotent sees.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoCleanSetWarning)  # plain training
            check(estimator)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("cls, criterion", [(L2RWClassifier, torch.nn.NLLLoss),
                                             (L2RWRegressor, torch.nn.MSELoss)])
def test_defaults_shared_by_both_estimators(cls, criterion):
    # One __init__ serves both (L2RWMixin): each keeps its skorch class's criterion,
    # and every other default is the documented one.
    params = cls(MLP).get_params(deep=False)
    assert params["criterion"] is criterion
    assert {k: params[k] for k in ("clean_X", "clean_y", "meta_gradient", "clean_batch_size",
                                   "train_on_clean", "categorical_features", "random_state",
                                   "device", "train_split")} == dict(
        clean_X=None, clean_y=None, meta_gradient="auto", clean_batch_size=None,
        train_on_clean=False, categorical_features="from_dtype", random_state=None,
        device="auto", train_split=None)
    assert ("clean_class_weight" in params) == (cls is L2RWClassifier)


@pytest.fixture(scope="module")
def fitted_net():
    X, y = make_blobs_data(200)
    net = L2RWClassifier(MLP, X[:20], y[:20], **dict(FAST, max_epochs=3))
    return net.fit(X[20:], y[20:]), X, y


class TestContinuing:
    def test_partial_fit_appends(self, fitted_net):
        net, X, y = fitted_net
        net = clone(net).fit(X[20:], y[20:])
        net.partial_fit(X[20:], y[20:])
        assert net.sample_weights_.shape == (6, 180)
        assert len(net.history) == 6

    def test_warm_start_appends(self, fitted_net):
        _, X, y = fitted_net
        net = L2RWClassifier(MLP, X[:20], y[:20], warm_start=True, **dict(FAST, max_epochs=2))
        net.fit(X[20:], y[20:])
        net.fit(X[20:], y[20:])
        assert net.sample_weights_.shape == (4, 180)

    def test_plain_fit_restarts(self, fitted_net):
        _, X, y = fitted_net
        net = L2RWClassifier(MLP, X[:20], y[:20], **dict(FAST, max_epochs=2))
        net.fit(X[20:], y[20:])
        net.fit(X[20:], y[20:])
        assert net.sample_weights_.shape == (2, 180)


class TestPersistence:
    def test_pickle_and_joblib_round_trip(self, fitted_net, tmp_path):
        net, X, _ = fitted_net
        again = pickle.loads(pickle.dumps(net))
        np.testing.assert_array_equal(again.predict_proba(X), net.predict_proba(X))
        np.testing.assert_array_equal(again.sample_weights_, net.sample_weights_)
        # "auto" resolves to CUDA where there is one, and the round trip keeps it.
        assert again.device == "auto" and again.device_ == AUTO_DEVICE == net.device_
        joblib.dump(net, tmp_path / "net.joblib")
        loaded = joblib.load(tmp_path / "net.joblib")
        np.testing.assert_array_equal(loaded.predict(X), net.predict(X))

    def test_save_and_load_params(self, fitted_net, tmp_path):
        net, X, y = fitted_net
        net.save_params(f_params=tmp_path / "params.pt")
        other = L2RWClassifier(MLP, **FAST).initialize()
        other.load_params(f_params=tmp_path / "params.pt")
        rows = torch.as_tensor(X, device=net.device_)
        np.testing.assert_allclose(other.module_(rows).detach().cpu().numpy(),
                                   net.module_(rows).detach().cpu().numpy())

    def test_clone_of_fitted_is_unfitted_with_equal_params(self, fitted_net):
        net = fitted_net[0]
        copy = clone(net)
        assert not copy.initialized_
        assert not hasattr(copy, "sample_weights_")
        for key, value in net.get_params(deep=False).items():
            if not isinstance(value, np.ndarray):
                assert copy.get_params(deep=False)[key] == value or key == "callbacks"

    @pytest.mark.parametrize("routing_on", [False, True])
    def test_module_defined_in_main_survives_parallel_search(self, tmp_path, routing_on):
        script = textwrap.dedent(f"""
            import numpy as np, sklearn, torch
            from torch import nn
            from sklearn.model_selection import GridSearchCV
            from sk_l2rw import L2RWClassifier

            class NotebookMLP(nn.Module):
                def __init__(self, n_hidden=8):
                    super().__init__()
                    self.layers = nn.Sequential(nn.Linear(4, n_hidden), nn.ReLU(),
                                                nn.Linear(n_hidden, 2))
                def forward(self, X):
                    return torch.softmax(self.layers(X), -1)

            sklearn.set_config(enable_metadata_routing={routing_on})
            rng = np.random.RandomState(0)
            X = rng.normal(size=(120, 4)).astype(np.float32)
            y = (X[:, 0] > 0).astype(int)
            net = L2RWClassifier(NotebookMLP, max_epochs=2, verbose=0, random_state=0)
            if {routing_on}:
                net.set_fit_request(X_val=True, y_val=True)
            net.fit(X[20:], y[20:], X_val=X[:20], y_val=y[:20])
            search = GridSearchCV(net, {{"lr": [0.05, 0.1]}}, cv=2, n_jobs=2,
                                  error_score="raise")
            search.fit(X[20:], y[20:], X_val=X[:20], y_val=y[:20])
            print("searched", len(search.cv_results_["params"]))
        """)
        path = tmp_path / "notebook.py"
        path.write_text(script)
        done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                              timeout=300)
        assert "searched 2" in done.stdout, done.stderr[-3000:]


class TestPandas:
    def test_float64_dataframe_is_cast_once(self, monkeypatch):
        import sk_l2rw.net as net_module
        calls = []
        original = net_module._as_device_tensor

        def spy(X, dtype, device):
            calls.append(X.dtype)
            return original(X, dtype, device)

        monkeypatch.setattr(net_module, "_as_device_tensor", spy)
        X, y = make_blobs_data(200, dtype=np.float64)
        df = pd.DataFrame(X, columns=[f"c{i}" for i in range(10)])
        net = L2RWClassifier(Recorder, **dict(FAST, max_epochs=3))
        net.fit(df.iloc[20:], pd.Series(y[20:], name="label"), X_val=df.iloc[:20],
                y_val=pd.Series(y[:20]))
        assert calls == [np.float32]  # converted before, once; batches are slices
        assert all(batch.dtype == torch.float64 for batch in net.module_.seen)  # recorder's copy
        assert list(net.feature_names_in_) == list(df.columns)
        with pytest.raises(ValueError, match="feature names"):
            net.predict(df.rename(columns={"c0": "other"}))


class TestCallbacks:
    def test_early_stopping_on_clean_loss(self):
        X, y = make_blobs_data(200)
        net = L2RWClassifier(MLP, X[:20], y[:20],
                             callbacks=[EarlyStopping(monitor="clean_loss", patience=2,
                                                      threshold=0.5)],
                             **dict(FAST, max_epochs=50))
        net.fit(X[20:], y[20:])
        assert len(net.history) < 50
        assert net.sample_weights_.shape[0] == len(net.history)

    def test_checkpoint_lr_scheduler_progress_bar_and_clean_scoring(self, tmp_path):
        X, y = make_blobs_data(200)
        Xc, yc = X[:20], y[:20]
        clean_accuracy = EpochScoring(lambda net, X, y: float((net.predict(Xc) == yc).mean()),
                                      name="clean_acc", lower_is_better=False,
                                      on_train=True, use_caching=False)
        net = L2RWClassifier(
            MLP, Xc, yc, optimizer=torch.optim.SGD,
            callbacks=[Checkpoint(monitor="clean_loss_best", dirname=str(tmp_path)),
                       LRScheduler(policy="StepLR", step_size=1, gamma=0.5),
                       ProgressBar(), clean_accuracy],
            **dict(FAST, max_epochs=3))
        net.fit(X[20:], y[20:])
        assert (tmp_path / "params.pt").exists()
        assert net.optimizer_.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 3)
        assert all(0 <= a <= 1 for a in net.history[:, "clean_acc"])
        assert any(net.history[:, "event_cp"])
