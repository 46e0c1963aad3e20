"""sk_l2rw.net: the skorch wiring's own costs and bookkeeping."""

import pickle
import warnings
import weakref

import numpy as np
import pytest
import torch
from skorch.callbacks import LRScheduler

from benchmarks.common.speed_run import CountOps
from conftest import make_blobs_data
from sk_l2rw import L2RWClassifier, ghost, net as net_module
from sk_l2rw.exceptions import FallbackWarning
from sk_l2rw.modules import MLP
from sk_l2rw.weights import effective_sample_share


@pytest.fixture(scope="module")
def fitted():
    # Unshuffled: the batches are rows 0-31, 32-63, ..., 192-199 of every epoch.
    X, y = make_blobs_data(230, seed=3)
    net = L2RWClassifier(MLP, X[:30], y[:30], module__hidden_layer_sizes=(16,),
                         max_epochs=3, batch_size=32, lr=0.1, random_state=0, verbose=0,
                         iterator_train__shuffle=False)
    return net.fit(X[30:], y[30:])


class TestWeightBookkeeping:
    def test_recording_a_step_is_cheap_and_keeps_nothing_of_it(self, monkeypatch):
        # A step's record is two writes (and the slice they write to); holding the
        # steps' tensors until the epoch's end instead made a long epoch's peak RSS
        # grow 3x (1M rows: 131 -> 180-600 MiB, allocator fragmentation).
        counts, refs, alive = [], [], []
        record = net_module._Run.record

        def counted(self, index, weights):
            with CountOps() as mode:
                record(self, index, weights)
            counts.append(mode.count)
            refs.append(weakref.ref(weights))
            if len(refs) > 2:  # two steps on, nothing but the record could hold it
                alive.append(refs[-3]() is not None)

        monkeypatch.setattr(net_module._Run, "record", counted)
        X, y = make_blobs_data(100)
        L2RWClassifier(MLP, X[:20], y[:20], max_epochs=2, batch_size=16,
                       verbose=0).fit(X[20:], y[20:])
        assert len(counts) == 2 * 5 and max(counts) <= 3
        assert len(alive) == 2 * 5 - 2 and not any(alive)

    def test_epoch_statistics_are_those_of_each_batch(self, fitted):
        weights = fitted.sample_weights_
        assert weights.shape == (3, 200) and not np.isnan(weights).any()
        for epoch, row in enumerate(fitted.history):
            assert row["weight_zero_frac"] == pytest.approx((weights[epoch] == 0).mean())
            shares = [effective_sample_share(torch.as_tensor(weights[epoch, i:i + 32]))
                      for i in range(0, 200, 32)]
            assert len(shares) == 7
            assert row["weight_ess"] == pytest.approx(float(sum(shares)) / 7, rel=1e-5)


def _compile_fit(strict=True, **params):
    """A small fit with dropout and a last batch of another size (2 graph shapes);
    ``strict``: a FallbackWarning is an error."""
    X, y = make_blobs_data(300, seed=5)
    net = L2RWClassifier(MLP, X[:40], y[:40], module__hidden_layer_sizes=(16,),
                         module__dropout=0.2, max_epochs=3, lr=0.1, random_state=0,
                         verbose=0, **{"batch_size": 64, **params})
    with warnings.catch_warnings():
        if strict:
            warnings.simplefilter("error", FallbackWarning)
        return net.fit(X[40:], y[40:])


def _same_fit(a, b):
    np.testing.assert_allclose(a.sample_weights_, b.sample_weights_, rtol=1e-4, atol=1e-6)
    for p, q in zip(a.module_.parameters(), b.module_.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def eager_fit():
    return _compile_fit()


@pytest.mark.usefixtures("fresh_dynamo")
class TestCompile:
    """compile=True compiles the step; results stay those of the eager step."""

    def test_compiled_fit_is_the_eager_fit(self, eager_fit):
        # aot_eager: the traced graph (hooks, deltas, torch.func.vjp, guards) run by
        # eager kernels, without inductor's C++ build (30-40 s here); inductor's
        # numbers are checked at every fit's first batch and in benchmarks.speed.
        compiled = _compile_fit(compile=True, compile__backend="aot_eager")
        _same_fit(compiled, eager_fit)
        np.testing.assert_allclose(compiled.history[:, "train_loss"],
                                   eager_fit.history[:, "train_loss"], rtol=1e-5)
        # The modules stay eager: NLLLoss is recognised, hooks and pickling work.
        assert type(compiled.module_) is MLP
        assert type(compiled.criterion_) is torch.nn.NLLLoss
        X, _ = make_blobs_data(20, seed=9)
        again = pickle.loads(pickle.dumps(compiled))
        np.testing.assert_array_equal(again.predict_proba(X), compiled.predict_proba(X))

    def test_compile_parameters_reach_torch_compile_and_lr_changes_do_not_retrace(
            self, eager_fit):
        graphs = []

        def backend(gm, example_inputs):
            graphs.append(gm)
            return gm.forward

        halve = LRScheduler(policy=torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
        net = _compile_fit(compile=True, compile__backend=backend,
                           callbacks=[("halve", halve)])
        # Full batches and the last one: two shapes, whatever the learning rate.
        assert len(graphs) == 2
        assert net.optimizer_.param_groups[0]["lr"] == pytest.approx(0.1 / 8)

    @pytest.mark.parametrize("fault", ["raises", "computes_wrongly"])
    def test_a_faulty_compiler_falls_back_to_the_eager_step(self, fault, monkeypatch,
                                                           eager_fit):
        def faulty(compile_kwargs=None):
            def step(*args, **kwargs):
                if fault == "raises":
                    raise RuntimeError("inductor broke")
                result = ghost.ghost_step(*args, **kwargs)
                return result._replace(meta_gradients=result.meta_gradients + 1.0)
            return step

        monkeypatch.setattr(ghost, "compiled_ghost_step", faulty)
        match = "inductor broke" if fault == "raises" else "differ from the eager"
        with pytest.warns(FallbackWarning, match=match):
            net = _compile_fit(strict=False, compile=True)
        _same_fit(net, eager_fit)

    def test_past_the_recompile_limit_the_fit_falls_back_to_the_eager_step(self, eager_fit):
        # The full batches' graph fits the limit; the last batch's would be one more.
        # (config.patch, not monkeypatch: monkeypatch's undo deletes a config entry.)
        limit = torch._dynamo.config.recompile_limit
        with torch._dynamo.config.patch(recompile_limit=1), \
                pytest.warns(FallbackWarning, match="recompile"):
            net = _compile_fit(strict=False, compile=True, compile__backend="aot_eager")
        assert torch._dynamo.config.recompile_limit == limit  # restored
        _same_fit(net, eager_fit)
        assert torch._dynamo.config.fail_on_recompile_limit_hit is False  # restored
