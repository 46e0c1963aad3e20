"""Host synchronisation per training step: L2RW's loop costs what skorch's costs.

On a GPU every read of a device value by the host (``.item()``, a copy to the
host, an operation whose output size depends on the data) waits for the queued
work to finish. skorch's own loop does one per step (``loss.item()``, to record
the loss). These tests count, with a ``TorchDispatchMode`` and a
``TorchFunctionMode``, the operations that would wait on a GPU, and fail when an
L2RW fit does more per step than a plain ``NeuralNetClassifier`` fit. They run on
the CPU, where nothing waits, because the operations are the same on every device;
on a machine with CUDA they also run there.

What a count per step leaves per epoch is allowed (the clean loss, the epoch's
weights and their statistics reach the host once per epoch), and is bounded here
by a constant.
"""

import collections
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from skorch import NeuralNetClassifier
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from sk_l2rw import L2RWClassifier

BATCH = 16
STEPS = 4  # the short fit has STEPS steps, the long one 2 * STEPS

# aten operations whose result the host must wait for on a GPU, whatever their
# arguments: a scalar read, or an output whose size depends on the values.
WAITING = {"_local_scalar_dense", "item", "nonzero", "is_nonzero", "masked_select",
           "_unique", "_unique2", "unique_dim", "unique_consecutive", "equal"}
# Sparse operations that select entries with a mask (nonzero inside the kernel,
# where a dispatch mode does not see it).
SPARSE_WAITING = {"narrow_copy", "_coalesce", "coalesce", "index_select"}
# Tensor methods that copy a tensor to the host.
TO_HOST = {"cpu", "numpy", "tolist", "__array__"}


def _tensors(tree):
    return [t for t in torch.utils._pytree.tree_leaves(tree) if torch.is_tensor(t)]


class SyncCounter(TorchDispatchMode):
    """Count the aten operations that synchronise the host with a GPU."""

    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if self._waits(name, func, args, kwargs):
            self.counts[name] += 1
        return func(*args, **kwargs)

    @staticmethod
    def _waits(name, func, args, kwargs):
        if name in WAITING:
            return True
        if name == "repeat_interleave":  # the output's length, unless given
            return kwargs.get("output_size") is None and func._overloadname != "self_int"
        if name in ("index", "index_put", "index_put_"):  # a boolean mask
            return any(t.dtype == torch.bool for t in _tensors(args[1]))
        if name in SPARSE_WAITING:
            return any(t.is_sparse for t in _tensors(args))
        if name in ("_to_copy", "copy_"):  # device to host
            src = args[1] if name == "copy_" else args[0]
            dst = (args[0].device if name == "copy_" else kwargs.get("device"))
            return (src.device.type != "cpu" and dst is not None
                    and torch.device(dst).type == "cpu")
        return False


class HostCopies(TorchFunctionMode):
    """Count the tensor methods that copy to the host (on the CPU they copy nothing,
    so the dispatch mode does not see them)."""

    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in TO_HOST:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))


def counted(fit):
    """Run ``fit()``; return the numbers of synchronising operations and host copies."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with SyncCounter() as ops, HostCopies() as copies:
            fit()
    return sum(ops.counts.values()), sum(copies.counts.values())


class Net(nn.Module):
    def __init__(self, n_features=6, n_classes=3):
        super().__init__()
        self.hidden = nn.Linear(n_features, 16)
        self.out = nn.Linear(16, n_classes)

    def forward(self, X):
        return self.out(torch.relu(self.hidden(X)))


class DictNet(nn.Module):
    """forward(num, cat): skorch's dict X, with an embedding."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 2)
        self.net = Net(n_features=6)

    def forward(self, num, cat):
        return self.net(torch.cat([num, self.embed(cat)], dim=1))


def problem(n, form, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    y = rng.randint(3, size=n)
    if form == "sparse":
        X[X < 0.3] = 0
        return sp.csr_matrix(X), y
    if form == "dict":
        return {"num": X[:, :4], "cat": rng.randint(5, size=n)}, y
    return X, y


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
COMMON = dict(criterion=nn.CrossEntropyLoss, max_epochs=1, batch_size=BATCH,
              train_split=None, verbose=0)


def l2rw(form, device, **params):
    module = DictNet if form == "dict" else Net
    Xc, yc = problem(24, form, seed=1)
    return lambda: L2RWClassifier(module, Xc, yc, random_state=0, device=device,
                                  **COMMON, **params)


def plain(form, device):
    module = DictNet if form == "dict" else Net
    return lambda: NeuralNetClassifier(module, device=device, **COMMON)


def per_step_and_epoch(make, form):
    """Synchronisations per step (the slope from STEPS to 2 * STEPS steps) and what
    one epoch adds beyond them (the intercept), as (ops, copies) pairs."""
    short, long_ = (counted(lambda: make().fit(*problem(k * BATCH, form)))
                    for k in (STEPS, 2 * STEPS))
    step = tuple((b - a) / STEPS for a, b in zip(short, long_))
    epoch = tuple(a - s * STEPS for a, s in zip(short, step))
    return step, epoch


CASES = {
    "auto": {}, "ghost": {"meta_gradient": "ghost"}, "jvp": {"meta_gradient": "jvp"},
    "reference": {"meta_gradient": "reference"},
    "clean batches": {"clean_batch_size": 8},
    "train_on_clean": {"train_on_clean": True, "clean_batch_size": 8},
    "clean_class_weight": {"clean_class_weight": "balanced", "clean_batch_size": 8},
    "train_on_clean, clean_class_weight": {"train_on_clean": True,
                                           "clean_class_weight": "balanced"},
}


@pytest.fixture(scope="module", params=DEVICES)
def plain_counts(request):
    device = request.param
    return device, {form: per_step_and_epoch(plain(form, device), form)
                    for form in ("dense", "dict", "sparse")}


def test_plain_skorch_records_its_loss_once_per_step(plain_counts):
    """The counter sees skorch's own ``loss.item()``, and nothing else per step."""
    _, counts = plain_counts
    for form in ("dense", "dict"):
        assert counts[form][0] == (1, 0)


@pytest.mark.parametrize("form", ["dense", "dict", "sparse"])
@pytest.mark.parametrize("case", list(CASES))
def test_l2rw_adds_no_synchronisation_per_step(plain_counts, form, case):
    device, counts = plain_counts
    (ops, copies), (epoch_ops, epoch_copies) = per_step_and_epoch(
        l2rw(form, device, **CASES[case]), form)
    plain_ops, plain_copies = counts["dense" if form == "sparse" else form][0]
    # skorch's sparse route densifies batches on the host; L2RW's is compared with
    # the dense one, which is skorch's best.
    assert ops <= plain_ops, f"{ops} synchronising operations per step"
    assert copies <= plain_copies, f"{copies} copies to the host per step"
    # Per epoch: the clean loss, the weights with their statistics, and (once per
    # fit) "auto"'s check of ghost against jvp.
    assert epoch_ops <= 4 and epoch_copies <= 4, (epoch_ops, epoch_copies)


@pytest.mark.parametrize("meta_gradient", ["ghost", "jvp", "reference"])
def test_more_epochs_add_a_constant(meta_gradient):
    """Every epoch adds the same few synchronisations beyond its steps."""
    make = l2rw("dense", "cpu", meta_gradient=meta_gradient)
    counts = [counted(lambda: make().set_params(max_epochs=epochs)
                      .fit(*problem(STEPS * BATCH, "dense")))
              for epochs in (1, 2, 3)]
    first, second = (np.subtract(b, a) for a, b in zip(counts, counts[1:]))
    assert tuple(first) == tuple(second)
    assert first[0] <= STEPS + 2 and first[1] <= 2


class ReadsItsWeights(L2RWClassifier):
    """An L2RW loop that reads a weight on the host at every step."""

    def train_step_single(self, batch, **fit_params):
        step = super().train_step_single(batch, **fit_params)
        self.first_weight_ = self._run_.weights[0].item()
        return step


def test_the_count_catches_a_step_that_waits():
    """The check above can fail: one extra ``.item()`` per step is seen."""
    Xc, yc = problem(24, "dense", seed=1)

    def make():
        return ReadsItsWeights(Net, Xc, yc, random_state=0, **COMMON)

    (ops, _), _ = per_step_and_epoch(make, "dense")
    (plain_ops, _), _ = per_step_and_epoch(plain("dense", "cpu"), "dense")
    assert ops == plain_ops + 1
