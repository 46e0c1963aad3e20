"""Layer-wise ("ghost") meta-gradients: exact, one forward and one backward.

For a layer whose parameter gradient for row i is built from that row's layer input
``a_i`` and output gradient ``g_i`` (``nn.Linear``: ``g_i a_i^T``), the dot product with
the clean gradient ``G`` is ``g_i^T G a_i``: no per-example gradient of the size of the
parameters is ever formed. The weighted update ``sum_i w_i g_i a_i^T`` reuses the same
``a`` and ``g``, so autograd never computes parameter gradients at all.

One forward runs over the training rows and the clean rows stacked together (rows are
independent of each other, which :func:`unsupported_layers` checks), and one backward
of ``sum_i f_i + mean_j f^clean_j`` (``sum_j v_j f^clean_j`` with clean weights) gives
every row's output gradients: the training rows' are ``grad f_i``, the clean rows' sum
to the clean gradient. Training on the clean rows too (``clean_share > 0``) reuses
their inputs and output gradients in the same weighted update.

A parameter used by several layers (weight tying) is handled exactly: its clean
gradient is summed over all uses before any dot product is taken.
"""

import weakref
from collections.abc import Mapping

import torch
from torch import nn
from torch.autograd.graph import get_gradient_edge
from torch.nn import functional as F

from sk_l2rw.meta_gradient import StepResult, call_module, clean_objective
from sk_l2rw.weights import normalize_weights

__all__ = ["ghost_step", "compiled_ghost_step", "unsupported_layers"]


# ---------------------------------------------------------------------------
# Per-layer rules. Each takes the layer, its captured input ``a`` and output
# gradient ``g`` (rows first) and knows the parameter gradient g a^T.
# ---------------------------------------------------------------------------


class _LinearRule:
    """``nn.Linear``; inputs with inner dimensions (sequences) are summed over.

    A sparse input (a first layer fed sparse rows) is only ever multiplied with
    dense factors, never densified: every product below is sparse x dense, and the
    Gram form (which would need ``a a_clean^T``) is not used for it.
    """

    @staticmethod
    def prepare(layer, a, g):
        if a.dim() == 2:
            return a, g
        return a.reshape(a.shape[0], -1, a.shape[-1]), g.reshape(g.shape[0], -1, g.shape[-1])

    @staticmethod
    def clean_grads(layer, a, g):
        if a.dim() == 2:
            grads = {"weight": _sparse_weight_grad(g, a) if a.is_sparse else torch.mm(g.t(), a)}
            if layer.bias is not None:
                grads["bias"] = g.sum(0)
            return grads
        grads = {"weight": torch.einsum("nto,nti->oi", g, a)}
        if layer.bias is not None:
            grads["bias"] = g.sum((0, 1))
        return grads

    @staticmethod
    def dots(layer, a, g, G):
        weight, bias = G.get("weight"), G.get("bias")
        if a.dim() == 2:
            # g_i . (G a_i + G_bias): one fused product when both are trainable.
            if weight is None:
                return torch.mv(g, bias)
            if a.is_sparse:  # (A G^T)_i . g_i: a sparse x dense product
                out = torch.mm(a, weight.t()).mul_(g).sum(1)
                return out if bias is None else out.add_(torch.mv(g, bias))
            if bias is None:
                return torch.mm(g, weight).mul_(a).sum(1)
            return torch.addmm(bias, a, weight.t()).mul_(g).sum(1)
        out = None
        if weight is not None:
            out = (g @ weight).mul_(a).sum((1, 2))
        if bias is not None:
            b = g.sum(1) @ bias
            out = b if out is None else out.add_(b)
        return out

    @staticmethod
    def gram_cost(layer, a_train, a_clean):
        if a_train.dim() != 2 or a_train.is_sparse:
            return None  # sequences: the Gram form would cost T^2
        n, m = a_train.shape[0], a_clean.shape[0]
        return n * m * (layer.in_features + layer.out_features)

    @staticmethod
    def direct_cost(layer, a_train, a_clean):
        rows = a_train.shape[0] if a_train.dim() == 2 else a_train[..., 0].numel()
        rows += a_clean.shape[0] if a_clean.dim() == 2 else a_clean[..., 0].numel()
        return rows * layer.in_features * layer.out_features

    @staticmethod
    def gram_dots(layer, a, g, a_clean, g_clean, wanted):
        # <g_i a_i^T, sum_j g_j a_j^T> = sum_j (g_i . g_j)(a_i . a_j): cheaper than
        # forming G when the clean batch is small. The bias adds (g_i . g_j) * 1.
        gg = torch.mm(g, g_clean.t())
        if "weight" in wanted:
            aa = torch.mm(a, a_clean.t())
            if "bias" in wanted:
                aa += 1
            return gg.mul_(aa).sum(1)
        return gg.sum(1)

    @staticmethod
    def weighted_grads(layer, a, g, w):
        if a.dim() == 2:
            # Scale the narrower factor (the temporary copy is smaller); a sparse
            # input is never scaled.
            if a.is_sparse:
                grads = {"weight": _sparse_weight_grad(g * w[:, None], a)}
            elif a.shape[1] < g.shape[1]:
                grads = {"weight": torch.mm(g.t(), a * w[:, None])}
            else:
                grads = {"weight": torch.mm((g * w[:, None]).t(), a)}
            if layer.bias is not None:
                grads["bias"] = torch.mv(g.t(), w)
            return grads
        wg = g * w[:, None, None]
        grads = {"weight": torch.einsum("nto,nti->oi", wg, a)}
        if layer.bias is not None:
            grads["bias"] = wg.sum((0, 1))
        return grads


def _sparse_weight_grad(g, a):
    """``g^T a`` for a sparse ``a``, as the transpose of a contiguous ``(in, out)`` block.

    torch's dense x sparse product allocates its weight-sized result about twice
    over (a transposed temporary, then the copy); sparse^T x dense written into a
    preallocated block allocates it once. The transposed view is an ordinary
    gradient to optimizers, and ``dots`` reads it back as that contiguous block.
    """
    out = g.new_empty(a.shape[1], g.shape[1])
    torch.mm(a.t(), g, out=out)
    return out.t()


class _ConvRule:
    """``nn.Conv1d`` and ``nn.Conv2d`` (any groups; zero padding given as numbers).

    No patches are unfolded: the clean gradient and the weighted update are
    convolution weight-gradients (``torch.nn.grad.conv*_weight``, the backend's own
    kernel), and row i's dot product with the clean gradient ``G`` is the
    convolution of its input with ``G`` as kernel, read against its output
    gradient: ``<g_i (x) patches_i, G> = sum(conv(a_i, G) * g_i)``.
    """

    @staticmethod
    def prepare(layer, a, g):
        return a, g

    @staticmethod
    def _conv(layer):
        return F.conv1d if isinstance(layer, nn.Conv1d) else F.conv2d

    @staticmethod
    def _weight_grad(layer, a, g):
        grad = (torch.nn.grad.conv1d_weight if isinstance(layer, nn.Conv1d)
                else torch.nn.grad.conv2d_weight)
        return grad(a, layer.weight.shape, g, stride=layer.stride,
                    padding=layer.padding, dilation=layer.dilation, groups=layer.groups)

    @classmethod
    def clean_grads(cls, layer, a, g):
        grads = {"weight": cls._weight_grad(layer, a, g)}
        if layer.bias is not None:
            grads["bias"] = g.sum(dim=[d for d in range(g.dim()) if d != 1])
        return grads

    @classmethod
    def dots(cls, layer, a, g, G):
        out = None
        if "weight" in G:
            along = cls._conv(layer)(a, G["weight"], None, layer.stride, layer.padding,
                                     layer.dilation, layer.groups)
            out = along.mul_(g).flatten(1).sum(1)
        if "bias" in G:
            bias = g.flatten(2).sum(2) @ G["bias"]
            out = bias if out is None else out.add_(bias)
        return out

    gram_cost = staticmethod(lambda layer, a_train, a_clean: None)

    @classmethod
    def weighted_grads(cls, layer, a, g, w):
        wg = g * w.reshape(-1, *([1] * (g.dim() - 1)))
        grads = {"weight": cls._weight_grad(layer, a, wg)}
        if layer.bias is not None:
            grads["bias"] = wg.sum(dim=[d for d in range(g.dim()) if d != 1])
        return grads


class _EmbeddingRule:
    """``nn.Embedding``: row i's gradient scatters ``g_it`` into rows ``idx_it``."""

    @staticmethod
    def prepare(layer, a, g):
        return a.reshape(a.shape[0], -1), g.reshape(g.shape[0], -1, g.shape[-1])

    @staticmethod
    def _scatter(layer, idx, values):
        table = torch.zeros_like(layer.weight)
        table.index_add_(0, idx.reshape(-1), values.reshape(-1, values.shape[-1]))
        if layer.padding_idx is not None:
            table[layer.padding_idx] = 0  # padding rows never receive gradient
        return table

    @classmethod
    def clean_grads(cls, layer, a, g):
        return {"weight": cls._scatter(layer, a, g.to(layer.weight.dtype))}

    @staticmethod
    def dots(layer, a, g, G):
        # The padding row of G is zero, so padding positions add nothing.
        return (G["weight"][a] * g).sum((1, 2))

    gram_cost = staticmethod(lambda layer, a_train, a_clean: None)

    @classmethod
    def weighted_grads(cls, layer, a, g, w):
        return {"weight": cls._scatter(layer, a, g * w[:, None, None])}


def _rule_for(layer):
    """The rule for ``layer``, or None when ghost cannot handle it."""
    kind = type(layer)
    if isinstance(layer, nn.Linear) and kind.forward is nn.Linear.forward:
        return _LinearRule
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        base = nn.Conv1d if isinstance(layer, nn.Conv1d) else nn.Conv2d
        if (kind.forward is base.forward and layer.padding_mode == "zeros"
                and not isinstance(layer.padding, str)):
            return _ConvRule
        return None
    if isinstance(layer, nn.Embedding) and kind.forward is nn.Embedding.forward:
        if layer.max_norm is None and not layer.sparse and not layer.scale_grad_by_freq:
            return _EmbeddingRule
    return None


_BATCH_STATISTICS = (nn.modules.batchnorm._BatchNorm, nn.SyncBatchNorm)


def unsupported_layers(module):
    """Type names of the layers that stop ghost from computing exact weights.

    A layer is unsupported when it owns trainable parameters and no per-layer rule
    covers it (type, groups, padding mode...), or when it mixes rows through batch
    statistics (batch normalisation in training mode), which makes per-example
    gradients depend on the whole batch.

    Parameters
    ----------
    module : torch.nn.Module
        The whole network: every submodule is inspected, in its current mode
        (``train()`` or ``eval()``).

    Returns
    -------
    names : list of str
        Sorted, without repeats; empty when ghost applies.
    """
    bad = set()
    for layer in module.modules():
        if isinstance(layer, _BATCH_STATISTICS) and layer.training:
            bad.add(f"{type(layer).__name__} (batch statistics)")
            continue
        owns_trainable = any(p.requires_grad for p in layer.parameters(recurse=False))
        if owns_trainable and _rule_for(layer) is None:
            bad.add(type(layer).__name__)
    return sorted(bad)


# ---------------------------------------------------------------------------
# Capturing inputs and output gradients
# ---------------------------------------------------------------------------


class _Capture:
    """Forward hooks that record ``(layer, input, output edge)`` of every call.

    Output gradients are then asked for directly (``autograd.grad`` w.r.t. the
    recorded outputs), so parameter gradients are never computed. Each output is
    held as its autograd edge, not as a tensor: the output itself can be freed as
    soon as the next layer has used it (as in plain training), and a module that
    later changes it in place (``ReLU(inplace=True)``) does not change which
    gradient the edge receives: the one of the value the layer produced.
    """

    def __init__(self, module, sparse_parts=None):
        self.records = []
        self._handles = []
        self._layers = _hooked_layers(module)
        # id of a stacked sparse input -> its training and clean rows
        # (:func:`_stack_rows`): a layer fed it directly needs no split.
        self._sparse_parts = {} if sparse_parts is None else sparse_parts

    def __enter__(self):
        for layer, rule, names in self._layers:
            self._handles.append(layer.register_forward_hook(self._hook(layer, rule, names)))
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, layer, rule, names):
        def hook(mod, inputs, output):
            edge, shape = _output_edge(output) if output.requires_grad else (None, None)
            a = inputs[0]
            self.records.append({"layer": layer, "rule": rule, "names": names,
                                 "a": a.detach(), "edge": edge, "shape": shape,
                                 "g": None, "parts": (self._sparse_parts.get(id(a))
                                                      if a.is_sparse else None)})
        return hook

    def backward(self, losses, n, clean_weights=None):
        """Fill every record's output gradient from ``sum_i f_i + mean_j f_clean_j``
        (``sum_j v_j f_clean_j`` when ``clean_weights`` holds the ``v_j``)."""
        weights = _loss_gradient(losses, n, clean_weights)
        reached = [r for r in self.records if r["edge"] is not None]
        grads = torch.autograd.grad(losses, [r["edge"] for r in reached], weights,
                                    allow_unused=True)
        for record, grad in zip(reached, grads):
            shape = record["shape"]
            record["g"] = grad if grad is None or shape is None else grad.view(shape)
            record["edge"] = None  # the graph is freed; nothing more to reach


def _loss_gradient(losses, n, clean_weights=None, cached=True):
    """The gradient of ``sum_i f_i + mean_j f_clean_j`` (``sum_j v_j f_clean_j`` when
    ``clean_weights`` holds the ``v_j``) w.r.t. the stacked loss vector ``losses``.

    Without clean weights it is ``[1] * n + [1 / m] * m``, the same for every step,
    so made once (autograd does not write to it) unless ``cached=False`` (a traced
    step, where a module-level cache cannot be read).
    """
    dtype, device = losses.dtype, losses.device
    if clean_weights is not None:
        return torch.cat([torch.ones(n, dtype=dtype, device=device), clean_weights.to(dtype)])
    if not cached:
        return _uniform_tail(n, losses.shape[0], dtype, device)
    key = (n, losses.shape[0], dtype, device)
    out = _GRAD_OUTPUTS.get(key)
    if out is None:
        if len(_GRAD_OUTPUTS) > 64:  # batch shapes vary only at epoch ends
            _GRAD_OUTPUTS.clear()
        out = _GRAD_OUTPUTS[key] = _uniform_tail(*key)
    return out


_GRAD_OUTPUTS = {}


def _uniform_tail(n, total, dtype, device):
    out = torch.full((total,), 1.0 / (total - n), dtype=dtype, device=device)
    out[:n] = 1.0
    return out


def _output_edge(output):
    """The autograd edge whose gradient is the layer output's, and the output's
    shape when that gradient must be reshaped to it.

    An output that is a reshaped view of a fresh result (``nn.Linear`` over
    sequences) is reached through its base: an in-place change of the view
    rebuilds the view's own autograd node, which then no longer receives a
    gradient, while the base's node stays in the graph.
    """
    base = output._base
    if (base is not None and base.requires_grad and base.numel() == output.numel()
            and base.is_contiguous() and output.is_contiguous()):
        return get_gradient_edge(base), output.shape
    return get_gradient_edge(output), None


class _DeltaCapture:
    """The capture :func:`compiled_ghost_step` traces: no autograd edges.

    Every hooked layer call adds a zero tensor ``delta_k`` to its output, so the
    gradient of the losses with respect to ``delta_k`` is that output's gradient,
    and ``torch.func.vjp`` with respect to the deltas yields all of them from one
    call that torch.compile can trace (an autograd edge cannot be traced). The hook
    is one module-level function and its state one module-level object, so a graph
    traced in one step, or one fit, stays valid in the next.
    """

    def __init__(self):
        self.deltas = None  # None: record output shapes only
        self.layers, self.inputs = [], []

    @staticmethod
    def hook(layer, inputs, output):
        cap = _DELTAS
        if cap.deltas is None:
            cap.layers.append((layer, output.shape, output.dtype, output.device))
            return None
        k = len(cap.inputs)
        cap.layers.append(layer)
        cap.inputs.append(inputs[0])
        return output + cap.deltas[k]


_DELTAS = _DeltaCapture()


class _DeltaHooks:
    """``with _DeltaHooks(module) as hooks:`` the delta hook is on every hooked
    layer; ``hooks.zeros`` is the module's zero-delta cache (:func:`_zero_deltas`)."""

    def __init__(self, module):
        _, layers, self.zeros = _layer_entry(module)
        self._layers = [layer for layer, _, _ in layers]
        self._handles = []

    def __enter__(self):
        self._handles = [layer.register_forward_hook(_DeltaCapture.hook)
                         for layer in self._layers]
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles = []
        _DELTAS.deltas, _DELTAS.layers, _DELTAS.inputs = None, [], []


def _zero_deltas(module, cached, stacked, forward_kwargs):
    """The zero tensor to add to each hooked call's output, and each call's
    parameter keys (positions in ``module.parameters()``, the same for tied uses):
    found by one forward per input signature, then kept in ``cached`` (the module's,
    :attr:`_DeltaHooks.zeros`, dropped with its hooked layers when ``requires_grad``
    changes)."""
    parts = stacked.values() if isinstance(stacked, Mapping) else (stacked,)
    key = (tuple((tuple(t.shape), t.dtype, t.device) for t in parts),
           tuple(sorted(forward_kwargs or {})))
    if key not in cached:
        if len(cached) > 16:  # batch shapes vary only at epoch ends
            cached.clear()
        was_training = module.training
        module.eval()  # shapes only: dropout must not draw random numbers here
        try:
            with torch.no_grad():
                call_module(module, stacked, forward_kwargs=forward_kwargs)
            outputs = list(_DELTAS.layers)
        finally:
            module.train(was_training)
            _DELTAS.layers = []
        position = {id(p): i for i, p in enumerate(module.parameters())}
        cached[key] = (
            tuple(torch.zeros(shape, dtype=dtype, device=device)
                  for _, shape, dtype, device in outputs),
            tuple(tuple(position[id(getattr(layer, name))] for name in names)
                  for layer, names in ((out[0], _trainable_names(out[0]))
                                       for out in outputs)))
    return cached[key]


def _trainable_names(layer):
    return tuple(name for name, p in layer.named_parameters(recurse=False)
                 if p.requires_grad)


def _functional_records(module, loss_fn, stacked, targets, n, deltas, keys,
                        clean_weights, forward_kwargs):
    """Module output, losses and records, as :class:`_Capture` gives them, traceable."""
    def losses_of(*deltas):
        _DELTAS.deltas, _DELTAS.layers, _DELTAS.inputs = deltas, [], []
        out = call_module(module, stacked, forward_kwargs=forward_kwargs)
        return loss_fn(out, targets), (out, _DELTAS.inputs)

    # Outside the transform nothing needs a graph: parameters are constants here.
    with torch.no_grad():
        losses, pullback, (out, inputs) = torch.func.vjp(losses_of, *deltas,
                                                         has_aux=True)
        grads = pullback(_loss_gradient(losses, n, clean_weights, cached=False))
    # Reset here, inside the traced function, not only by _DeltaHooks on leaving: the
    # lists hold the transform's wrapped tensors, which the traced graph must not
    # leave behind in a module-level object.
    layers, _DELTAS.deltas, _DELTAS.layers, _DELTAS.inputs = _DELTAS.layers, None, [], []
    records = [{"layer": layer, "rule": _rule_for(layer), "names": _trainable_names(layer),
                "keys": k, "a": a, "g": g}
               for layer, k, a, g in zip(layers, keys, inputs, grads)]
    return out, losses, records


def _compiled_core(module, loss_fn, stacked, targets, n, deltas, keys, *, lr,
                   forward_kwargs, clean_weights, clean_share):
    out, losses, records = _functional_records(module, loss_fn, stacked, targets, n,
                                               deltas, keys, clean_weights, forward_kwargs)
    return _from_records(records, out, losses, n, lr=lr, clean_weights=clean_weights,
                         clean_share=clean_share, update=True, normalize=None)


_COMPILED = {}


def compiled_ghost_step(compile_kwargs=None):
    """:func:`ghost_step` as one ``torch.compile`` graph: the forward, the output
    gradients, the meta-gradients, the weights and the weighted update.

    Parameters
    ----------
    compile_kwargs : dict or None
        Keyword arguments of ``torch.compile`` (skorch's ``compile__*``).

    Returns
    -------
    step : callable
        A step with :func:`ghost_step`'s parameters (``update`` and ``normalize``
        excepted) and result. Dense tensors only; its rows must not be sparse.
    """
    kwargs = dict(compile_kwargs or {})
    # One graph per batch shape (a fit has two: full batches and the last one),
    # cached across fits: dynamic shapes buy nothing here, and torch 2.13 cannot
    # trace dropout under torch.func with symbolic sizes.
    kwargs.setdefault("dynamic", False)
    if kwargs.get("backend", "inductor") == "inductor" and "mode" not in kwargs:
        # Eager's random numbers (dropout) in the compiled step: results then
        # match an eager fit's to float rounding.
        kwargs["options"] = {"fallback_random": True, **kwargs.get("options", {})}
    key = repr(sorted(kwargs.items()))  # values may be dicts (``options``)
    core = _COMPILED.get(key)
    if core is None:
        core = _COMPILED[key] = torch.compile(_compiled_core, **kwargs)

    def step(module, loss_fn, X, y, X_clean, y_clean, *, lr=1.0, forward_kwargs=None,
             clean_weights=None, clean_share=0.0):
        n = y.shape[0]
        stacked, targets = _stack_rows(X, X_clean), torch.cat([y, y_clean])
        # Floats as tensors: a graph specialised on a learning rate would be traced
        # again whenever a scheduler changes it.
        lr_ = torch.tensor(float(lr), dtype=torch.float64)
        share = torch.tensor(float(clean_share), dtype=torch.float64) if clean_share else 0.0
        config = torch._dynamo.config
        # Past recompile_limit graphs Dynamo would run the traced function uncompiled
        # (slower than ghost_step): an error instead lets the caller fall back.
        limit_hit, config.fail_on_recompile_limit_hit = config.fail_on_recompile_limit_hit, True
        with _DeltaHooks(module) as hooks:
            deltas, keys = _zero_deltas(module, hooks.zeros, stacked, forward_kwargs)
            try:
                result, grads = core(module, loss_fn, stacked, targets, n, deltas, keys,
                                     lr=lr_, forward_kwargs=forward_kwargs,
                                     clean_weights=clean_weights, clean_share=share)
            finally:
                config.fail_on_recompile_limit_hit = limit_hit
        _set_grads(grads)
        return result

    return step


# Layers with trainable parameters, per module (and the compiled step's zero
# deltas for them, :func:`_zero_deltas`).
_LAYERS = weakref.WeakKeyDictionary()


def _hooked_layers(module):
    return _layer_entry(module)[1]


def _layer_entry(module):
    """``(requires_grad of every parameter, [(layer, rule, names)], zero-delta cache)``,
    rebuilt when a parameter's ``requires_grad`` changes."""
    key = tuple(p.requires_grad for p in module.parameters())
    cached = _LAYERS.get(module)
    if cached is None or cached[0] != key:
        layers = []
        for layer in module.modules():
            names = _trainable_names(layer)
            if names:
                layers.append((layer, _rule_for(layer), names))
        cached = _LAYERS[module] = (key, layers, {})
    return cached


def _add(totals, key, p, value):
    """Sum ``value`` into ``totals[key] = (p, sum)`` (``key`` names ``p``): a tied
    parameter collects the contributions of all its uses."""
    totals[key] = (p, value) if key not in totals else (p, totals[key][1] + value)


def _stack_rows(X, X_clean, sparse_parts=None):
    """The training rows, then the clean rows. ``sparse_parts``, a dict, receives
    ``id(stacked) -> (X, X_clean)`` for every sparse result, so that
    :func:`_from_records` need not split it again: splitting a sparse tensor
    (``narrow_copy``) selects its entries with a mask, which waits for the device
    (``nonzero``) on a GPU at every step."""
    if isinstance(X, Mapping):
        return {k: _stack_rows(X[k], X_clean[k], sparse_parts) for k in X}
    if X.is_sparse != X_clean.is_sparse:
        # Sparse clean rows next to dense training rows (skorch's own batches of
        # a sparse X are dense): the clean batch is small, densify it.
        X_clean = X_clean.to_dense() if X_clean.is_sparse else X_clean.to_sparse()
    stacked = torch.cat([X, X_clean])
    if sparse_parts is not None and stacked.is_sparse:
        sparse_parts[id(stacked)] = (X, X_clean)
    return stacked


def _split_rows(t, n):
    """The first ``n`` rows of ``t`` and the rest (a sparse COO tensor too)."""
    if t.is_sparse:
        return t.narrow_copy(0, 0, n), t.narrow_copy(0, n, t.shape[0] - n)
    return t.split([n, t.shape[0] - n])


def _rows(y_pred, stop):
    if isinstance(y_pred, tuple):
        return tuple(t[:stop] for t in y_pred)
    return y_pred[:stop]


def ghost_step(module, loss_fn, X, y, X_clean, y_clean, *, lr=1.0, forward_kwargs=None,
               clean_weights=None, clean_share=0.0, update=True, normalize=None):
    """Exact L2RW step from layer inputs and output gradients.

    The module must pass :func:`unsupported_layers` (rows independent, every
    trainable parameter inside a supported layer). Parameters and return value are
    those of :func:`sk_l2rw.meta_gradient.reference_step`; with ``update=False``
    only the meta-gradients and weights are computed and no gradient is set.
    """
    n = y.shape[0]
    sparse_parts = {}
    stacked = _stack_rows(X, X_clean, sparse_parts)
    targets = torch.cat([y, y_clean])
    with _Capture(module, sparse_parts) as cap:
        out = call_module(module, stacked, forward_kwargs=forward_kwargs)
    del stacked  # the first layer's record keeps it only while needed
    losses = loss_fn(out, targets)
    cap.backward(losses, n, clean_weights)
    records, cap.records = cap.records, []
    result, grads = _from_records(records, out, losses, n, lr=lr,
                                  clean_weights=clean_weights, clean_share=clean_share,
                                  update=update, normalize=normalize)
    _set_grads(grads)
    return result


def _set_grads(grads):
    for p, grad in grads:
        if p.grad is None:
            p.grad = grad
        else:
            p.grad.add_(grad)


def _from_records(records, out, losses, n, *, lr, clean_weights, clean_share, update,
                  normalize):
    """Weights, loss and parameter gradients from the captured ``records``.

    ``records`` (emptied on the way, so that each layer's tensors are freed once
    used) hold every hooked call's layer, rule, parameter names, input ``a`` and
    output gradient ``g`` over the stacked training and clean rows (and may hold
    ``keys``, one hashable per name that tells tied parameters apart); ``losses`` are
    the stacked rows' losses. Returns the step's :class:`StepResult` and the
    ``(parameter, gradient)`` pairs of the weighted update (none without ``update``).
    """
    # Split every record into training and clean rows, in the rule's layout,
    # with the trainable parameters the layer uses.
    uses = []
    while records:
        rec = records.pop(0)  # held from here on by ``uses`` only, so it can be freed
        if rec["g"] is None:  # output never reached the loss
            continue
        layer, rule, names = rec["layer"], rec["rule"], rec["names"]
        a, g = rule.prepare(layer, rec["a"], rec["g"])
        # The rows as they were before stacking, when the layer got them unchanged.
        rows = rec.get("parts") if a is rec["a"] else None
        # (name, parameter, key): the key tells tied parameters apart; a compiled
        # step passes keys that do not depend on object identity (no id() guards).
        params = [(name, getattr(layer, name), key) for name, key in
                  zip(names, rec.get("keys") or [id(getattr(layer, n)) for n in names])]
        del rec
        (a_t, a_c), (g_t, g_c) = rows or _split_rows(a, n), _split_rows(g, n)
        uses.append((layer, rule, params, a_t, g_t, a_c, g_c, a, g))

    # Parameters used once may take the cheaper Gram form; tied ones need the
    # clean gradient summed over all their uses first.
    count = {}
    for use in uses:
        for _, _, key in use[2]:
            count[key] = count.get(key, 0) + 1

    parts = []  # each layer's share of the meta-gradients
    clean_total = {}
    direct = []
    for use in uses:
        layer, rule, params, a_t, g_t, a_c, g_c = use[:7]
        single = all(count[key] == 1 for _, _, key in params)
        gram = rule.gram_cost(layer, a_t, a_c) if single else None
        if gram is not None and gram < rule.direct_cost(layer, a_t, a_c):
            parts.append(rule.gram_dots(layer, a_t, g_t, a_c, g_c,
                                        {name for name, _, _ in params}))
            continue
        grads = rule.clean_grads(layer, a_c, g_c)
        for name, p, key in params:
            _add(clean_total, key, p, grads[name])
        direct.append(use)
    for layer, rule, params, a_t, g_t, *_ in direct:
        parts.append(rule.dots(layer, a_t, g_t, {name: clean_total[key][1]
                                                 for name, _, key in params}))
    del direct

    meta = parts[0] if len(parts) == 1 else torch.stack(parts).sum(0)
    # The clean gradient is not needed past here; freed now, it is not alive next
    # to the update's gradients (``= None``, not ``del``: a comprehension above
    # closes over it, and torch.compile cannot trace deleting a closed-over name).
    parts = clean_total = None
    meta = lr * meta
    weights = (normalize or normalize_weights)(meta)
    loss = (weights * losses[:n].detach()).sum()
    if torch.is_tensor(clean_share) or clean_share:
        # The clean rows' output gradients carry v_j already (1/m without clean
        # weights): one scale clean_share / sum(v) gives row j its update weight
        # clean_share * v_j / sum(v).
        m, dtype = losses.shape[0] - n, losses.dtype
        if clean_weights is None:
            scale = torch.as_tensor(clean_share, dtype=dtype, device=losses.device)
        else:
            total = clean_weights.to(dtype).sum().clamp(min=torch.finfo(dtype).tiny)
            scale = (clean_share / total).to(dtype)
        loss = loss + scale * clean_objective(losses[n:].detach(), clean_weights)
        update_weights = torch.cat([weights, scale.expand(m)])
    else:
        update_weights = None
    y_pred = _rows(out, n)
    y_pred = (y_pred.detach() if torch.is_tensor(y_pred)
              else tuple(t.detach() for t in y_pred))
    if not update:
        return StepResult(loss, y_pred, weights, meta), []

    # Each layer's inputs and output gradients are released once its update is
    # formed, so that they are not all alive next to every new gradient.
    grads = {}
    while uses:
        layer, rule, params, a_t, g_t, _, _, a, g = uses.pop()
        if update_weights is None:
            update_ = rule.weighted_grads(layer, a_t, g_t, weights)
        else:
            update_ = rule.weighted_grads(layer, a, g, update_weights)
        del a, g
        for name, p, key in params:
            _add(grads, key, p, update_[name])
    return StepResult(loss, y_pred, weights, meta), list(grads.values())
