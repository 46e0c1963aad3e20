"""The training step's mathematics: every computation against the paper's."""

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from conftest import (BatchNormMLP, Conv1dNet, LeNet, MLP, TabularEmbeddingNet,
                      TiedFrozenNet, make_blobs_data, tabular_data)
from sk_l2rw.ghost import ghost_step, unsupported_layers
from sk_l2rw.meta_gradient import (jvp_meta_gradients, jvp_step, reference_step,
                                   trainable_parameters)
from sk_l2rw.dispatch import choose_meta_gradient


def ce(out, y):
    return F.cross_entropy(out, y, reduction="none")


def _batch(X, y, n, m):
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    return X[:n], y[:n], X[n:n + m], y[n:n + m]


class InPlaceOnViews(nn.Module):
    """Linear over a sequence whose output is then changed in place, in part and
    whole: the recorded output must still be the one the layer produced."""

    def __init__(self):
        super().__init__()
        self.seq, self.head = nn.Linear(5, 8), nn.Linear(8, 3)

    def forward(self, X):
        h = self.seq(X.reshape(len(X), 2, 5))
        h[:, :, :4].mul_(2.0)
        F.relu(h, inplace=True)
        return self.head(h.mean(1))


def partial_parameters_net():
    """Linear layers with only a weight, only a bias or both trainable, some narrow
    (ghost takes the direct form) and some wide (the Gram form at these batches)."""
    def frozen(layer, name):
        getattr(layer, name).requires_grad_(False)
        return layer

    return nn.Sequential(
        nn.Linear(10, 64, bias=False), nn.ReLU(),            # direct, weight only
        frozen(nn.Linear(64, 64), "weight"), nn.ReLU(),      # Gram, bias only
        nn.Linear(64, 64, bias=False), nn.Tanh(),            # Gram, weight only
        nn.Linear(64, 64), nn.ReLU(),                        # Gram, both
        frozen(nn.Linear(64, 4), "bias"), nn.ReLU(),         # direct, weight only
        frozen(nn.Linear(4, 4), "weight"), nn.ReLU(),        # direct, bias only
        nn.Linear(4, 3))                                     # direct, both


def _case(name, dtype):
    torch.manual_seed(0)
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    if name == "mlp":
        module = MLP(logits=True)
        X, y = make_blobs_data(48, dtype=np_dtype)
        batch = _batch(X, y, 32, 16)
    elif name == "batchnorm_dropout":
        # Dropout present but off (p=0): the computations draw their masks in
        # different orders, so live dropout would differ by chance alone.
        module = BatchNormMLP(p=0.0)
        X, y = make_blobs_data(48, dtype=np_dtype)
        batch = _batch(X, y, 32, 16)
    elif name == "lenet":
        module = LeNet()
        X = np.random.RandomState(0).rand(24, 1, 28, 28).astype(np_dtype)
        y = np.random.RandomState(1).randint(10, size=24)
        batch = _batch(X, y, 16, 8)
    elif name == "conv1d":
        module = Conv1dNet()
        X = np.random.RandomState(0).normal(size=(24, 2, 10)).astype(np_dtype)
        y = np.random.RandomState(1).randint(3, size=24)
        batch = _batch(X, y, 16, 8)
    elif name == "embedding":
        module = TabularEmbeddingNet()
        X, y = tabular_data(48, dtype=np_dtype)
        batch = _batch(X, y, 32, 16)
    elif name == "inplace_relu":
        # in-place activations change layer outputs after they are recorded
        module = nn.Sequential(nn.Linear(10, 16), nn.ReLU(inplace=True),
                               nn.Linear(16, 16), nn.ReLU(inplace=True), nn.Linear(16, 3))
        X, y = make_blobs_data(48, dtype=np_dtype)
        batch = _batch(X, y, 32, 16)
    elif name == "inplace_views":
        module = InPlaceOnViews()
        X, y = make_blobs_data(48, dtype=np_dtype)
        batch = _batch(X, y, 32, 16)
    elif name == "partial_parameters":
        module = partial_parameters_net()
        X, y = make_blobs_data(48, dtype=np_dtype)
        batch = _batch(X, y, 32, 16)
    elif name == "tied_frozen":
        module = TiedFrozenNet()
        X, y = make_blobs_data(40, n_features=6, n_classes=4, dtype=np_dtype)
        batch = _batch(X, y, 24, 16)
    return module.to(dtype), batch


def _run(step, module, batch, lr=0.1, **kwargs):
    module = copy.deepcopy(module)
    module.train()
    for p in module.parameters():
        p.grad = None
    result = step(module, ce, *batch, lr=lr, **kwargs)
    _, params = trainable_parameters(module)
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
    return result, grads, dict(module.named_buffers())


TOLERANCE = {torch.float32: dict(rtol=1e-4, atol=1e-7),
             torch.float64: dict(rtol=1e-10, atol=1e-13)}
CASES = ["mlp", "batchnorm_dropout", "lenet", "conv1d", "embedding", "tied_frozen",
         "partial_parameters", "inplace_relu", "inplace_views"]


class TestAgainstReference:
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    @pytest.mark.parametrize("case", CASES)
    def test_fast_computations_equal_reference(self, case, dtype):
        module, batch = _case(case, dtype)
        ref, ref_grads, ref_buffers = _run(reference_step, module, batch)
        steps = {"jvp": jvp_step}
        if not unsupported_layers(module):
            steps["ghost"] = ghost_step
        auto = choose_meta_gradient(module, "auto")
        assert auto == ("jvp" if case == "batchnorm_dropout" else "ghost")
        for name, step in steps.items():
            got, grads, buffers = _run(step, module, batch)
            torch.testing.assert_close(got.meta_gradients, ref.meta_gradients,
                                       **TOLERANCE[dtype], msg=name)
            torch.testing.assert_close(got.weights, ref.weights, **TOLERANCE[dtype])
            torch.testing.assert_close(got.loss, ref.loss, **TOLERANCE[dtype])
            for g, r in zip(grads, ref_grads):
                torch.testing.assert_close(g, r, **TOLERANCE[dtype], msg=name)
            for key in ref_buffers:
                torch.testing.assert_close(buffers[key], ref_buffers[key])
        assert (ref.weights > 0).any(), "a degenerate case would prove nothing"

    @pytest.mark.parametrize("step", [ghost_step, jvp_step])
    def test_no_tensor_of_batch_times_parameters(self, step):
        # 256 rows x 263k parameters of per-example gradients would be 269 MB.
        module = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 3))
        n_params = sum(p.numel() for p in module.parameters())
        X, y = torch.randn(256 + 32, 512), torch.randint(3, (256 + 32,))
        with torch.profiler.profile(profile_memory=True) as prof:
            step(module, ce, X[:256], y[:256], X[256:], y[256:])
        biggest = max(e.cpu_memory_usage for e in prof.events())
        assert 0 < biggest < 256 * n_params * 4 / 50


def _clean_options(batch, dtype):
    m = len(batch[3])
    v = torch.as_tensor(np.random.RandomState(3).uniform(0.2, 2.0, size=m), dtype=dtype)
    v[0] = 0.0  # a class weight of 0 is allowed: that row counts for nothing
    return {"clean weights": dict(clean_weights=v / m),
            "clean share": dict(clean_share=0.3),
            "both": dict(clean_weights=v / m, clean_share=0.3)}


class TestCleanWeightsAndShare:
    """``clean_weights`` (the class-weighted clean loss) and ``clean_share``
    (training on the clean batch too) in every computation."""

    @pytest.mark.parametrize("case", CASES)
    def test_fast_computations_equal_reference(self, case):
        dtype = torch.float64
        module, batch = _case(case, dtype)
        steps = {"jvp": jvp_step}
        if not unsupported_layers(module):
            steps["ghost"] = ghost_step
        for label, options in _clean_options(batch, dtype).items():
            ref, ref_grads, ref_buffers = _run(reference_step, module, batch, **options)
            for name, step in steps.items():
                got, grads, buffers = _run(step, module, batch, **options)
                msg = f"{name}, {label}"
                torch.testing.assert_close(got.meta_gradients, ref.meta_gradients,
                                           **TOLERANCE[dtype], msg=msg)
                torch.testing.assert_close(got.loss, ref.loss, **TOLERANCE[dtype])
                for g, r in zip(grads, ref_grads):
                    torch.testing.assert_close(g, r, **TOLERANCE[dtype], msg=msg)
                for key in ref_buffers:
                    torch.testing.assert_close(buffers[key], ref_buffers[key])

    def test_weighted_clean_loss_is_a_clean_set_of_repeated_rows(self):
        # Weights 2, 1, 0, ... on the clean rows equal a clean batch that holds the
        # first row twice, the second once and the third not at all.
        module, (X, y, Xc, yc) = _case("mlp", torch.float64)
        m = len(yc)
        counts = torch.as_tensor(np.random.RandomState(0).randint(0, 3, size=m),
                                 dtype=torch.float64)
        counts[0] = 2
        weighted, _, _ = _run(reference_step, module, (X, y, Xc, yc),
                              clean_weights=counts / m)
        rows = torch.repeat_interleave(torch.arange(m), counts.long())
        repeated, _, _ = _run(reference_step, module, (X, y, Xc[rows], yc[rows]))
        torch.testing.assert_close(weighted.weights, repeated.weights)
        # the look-ahead meta-gradient scales with the clean loss's total weight
        torch.testing.assert_close(weighted.meta_gradients * m / len(rows),
                                   repeated.meta_gradients)

    @pytest.mark.parametrize("step", [reference_step, jvp_step, ghost_step])
    def test_clean_share_keeps_the_weights_and_adds_the_clean_gradient(self, step):
        module, (X, y, Xc, yc) = _case("mlp", torch.float64)
        v = torch.linspace(0.5, 1.5, len(yc), dtype=torch.float64)
        plain, plain_grads, _ = _run(step, module, (X, y, Xc, yc), clean_weights=v)
        mixed, mixed_grads, _ = _run(step, module, (X, y, Xc, yc), clean_weights=v,
                                     clean_share=0.25)
        torch.testing.assert_close(mixed.weights, plain.weights)
        # the difference is the gradient of 0.25 * sum_j (v_j / sum v) f_j, by autograd
        probe = copy.deepcopy(module)
        losses = ce(probe(Xc), yc)
        extra = torch.autograd.grad(0.25 * (v / v.sum() * losses).sum(),
                                    list(probe.parameters()))
        for p_, m_, e in zip(plain_grads, mixed_grads, extra):
            torch.testing.assert_close(m_ - p_, e)
        torch.testing.assert_close(mixed.loss - plain.loss,
                                   (0.25 * v / v.sum() * losses).sum().detach())


class TestFiniteDifferences:
    def test_reference_matches_central_differences(self):
        torch.manual_seed(0)
        module = MLP(n_features=5, n_hidden=7, n_classes=3, logits=True).double()
        X, y = make_blobs_data(8 + 6, n_features=5, dtype=np.float64)
        X_t, y_t, X_c, y_c = _batch(X, y, 8, 6)
        lr, h = 0.5, 1e-5
        names, params = trainable_parameters(module)
        grads_f = [torch.autograd.grad(ce(module(X_t[i:i + 1]), y_t[i:i + 1]).sum(),
                                       params) for i in range(8)]

        def clean_loss_at(eps):
            state = {n: p.detach() - lr * sum(float(e) * g[k] for e, g in zip(eps, grads_f))
                     for k, (n, p) in enumerate(zip(names, params))}
            out = torch.func.functional_call(module, state, (X_c,))
            return ce(out, y_c).mean().item()

        numeric = []
        for i in range(8):
            e = np.zeros(8)
            e[i] = h
            numeric.append(-(clean_loss_at(e) - clean_loss_at(-e)) / (2 * h))
        numeric = torch.tensor(numeric, dtype=torch.float64)
        result = reference_step(copy.deepcopy(module), ce, X_t, y_t, X_c, y_c, lr=lr)
        rel = (result.meta_gradients - numeric).abs().max() / numeric.abs().max()
        assert rel < 1e-3
        assert (numeric > 0).any() and (numeric < 0).any()


class TestAllNegativeBatch:
    """Training rows pull against the clean rows: no weight, no movement."""

    @staticmethod
    def _setup():
        module = nn.Linear(3, 2)
        nn.init.zeros_(module.weight)
        nn.init.zeros_(module.bias)
        X = torch.randn(6, 3)
        # Same inputs, opposite labels: every row's gradient opposes the clean one.
        return module, X, torch.zeros(6, dtype=torch.long), X, torch.ones(6, dtype=torch.long)

    @pytest.mark.parametrize("step", [reference_step, jvp_step, ghost_step])
    def test_zero_weights_and_parameters_stay(self, step):
        module, *batch = self._setup()
        before = [p.detach().clone() for p in module.parameters()]
        optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
        optimizer.zero_grad()
        result = step(module, ce, *batch, lr=0.1)
        assert (result.meta_gradients < 0).all()
        assert torch.equal(result.weights, torch.zeros(6))
        assert not torch.isnan(result.loss)
        optimizer.step()
        for p, b in zip(module.parameters(), before):
            assert torch.equal(p.detach(), b)


class TestBuffers:
    @pytest.mark.parametrize("step", [reference_step, jvp_step])
    def test_batchnorm_statistics_move_once(self, step):
        torch.manual_seed(0)
        module = BatchNormMLP(p=0.0)
        X, y = make_blobs_data(48)
        batch = _batch(X, y, 32, 16)
        plain = copy.deepcopy(module).train()
        plain(batch[0])
        l2rw = copy.deepcopy(module).train()
        step(l2rw, ce, *batch, lr=0.1)
        for (name, b_plain), b_l2rw in zip(plain.named_buffers(), l2rw.buffers()):
            assert torch.equal(b_plain, b_l2rw), name

    def test_jvp_meta_gradients_leave_everything_alone(self):
        torch.manual_seed(0)
        module = BatchNormMLP(p=0.0).train()
        X, y = make_blobs_data(48)
        before = copy.deepcopy(module.state_dict())
        jvp_meta_gradients(module, ce, *_batch(X, y, 32, 16))
        for key, value in module.state_dict().items():
            assert torch.equal(value, before[key]), key
        assert all(p.grad is None for p in module.parameters())
