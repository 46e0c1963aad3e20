"""Shared modules and data for the tests: small, generated, no downloads."""

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
