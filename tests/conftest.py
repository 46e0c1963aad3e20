"""Shared modules and data for the tests: small, generated, no downloads."""

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F


class MLP(nn.Module):
    """Two-layer perceptron; softmax output (skorch's NLLLoss convention) or logits."""

    def __init__(self, n_features=10, n_hidden=32, n_classes=3, logits=False):
        super().__init__()
        self.hidden = nn.Linear(n_features, n_hidden)
        self.out = nn.Linear(n_hidden, n_classes)
        self.logits = logits

    def forward(self, X):
        z = self.out(F.relu(self.hidden(X)))
        return z if self.logits else torch.softmax(z, dim=-1)


class BatchNormMLP(nn.Module):
    def __init__(self, n_features=10, n_hidden=16, n_classes=3, p=0.3):
        super().__init__()
        self.hidden = nn.Linear(n_features, n_hidden)
        self.bn = nn.BatchNorm1d(n_hidden)
        self.drop = nn.Dropout(p)
        self.out = nn.Linear(n_hidden, n_classes)

    def forward(self, X):
        return self.out(self.drop(F.relu(self.bn(self.hidden(X)))))


class LeNet(nn.Module):
    """LeNet-style CNN on 1x28x28 inputs (logits)."""

    def __init__(self, n_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5, padding=1)
        self.fc1 = nn.Linear(16 * 5 * 5, 64)
        self.fc2 = nn.Linear(64, n_classes)

    def forward(self, X):
        X = F.max_pool2d(F.relu(self.conv1(X)), 2)
        X = F.max_pool2d(F.relu(self.conv2(X)), 2)
        return self.fc2(F.relu(self.fc1(X.flatten(1))))


class Conv1dNet(nn.Module):
    def __init__(self, n_classes=3):
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3, stride=2, padding=1, dilation=2, groups=2)
        self.out = nn.Linear(4 * 4, n_classes)

    def forward(self, X):
        return self.out(F.relu(self.conv(X)).flatten(1))


class TabularEmbeddingNet(nn.Module):
    """Two categorical columns (codes in the first two columns) + numeric columns."""

    def __init__(self, n_numeric=5, n_classes=3):
        super().__init__()
        self.emb_a = nn.Embedding(10, 4, padding_idx=0)
        self.emb_b = nn.Embedding(7, 3)
        self.hidden = nn.Linear(4 + 3 + n_numeric, 16)
        self.out = nn.Linear(16, n_classes)

    def forward(self, X):
        codes = X[:, :2].long()
        h = torch.cat([self.emb_a(codes[:, 0]), self.emb_b(codes[:, 1]), X[:, 2:]], 1)
        return self.out(torch.tanh(self.hidden(h)))


class TiedFrozenNet(nn.Module):
    """A layer applied twice, an output layer tied to an embedding, a frozen layer."""

    def __init__(self, n_features=6, n_classes=4, width=8):
        super().__init__()
        self.frozen = nn.Linear(n_features, width)
        self.frozen.weight.requires_grad_(False)  # bias stays trainable
        self.shared = nn.Linear(width, width)
        self.emb = nn.Embedding(n_classes, width)
        self.out = nn.Linear(width, n_classes, bias=False)
        self.out.weight = self.emb.weight  # tied

    def forward(self, X):
        h = torch.tanh(self.shared(torch.tanh(self.shared(self.frozen(X)))))
        # Row-wise use of the tied table (rows stay independent of each other).
        h = h + 0.1 * self.emb(torch.zeros(len(X), dtype=torch.long, device=X.device))
        return self.out(h)


def make_blobs_data(n=200, n_features=10, n_classes=3, seed=0, dtype=np.float32):
    rng = np.random.RandomState(seed)
    centers = rng.normal(0, 2, size=(n_classes, n_features))
    y = rng.randint(n_classes, size=n)
    X = centers[y] + rng.normal(size=(n, n_features))
    return X.astype(dtype), y


def tabular_data(n=64, n_numeric=5, n_classes=3, seed=0, dtype=np.float32):
    rng = np.random.RandomState(seed)
    X = np.column_stack([rng.randint(0, 10, n), rng.randint(0, 7, n),
                         rng.normal(size=(n, n_numeric))]).astype(dtype)
    y = rng.randint(n_classes, size=n)
    return X, y


@pytest.fixture
def torch_seed():
    torch.manual_seed(0)
    yield


def refuse_downloads(monkeypatch, cache, datasets):
    """Point the data cache at ``cache`` (empty) and make every download of
    ``datasets`` (the module ``benchmarks.datasets``) fail the test."""
    monkeypatch.setenv("SK_L2RW_DATA", str(cache))

    def refuse(*args, **kwargs):
        raise AssertionError("this run must not download anything")

    monkeypatch.setattr(datasets, "_download", refuse)
    monkeypatch.setattr(datasets, "artifact_path", refuse)


@pytest.fixture
def one_thread():
    """Run on one torch thread and restore the count afterwards.

    Tiny ops gain nothing from threads, and on a busy machine intra-op threads
    waiting for each other make a smoke test needlessly slow; scripts that set
    their own count are undone too.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fresh_dynamo():
    """torch.compile's caches emptied: a process builds at most
    ``torch._dynamo.config.recompile_limit`` graphs of one function (the compiled
    step), then runs it uncompiled, so tests that count graphs start afresh."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def fitted_state(net, X):
    """What a failed ``fit``/``partial_fit`` must leave exactly as it was: outputs on
    ``X``, parameters and buffers, optimizer state, history, weights, the attributes
    (by identity) and the callbacks' attributes and scheduler states."""
    predict = getattr(net, "predict_proba", None) if hasattr(net, "classes_") else None
    outputs = (predict or net.predict)(X)
    callbacks = [(cb, dict(vars(cb)), {key: copy.deepcopy(value.state_dict())
                                      for key, value in vars(cb).items()
                                      if hasattr(value, "load_state_dict")
                                      and not isinstance(value, type)})
                 for _, cb in net.callbacks_]
    return dict(
        outputs=outputs,
        module={k: v.clone() for k, v in net.module_.state_dict().items()},
        modes=[m.training for m in net.module_.modules()],
        optimizer=copy.deepcopy(net.optimizer_.state_dict()),
        history=copy.deepcopy(list(net.history)),
        weights=net.sample_weights_.copy(),
        attributes=dict(vars(net)),
        callbacks=callbacks,
    )


def _assert_same(a, b, where):
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_unchanged(net, before, X):
    """Raise unless ``net`` is exactly as :func:`fitted_state` recorded it."""
    after = fitted_state(net, X)
    np.testing.assert_array_equal(after["outputs"], before["outputs"])
    _assert_same(after["module"], before["module"], "module_")
    assert after["modes"] == before["modes"]
    _assert_same(after["optimizer"], before["optimizer"], "optimizer_")
    _assert_same(after["history"], before["history"], "history")
    np.testing.assert_array_equal(after["weights"], before["weights"])
    assert after["attributes"].keys() == before["attributes"].keys()
    for key, value in before["attributes"].items():
        assert after["attributes"][key] is value, key
    for (cb, attributes, states), (cb_after, attributes_after, states_after) in zip(
            before["callbacks"], after["callbacks"]):
        assert cb is cb_after
        assert attributes_after.keys() == attributes.keys(), type(cb).__name__
        for key, value in attributes.items():
            assert attributes_after[key] is value, f"{type(cb).__name__}.{key}"
        _assert_same(states_after, states, type(cb).__name__)
