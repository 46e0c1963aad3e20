"""The ways people compute an L2RW step today, ported for ``benchmarks.speed``.

Each has the signature of sk_l2rw's step functions, ``step(module, loss_fn, X, y,
X_clean, y_clean, *, lr) -> weights``: it leaves the gradient of the weighted
loss ``sum_i w_i f_i`` in the parameters' ``.grad`` for the optimizer's step, as
``sk_l2rw``'s steps do, and returns the batch's weights.

- :func:`higher_step`: the public PyTorch reproductions built on the ``higher``
  library (``with higher.innerloop_ctx(model, opt) as (fmodel, diffopt)``): a
  functional copy of the module whose fast weights start at the module's
  parameters, a differentiable SGD step on ``sum_i eps_i f_i``, the clean loss of
  the copy, ``d/d eps``; then a second forward and backward of the real module on
  the weighted loss. Ported without the library: a deep copy of the module per step
  (higher's ``monkeypatch``) driven by ``torch.func.functional_call``.
- :func:`functional_copy_step`: the reproductions with a hand-written ``MetaModule``
  (a fresh copy of the net each step, ``load_state_dict``, a look-ahead step with
  ``create_graph=True`` on its own parameters, the clean loss at the stepped
  parameters), then the same second forward and backward.
- :func:`per_sample_step`: per-example gradients from ``torch.func``
  (``vmap(grad(...))``, a batch x parameters tensor) dotted with the clean
  gradient: ``u_i = lr <grad f_i, grad L_clean>``, which is exactly the paper's
  ``-d L_clean(theta') / d eps_i`` at ``eps = 0``.

The weights are normalised as in the paper (clip at 0, divide by the sum when it is
positive: :func:`sk_l2rw.weights.normalize_weights`). :func:`check_ports` compares
every port with ``sk_l2rw``'s reference step before anything is timed.
"""

import contextlib
import copy

import torch
from torch.func import functional_call, grad, vmap

from sk_l2rw.meta_gradient import reference_step
from sk_l2rw.weights import normalize_weights

__all__ = ["PORTS", "higher_step", "functional_copy_step", "per_sample_step",
           "check_ports"]


def _trainable(module):
    return {n: p for n, p in module.named_parameters() if p.requires_grad}


def _weighted_backward(module, loss_fn, X, y, weights):
    """The reproductions' second pass: a fresh forward of the real module, then
    backward of ``sum_i w_i f_i``."""
    (loss_fn(module(X), y) * weights).sum().backward()


def _clean_mean(loss_fn, pred, y_clean):
    return loss_fn(pred, y_clean).mean()


def _look_ahead_weights(net, params, buffers, losses, loss_fn, X_clean, y_clean, lr):
    """The reproductions' meta step on ``losses`` (made with ``params``): a
    differentiable SGD step on ``sum_i eps_i f_i``, the clean loss of ``net`` at the
    stepped parameters, ``w = normalize(-d/d eps)``."""
    eps = torch.zeros_like(losses, requires_grad=True)
    grads = torch.autograd.grad((eps * losses).sum(), list(params.values()),
                                create_graph=True)
    stepped = {n: p - lr * g for (n, p), g in zip(params.items(), grads)}
    clean = _clean_mean(loss_fn, functional_call(net, {**stepped, **buffers},
                                                 (X_clean,)), y_clean)
    (d_eps,) = torch.autograd.grad(clean, eps)
    return normalize_weights(-d_eps.detach())


def higher_step(module, loss_fn, X, y, X_clean, y_clean, *, lr):
    """``higher.innerloop_ctx`` as the public reproductions use it (see the module
    docstring)."""
    fmodel = copy.deepcopy(module)  # higher's monkeypatch copies the module
    fast = _trainable(module)  # the fast weights start at the real parameters
    buffers = dict(module.named_buffers())
    losses = loss_fn(functional_call(fmodel, {**fast, **buffers}, (X,)), y)
    weights = _look_ahead_weights(fmodel, fast, buffers, losses, loss_fn, X_clean,
                                  y_clean, lr)
    _weighted_backward(module, loss_fn, X, y, weights)
    return weights


def functional_copy_step(module, loss_fn, X, y, X_clean, y_clean, *, lr):
    """A fresh ``MetaModule`` copy per step, as the hand-written reproductions do
    (see the module docstring)."""
    meta_net = copy.deepcopy(module)
    meta_net.load_state_dict(module.state_dict())
    params = _trainable(meta_net)
    weights = _look_ahead_weights(meta_net, params, dict(meta_net.named_buffers()),
                                  loss_fn(meta_net(X), y), loss_fn, X_clean, y_clean, lr)
    _weighted_backward(module, loss_fn, X, y, weights)
    return weights


def per_sample_step(module, loss_fn, X, y, X_clean, y_clean, *, lr):
    """Per-example gradients (``torch.func.vmap(grad(...))``) dotted with the clean
    gradient (see the module docstring). Needs a module without batch statistics."""
    params = {n: p.detach() for n, p in _trainable(module).items()}
    buffers = dict(module.named_buffers())

    def one_loss(p, x, t):
        pred = functional_call(module, {**p, **buffers}, (x.unsqueeze(0),))
        return loss_fn(pred, t.unsqueeze(0)).sum()

    def clean_loss(p):
        return _clean_mean(loss_fn, functional_call(module, {**p, **buffers},
                                                    (X_clean,)), y_clean)

    per_example = vmap(grad(one_loss), in_dims=(None, 0, 0))(params, X, y)
    clean_grad = grad(clean_loss)(params)
    meta = lr * sum((per_example[n].flatten(1) * clean_grad[n].flatten()).sum(1)
                    for n in params)
    weights = normalize_weights(meta)
    _weighted_backward(module, loss_fn, X, y, weights)
    return weights


#: Name in the speed report -> step function.
PORTS = {"higher port": higher_step, "functional-copy port": functional_copy_step,
         "per-sample grads": per_sample_step}


def check_ports(module, loss_fn, X, y, X_clean, y_clean, *, lr, rtol=1e-4, atol=1e-6):
    """Every port's weights and gradient against ``sk_l2rw``'s reference step on one
    batch (copies of ``module``; it is left alone).

    Returns
    -------
    dict
        Port name -> the largest absolute difference of its weights from the
        reference's.

    Raises
    ------
    AssertionError
        When a port's weights or parameter gradients differ from the reference's.
    """
    def run(step):
        net = copy.deepcopy(module).train()
        out = step(net, loss_fn, X, y, X_clean, y_clean, lr=lr)
        weights = out.weights if hasattr(out, "weights") else out
        return weights.detach(), [p.grad for p in net.parameters() if p.requires_grad]

    diffs = {}
    with _full_float32():
        ref_weights, ref_grads = run(reference_step)
        for name, step in PORTS.items():
            weights, grads = run(step)
            torch.testing.assert_close(weights, ref_weights, rtol=rtol, atol=atol,
                                       msg=lambda m, name=name: f"{name}: weights: {m}")
            for g, r in zip(grads, ref_grads):
                torch.testing.assert_close(g, r, rtol=rtol, atol=atol,
                                           msg=lambda m, name=name: f"{name}: grads: {m}")
            diffs[name] = float((weights - ref_weights).abs().max())
    return diffs


@contextlib.contextmanager
def _full_float32():
    """TF32 off inside (cuDNN convolutions use it by default on NVIDIA GPUs): the
    check compares the ports' arithmetic, and TF32's 10-bit mantissa, applied by
    each port to different products, puts their weights further apart than any
    tolerance that still tells a wrong port from a right one."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
