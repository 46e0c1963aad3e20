"""Robustness: numerical trouble, interruptions, resumption, threads, random inputs."""

import concurrent.futures
import copy
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from skorch.callbacks import Callback, Checkpoint, LRScheduler
from torch import nn

from benchmarks.fuzz import TwoInputs, as_form, call_quietly, rows
from conftest import MLP, BatchNormMLP, assert_unchanged, fitted_state, make_blobs_data
from sk_l2rw import L2RWClassifier, L2RWRegressor
from sk_l2rw.weights import normalize_weights

FAST = dict(max_epochs=3, lr=0.1, batch_size=32, verbose=0, random_state=0)


class TestModuleMismatch:
    def test_three_dimensional_X_for_a_flat_module(self):
        X, y = make_blobs_data(120)
        net = L2RWClassifier(MLP, **FAST).fit(X[20:], y[20:], X_val=X[:20], y_val=y[:20])
        before = net.predict_proba(X)
        X3 = X.reshape(120, 2, 5)
        with pytest.raises(ValueError, match=r"module cannot process X: rows of shape \(2, 5\)"):
            net.fit(X3[20:], y[20:], X_val=X3[:20], y_val=y[:20])
        np.testing.assert_array_equal(net.predict_proba(X), before)
        assert net.sample_weights_.shape == (3, 100)

    def test_output_width_must_match_classes(self):
        X, y = make_blobs_data(100)
        net = L2RWClassifier(MLP, module__n_classes=4, **FAST)
        with pytest.raises(ValueError, match="y has 3 classes: it must output one column"):
            net.fit(X[20:], y[20:], X_val=X[:20], y_val=y[:20])
        assert not hasattr(net, "classes_inferred_")

    def test_half_precision_is_refused(self):
        X, y = make_blobs_data(100)
        net = L2RWClassifier(MLP().half(), **FAST)
        with pytest.raises(ValueError, match="mixed precision is not supported"):
            net.fit(X[20:], y[20:], X_val=X[:20], y_val=y[:20])

    def test_string_column_without_categorical_features(self):
        X, y = make_blobs_data(100)
        df = pd.DataFrame(X).rename(columns=str).assign(colour="red")
        with pytest.raises(ValueError, match=r"non-numeric columns \['colour'\].*OneHotEncoder"):
            L2RWClassifier(MLP, categorical_features=None, **FAST).fit(
                df, y, X_val=df.iloc[:10], y_val=y[:10])

    def test_string_column_for_a_module_without_embeddings(self):
        X, y = make_blobs_data(100)
        df = pd.DataFrame(X).rename(columns=str).assign(colour="red")
        with pytest.raises(ValueError, match=r"categorical columns \['colour'\].*"
                                             r"forward\(X=numeric columns, categories="):
            L2RWClassifier(MLP, **FAST).fit(df, y, X_val=df.iloc[:10], y_val=y[:10])


class TestNumericalTrouble:
    def test_divergence_is_a_clear_error(self):
        X, y = make_blobs_data(200)
        net = L2RWClassifier(MLP, X[:20], y[:20], module__logits=True,
                             criterion=nn.CrossEntropyLoss, **dict(FAST, lr=1e6, max_epochs=20))
        with pytest.raises(FloatingPointError,
                           match=r"diverged.*epoch \d+, batch \d+; lower the learning rate"):
            net.fit(X[20:] * 100, y[20:])

    def test_weights_are_never_nan(self):
        u = torch.tensor([float("nan"), 1.0, float("inf"), -float("inf"), 3.0])
        w = normalize_weights(u)
        assert not torch.isnan(w).any()
        assert w.sum().item() == pytest.approx(1.0)
        assert w[2].item() == pytest.approx(1.0)  # +inf dominates
        big = torch.full((10,), torch.finfo(torch.float32).max)
        torch.testing.assert_close(normalize_weights(big), torch.full((10,), 0.1))

    def test_imbalance_upweights_the_minority_without_warning(self):
        # 95/5 imbalance with a balanced clean set: the weights pile onto the
        # minority rows on purpose; only a rising clean loss is worth a warning.
        rng = np.random.RandomState(0)
        X0, X1 = rng.normal(0, 1, (380, 10)), rng.normal(1.5, 1, (20, 10))
        X = np.vstack([X0, X1]).astype(np.float32)
        y = np.r_[np.zeros(380, int), np.ones(20, int)]
        clean = np.r_[0:10, 380:390]
        train = np.setdiff1d(np.arange(400), clean)
        net = L2RWClassifier(MLP, X[clean], y[clean], **dict(FAST, module__n_classes=2))
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            net.fit(X[train], y[train])
        minority = y[train] == 1
        w = net.sample_weights_[-1]
        assert w[minority].mean() > 3 * w[~minority].mean()
        assert min(net.history[:, "weight_ess"]) < 0.5


class InterruptAt(Callback):
    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if len(net.history) == self.epoch and len(net.history[-1, "batches"]) == self.batch:
            raise KeyboardInterrupt


class TestInterruptions:
    def test_keyboard_interrupt_keeps_completed_epochs(self):
        X, y = make_blobs_data(200)
        net = L2RWClassifier(MLP, X[:20], y[:20], callbacks=[InterruptAt(3, 2)],
                             **dict(FAST, max_epochs=10))
        net.fit(X[20:], y[20:])
        assert net.sample_weights_.shape == (2, 180)
        assert len(net.history) == 2
        assert net.predict(X).shape == (200,)

    def test_keyboard_interrupt_in_partial_fit_keeps_its_completed_epochs(self):
        # Not undone as a failed call is: skorch ends training on it.
        X, y = make_blobs_data(200)
        interrupt = InterruptAt(None, 2)
        net = L2RWClassifier(MLP, X[:20], y[:20], callbacks=[interrupt],
                             **dict(FAST, max_epochs=2)).fit(X[20:], y[20:])
        first = net.sample_weights_.copy()
        net.set_params(max_epochs=5)
        interrupt.epoch = 5  # the third epoch of the call
        net.partial_fit(X[20:], y[20:])
        assert len(net.history) == 4
        assert net.sample_weights_.shape == (4, 180)
        np.testing.assert_array_equal(net.sample_weights_[:2], first)

    def test_checkpoint_resume_repeats_the_uninterrupted_run(self, tmp_path):
        X, y = make_blobs_data(200)
        kwargs = dict(FAST, clean_batch_size=8, optimizer=torch.optim.SGD,
                      optimizer__momentum=0.9, module__n_hidden=16)
        full = L2RWClassifier(MLP, X[:30], y[:30], **dict(kwargs, max_epochs=4))
        full.fit(X[30:], y[30:])

        checkpoint = Checkpoint(monitor=None, dirname=str(tmp_path))
        first = L2RWClassifier(MLP, X[:30], y[:30], callbacks=[checkpoint],
                               **dict(kwargs, max_epochs=2))
        first.fit(X[30:], y[30:])
        resumed = L2RWClassifier(MLP, X[:30], y[:30], **dict(kwargs, max_epochs=2))
        resumed.initialize()
        resumed.load_params(checkpoint=checkpoint)
        resumed.partial_fit(X[30:], y[30:])
        np.testing.assert_array_equal(first.sample_weights_, full.sample_weights_[:2])
        # The checkpoint's weight record comes back with its history.
        assert resumed.sample_weights_.shape == full.sample_weights_.shape
        np.testing.assert_array_equal(resumed.sample_weights_[:2],
                                      full.sample_weights_[:2])
        np.testing.assert_allclose(resumed.sample_weights_[2:], full.sample_weights_[2:],
                                   rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(resumed.predict_proba(X), full.predict_proba(X),
                                   rtol=1e-4, atol=1e-6)


FLAKY = {"calls": None}


class Flaky(MLP):
    """An MLP whose training forward raises once ``FLAKY["calls"]`` more calls are
    done (never while it is None)."""

    def forward(self, X):
        if self.training and FLAKY["calls"] is not None:
            FLAKY["calls"] -= 1
            if FLAKY["calls"] < 0:
                raise RuntimeError("the module failed mid-epoch")
        return super().forward(X)


#: Training batches done, counted outside the estimator: a failed call must have
#: stepped (changed the module) before it failed, or undoing it proves nothing.
BATCHES_DONE = [0]


class RaiseAt(Callback):
    """Raises at training batch ``at = (epoch, batch)`` (history numbering), when set."""

    def __init__(self):
        self.at = None

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        BATCHES_DONE[0] += training
        if (training and self.at is not None
                and (len(net.history), len(net.history[-1, "batches"])) == self.at):
            raise ValueError("a callback failed mid-training")


XA, YA = make_blobs_data(300)
XA_CLEAN, YA_CLEAN, XA_TRAIN, YA_TRAIN = XA[:30], YA[:30], XA[30:], YA[30:]


@pytest.fixture(scope="module")
def trained():
    """A fitted net with optimizer state (momentum), a learning-rate schedule and a
    callback that can be made to raise."""
    raiser = RaiseAt()
    net = L2RWClassifier(
        Flaky, XA_CLEAN, YA_CLEAN, module__logits=True, criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.SGD, optimizer__momentum=0.9, lr=0.01, max_epochs=3,
        batch_size=32, verbose=0, random_state=0,
        callbacks=[raiser, ("halve_lr", LRScheduler(policy=torch.optim.lr_scheduler.StepLR,
                                                     step_size=1, gamma=0.5))])
    net.fit(XA_TRAIN, YA_TRAIN)
    return net, raiser


@pytest.fixture(scope="module")
def regressor():
    y = XA_TRAIN[:, :2] @ np.array([1.0, -2.0], dtype=np.float32)
    net = L2RWRegressor(MLP, XA_CLEAN, XA_CLEAN[:, :2] @ np.array([1.0, -2.0]),
                        module__n_classes=1, module__logits=True,
                        callbacks=[RaiseAt()], **dict(FAST, lr=0.01)).fit(XA_TRAIN, y)
    return net, XA_TRAIN, y


def call(net, method, X, y, **kwargs):
    return getattr(net, method)(X, y, **kwargs)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
class TestAllOrNothing:
    """A call that fails in training leaves the fitted estimator exactly as it was."""

    def test_divergence(self, trained, regressor, method):
        # A fitted classifier gives rows scaled by 1e30 weight 0 (their gradients
        # disagree with the clean set's), so its partial_fit does not diverge; a
        # re-initialized one does, and a regressor's squared errors overflow.
        net, X, y = (trained[0], XA_TRAIN, YA_TRAIN) if method == "fit" else regressor
        before = fitted_state(net, XA)
        # FiniteLoss raises after the batch's step: the module has changed.
        with pytest.raises(FloatingPointError,
                           match=r"training diverged: the loss became .* in epoch \d+, batch"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # ghost vs jvp on 1e30s
                call(net, method, X * 1e30, y)
        assert_unchanged(net, before, XA)

    def test_callback_raises_mid_training(self, trained, method):
        net, raiser = trained
        epochs = 0 if method == "fit" else len(net.history)
        raiser.at = (epochs + 2, 3)  # the second epoch of this call
        try:
            before, done = fitted_state(net, XA), BATCHES_DONE[0]
            with pytest.raises(ValueError, match="a callback failed mid-training"):
                call(net, method, XA_TRAIN, YA_TRAIN)
            assert BATCHES_DONE[0] - done == len(XA_TRAIN) // 32 + 1 + 3
            assert_unchanged(net, before, XA)
        finally:
            raiser.at = None

    def test_module_raises_mid_epoch(self, trained, method):
        net, _ = trained
        before, done = fitted_state(net, XA), BATCHES_DONE[0]
        FLAKY["calls"] = 4  # a few steps into the first epoch
        try:
            with pytest.raises(RuntimeError, match="the module failed mid-epoch"):
                call(net, method, XA_TRAIN, YA_TRAIN)
        finally:
            FLAKY["calls"] = None
        assert 0 < BATCHES_DONE[0] - done < len(XA_TRAIN) // 32 + 1
        assert_unchanged(net, before, XA)

    def test_bad_meta_gradient_for_the_module(self, method):
        # Refused where training starts (the choice of computation), after fit has
        # re-initialized the module.
        net = L2RWClassifier(BatchNormMLP, XA_CLEAN, YA_CLEAN,
                             criterion=nn.CrossEntropyLoss, **FAST).fit(XA_TRAIN, YA_TRAIN)
        before = fitted_state(net, XA)
        net.meta_gradient = "ghost"
        with pytest.raises(ValueError, match="BatchNorm1d"):
            call(net, method, XA_TRAIN, YA_TRAIN)
        net.meta_gradient = "auto"
        assert_unchanged(net, before, XA)

    def test_next_call_continues_from_before_the_failed_one(self, trained, method):
        net, raiser = trained
        net = copy.deepcopy(net)
        untouched = copy.deepcopy(net)
        raiser = next(cb for _, cb in net.callbacks_ if isinstance(cb, RaiseAt))
        raiser.at = ((0 if method == "fit" else len(net.history)) + 2, 3)
        with pytest.raises(ValueError, match="a callback failed mid-training"):
            call(net, method, XA_TRAIN, YA_TRAIN)
        raiser.at = None
        call(net, method, XA_TRAIN, YA_TRAIN)
        call(untouched, method, XA_TRAIN, YA_TRAIN)
        np.testing.assert_array_equal(net.sample_weights_, untouched.sample_weights_)
        np.testing.assert_array_equal(net.predict_proba(XA), untouched.predict_proba(XA))
        assert net.optimizer_.param_groups[0]["lr"] == untouched.optimizer_.param_groups[0]["lr"]


def test_predict_from_four_threads():
    X, y = make_blobs_data(400)
    net = L2RWClassifier(MLP, X[:20], y[:20], **FAST).fit(X[20:], y[20:])
    serial = [net.predict_proba(X[i::4]) for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            parallel = list(pool.map(lambda i: net.predict_proba(X[i::4]), range(4)))
            for a, b in zip(serial, parallel):
                np.testing.assert_array_equal(a, b)
    assert net.device == "auto"


class WidthFree(nn.Module):
    def __init__(self, n_classes=2):
        super().__init__()
        self.hidden = nn.LazyLinear(4)
        self.out = nn.Linear(4, n_classes)

    def forward(self, X):
        return torch.softmax(self.out(torch.tanh(self.hidden(X.flatten(1)))), -1)


DOCUMENTED = (ValueError, TypeError)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(n_rows=st.integers(1, 24), n_features=st.integers(1, 4),
       n_classes=st.integers(1, 4), n_clean=st.integers(0, 6),
       string_labels=st.booleans(), clean_batch_size=st.one_of(st.none(), st.integers(-1, 8)),
       meta_gradient=st.sampled_from(["auto", "ghost", "jvp", "reference"]),
       seed=st.integers(0, 1000))
def test_random_small_problems(n_rows, n_features, n_classes, n_clean, string_labels,
                               clean_batch_size, meta_gradient, seed):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_rows + n_clean, n_features)).astype(np.float32)
    labels = np.array(["a", "b", "c", "d"])[:n_classes] if string_labels \
        else np.arange(n_classes) * 3
    y = labels[rng.randint(n_classes, size=n_rows + n_clean)]
    present = np.unique(y[:n_rows])
    net = L2RWClassifier(WidthFree, module__n_classes=len(present), max_epochs=2,
                         batch_size=5, lr=0.1, verbose=0, random_state=seed,
                         clean_batch_size=clean_batch_size, meta_gradient=meta_gradient)
    clean = dict(X_val=X[n_rows:], y_val=y[n_rows:]) if n_clean else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            net.fit(X[:n_rows], y[:n_rows], **clean)
    except DOCUMENTED:
        return
    proba = net.predict_proba(X)
    assert np.isfinite(proba).all()
    assert not np.isnan(net.sample_weights_).any()
    assert set(net.predict(X)) <= set(present)


ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 300), st.floats(allow_nan=True),
    st.sampled_from(["auto", "cpu", "gpu", "", "yes"]), st.just({5: 1.0}),
    st.just([1, 2]))
PARAMETERS = ["batch_size", "max_epochs", "lr", "iterator_train__batch_size",
              "iterator_valid__batch_size", "warm_start", "verbose", "random_state",
              "device", "clean_batch_size", "meta_gradient", "train_on_clean",
              "optimizer__lr"]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(PARAMETERS), value=ANY_VALUE,
       method=st.sampled_from(["fit", "partial_fit"]),
       scale=st.sampled_from([1.0, 1.0, 1e30]), extra_axis=st.booleans())
def test_random_bad_calls_succeed_or_change_nothing(trained, name, value, method, scale,
                                                    extra_axis):
    """Any parameter value and some bad inputs: the call succeeds, or raises a
    documented error with a message and leaves the estimator exactly as it was."""
    net = copy.deepcopy(trained[0])
    net.set_params(max_epochs=2)
    # Recorded before the bad value is set: predicting uses batch sizes too.
    before = fitted_state(net, XA)
    missing = object()
    old = vars(net).get(name, missing)
    vars(net)[name] = value
    X = XA_TRAIN[:60] * np.float32(scale)
    if extra_axis:
        X = X[:, :, None]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call(net, method, X, YA_TRAIN[:60])
    except (ValueError, TypeError, FloatingPointError) as exc:
        assert str(exc)
        if old is missing:
            vars(net).pop(name)
        else:
            vars(net)[name] = old
        assert_unchanged(net, before, XA)


# ------------------------------------------------- other input forms, malformed
# An estimator fitted on a DataFrame of mixed dtypes (with a categorical column), on
# a scipy sparse matrix, or on a dict X; then any call with a malformed variant of
# the same form: a column or key missing, added, renamed or moved, a value of
# another dtype, width or length, NaN or infinity, the wrong container, no rows.

@pytest.fixture(scope="module")
def forms():
    """form -> (fitted net, probe rows, training rows, labels)."""
    from sk_l2rw.modules import MLP as TabularMLP

    rng = np.random.RandomState(0)
    X = rng.normal(size=(160, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 4] > 0.5)
    out = {}
    for form in ("frame", "sparse", "dict"):
        Xf = as_form(X, form)
        module = TwoInputs if form == "dict" else TabularMLP
        kw = {} if form == "dict" else dict(module__hidden_layer_sizes=(8,))
        net = L2RWClassifier(module, rows(Xf, slice(0, 30)), y[:30],
                             criterion=nn.CrossEntropyLoss, lr=0.05, max_epochs=2,
                             batch_size=16, verbose=0, random_state=0, **kw)
        net.fit(rows(Xf, slice(30, None)), y[30:])
        out[form] = net, rows(Xf, slice(0, 20)), rows(Xf, slice(30, 90)), y[30:90]
    return out


BAD_CELLS = st.sampled_from([np.nan, np.inf, -np.inf, 1e30, None, "x"])
DTYPES = st.sampled_from([np.float64, np.int64, bool, str, object, "Int64", "category"])


@st.composite
def malformed_frame(draw, X, y):
    X = X.copy()
    column = draw(st.sampled_from(list(X.columns)))
    row = draw(st.integers(0, len(X) - 1))
    op = draw(st.sampled_from(["drop", "add", "rename", "permute", "dtype", "cell",
                               "array", "rows"]))
    if op == "drop":
        X = X.drop(columns=column)
    elif op == "add":
        X["z"] = pd.Series(np.arange(len(X)) % 3, index=X.index).astype(draw(DTYPES))
    elif op == "rename":
        X = X.rename(columns={column: draw(st.sampled_from(["z", 0, column.upper()]))})
    elif op == "permute":
        X = X[draw(st.permutations(list(X.columns)))]
    elif op == "dtype":
        try:
            X[column] = X[column].astype(draw(DTYPES))
        except (TypeError, ValueError):  # not every column converts to every dtype
            pass
    elif op == "cell":
        value = draw(BAD_CELLS)
        if isinstance(X[column].dtype, pd.CategoricalDtype) and value is not None:
            X[column] = X[column].astype(object)
        elif isinstance(value, str) or X[column].dtype == bool:
            X[column] = X[column].astype(object)
        elif value is not None and X[column].dtype.kind in "iu":
            X[column] = X[column].astype(np.float64)  # pandas refuses inf in ints
        X.loc[X.index[row], column] = value
    elif op == "array":
        X = X.to_numpy()
    else:
        n = draw(st.sampled_from([0, 1]))
        X, y = X.iloc[:n], y[:n]
    return X, y


@st.composite
def malformed_sparse(draw, X, y):
    import scipy.sparse as sp

    op = draw(st.sampled_from(["width", "format", "dtype", "cell", "rows"]))
    if op == "width":
        delta = draw(st.sampled_from([-2, -1, 1, 2]))
        X = (X[:, :delta] if delta < 0
             else sp.hstack([X, sp.random(X.shape[0], delta, density=0.5,
                                          format="csr", random_state=0)], format="csr"))
    elif op == "format":
        X = draw(st.sampled_from([X.tocsc(), X.tocoo(), sp.csr_array(X), X.toarray(),
                                  X.todok(), X.tolil()]))
    elif op == "dtype":
        X = X.astype(draw(st.sampled_from([np.float64, np.int64, bool, np.int8])))
    elif op == "cell":
        X = X.tolil(copy=True)
        X[draw(st.integers(0, X.shape[0] - 1)), draw(st.integers(0, X.shape[1] - 1))] = \
            draw(st.sampled_from([np.nan, np.inf, 1e30]))
        X = X.tocsr()
    else:
        n = draw(st.sampled_from([0, 1]))
        X, y = X[:n], y[:n]
    return X, y


@st.composite
def malformed_dict(draw, X, y):
    X = dict(X)
    key = draw(st.sampled_from(sorted(X)))
    op = draw(st.sampled_from(["drop", "add", "rename", "width", "dtype", "length", "cell",
                               "array", "empty", "rows"]))
    if op == "drop":
        del X[key]
    elif op == "add":
        X["z"] = np.zeros((len(y), 2), np.float32)
    elif op == "rename":
        X[key + "_"] = X.pop(key)
    elif op == "width":
        X[key] = draw(st.sampled_from([X[key][:, :1], X[key][:, :, None],
                                       np.hstack([X[key], X[key]]), X[key][:, 0]]))
    elif op == "dtype":
        X[key] = X[key].astype(draw(st.sampled_from([np.float64, np.int64, bool, str,
                                                      object])))
    elif op == "length":
        X[key] = X[key][:draw(st.integers(0, len(y) - 1))]
    elif op == "cell":
        X[key] = X[key].copy()
        row = draw(st.integers(0, len(y) - 1))
        X[key][row, 0] = draw(st.sampled_from([np.nan, np.inf]))
    elif op == "array":
        X = np.hstack([X["num"], X["extra"]])
    elif op == "empty":
        X = {}
    else:
        n = draw(st.sampled_from([0, 1]))
        X, y = rows(X, slice(0, n)), y[:n]
    return X, y


MALFORMED = {"frame": malformed_frame, "sparse": malformed_sparse, "dict": malformed_dict}


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(form=st.sampled_from(sorted(MALFORMED)),
       method=st.sampled_from(["fit", "partial_fit", "predict_proba"]), data=st.data())
def test_malformed_inputs_of_every_form_succeed_or_change_nothing(forms, form, method,
                                                                  data):
    """The call succeeds, or raises ValueError/TypeError (FloatingPointError for a
    divergence) with a message and leaves the estimator exactly as it was."""
    base, probe, X, y = forms[form]
    X, y = data.draw(MALFORMED[form](X, y), label="malformed")
    net = copy.deepcopy(base)
    before = fitted_state(net, probe)
    try:
        call_quietly(net, method, X, y)
    except (ValueError, TypeError, FloatingPointError) as exc:
        assert str(exc)
        assert_unchanged(net, before, probe)
