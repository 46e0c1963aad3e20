"""Data-parallel L2RW on ``torch.distributed``: one fit across processes and GPUs.

When ``torch.distributed`` is initialised with more than one process (``torchrun``;
``gloo`` on CPUs, ``nccl`` on GPUs), ``fit`` trains data-parallel and every rank
ends with the same estimator. Per step, with ``W`` ranks and a global batch of ``B``
rows (``batch_size``):

1. rank ``r`` reads only its shard, rows ``[r B / W, (r + 1) B / W)`` of the batch
   (:func:`shard_bounds`), and the clean batch, the same on every rank (one seed);
2. it computes its shard's meta-gradients with any computation; one
   ``all_gather`` of ``2 + 2 ceil(B / W)`` numbers per rank brings the whole batch's
   meta-gradients to every rank, which normalises them exactly as one process does
   (:func:`sk_l2rw.weights.normalize_weights` over the ``B`` values: the clipped sum
   is global) and keeps its shard's weights;
3. its share of the weighted gradient ``sum_i w_i grad f_i`` is summed over the
   ranks by one ``all_reduce`` of every trainable parameter's gradient and the loss.
   ``ghost`` writes gradients itself, so DDP's backward hooks would never see them:
   the explicit all-reduce serves every computation alike.

The optimizer then takes the same step on every rank. Everything else (the clean
loss at the end of an epoch, the validation split, early stopping) is computed
from the same numbers on every rank, so the ranks never diverge. Layers that mix
rows (batch normalisation) see only their shard's rows, as under DDP; dropout draws
per rank. Both make a run differ from one process; everything else matches it to
float rounding.

Failure: every collective of a step carries a flag. A rank whose step raises joins
the collective the others wait in with the flag set; then all ranks exchange the
message and raise the same error, instead of hanging. An error outside the steps (a
callback that raises on one rank) is held until that rank's next collective: the
next step's first, or the one flag that every rank all-reduces at the end of each
epoch and of training (:meth:`Group.settle`); every rank then raises it.
"""

import contextlib
import math

import numpy as np
import torch
from sklearn.utils import check_random_state

from sk_l2rw.weights import normalize_weights

__all__ = ["current_group", "shard_bounds", "Group", "PeerDiedError", "ShardedBatches"]


def current_group():
    """The :class:`Group` of the default process group, or None when a fit runs on
    one process (``torch.distributed`` absent, not initialised, or one rank)."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return Group()


def shard_bounds(n, rank, world):
    """Rows ``[start, stop)`` of a batch of ``n`` rows that ``rank`` of ``world`` trains.

    Contiguous shards whose sizes differ by at most one, in rank order, so that the
    shards put together are the batch.
    """
    return n * rank // world, n * (rank + 1) // world


class PeerDiedError(RuntimeError):
    """A collective of a data-parallel fit failed in the communication itself: a
    rank died (killed, out of memory) or its connection broke. Every surviving
    rank raises it at its next collective, instead of the backend's bare message
    (gloo: "Connection reset by peer")."""


def _communicating(what, call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except RuntimeError as exc:  # torch.distributed.DistError and the backends'
        raise PeerDiedError(
            f"a peer rank of this data-parallel fit died or lost its connection "
            f"({what}: {exc}); every surviving rank stops") from exc


class _PeerFailed(Exception):
    """Another rank's step raised; the message exchange follows outside the step.

    Not a ``RuntimeError``, so that no fallback inside a step catches it.
    """


class Group:
    """The ranks of one data-parallel fit, and the collectives of its steps.

    Parameters
    ----------
    group : torch.distributed.ProcessGroup or None
        None: the default group.

    Attributes
    ----------
    rank, world : int
    batch : tuple of (torch.Tensor, torch.Tensor) or None
        After the meta-gradient gather of a step: the whole batch's row positions
        and weights, in rank order.
    """

    def __init__(self, group=None):
        dist = torch.distributed
        self.group = group
        self.rank = dist.get_rank(group)
        self.world = dist.get_world_size(group)
        # NCCL moves CUDA tensors only; gloo takes both.
        self.device = (torch.device("cuda", torch.cuda.current_device())
                       if dist.get_backend(group) == "nccl" else torch.device("cpu"))
        self.batch = None
        self._pending = []
        self._shard_capacity = 1
        self._module = None

    # ------------------------------------------------------------ outside steps

    def exchange(self, obj):
        """Every rank's ``obj``, in rank order (``all_gather_object``)."""
        out = [None] * self.world
        _communicating("exchanging messages", torch.distributed.all_gather_object,
                       out, obj, group=self.group)
        return out

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank."""
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=self._global(0), group=self.group)
        return box[0]

    def broadcast_module(self, module):
        """Rank 0's parameters and buffers on every rank (one tensor at a time)."""
        with torch.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                moved = t.data.to(self.device)
                torch.distributed.broadcast(moved, src=self._global(0), group=self.group)
                if moved is not t.data:
                    t.data.copy_(moved)

    @contextlib.contextmanager
    def agreed(self):
        """Run the block on every rank; if it raised on any, raise the same error on
        all (the lowest failing rank's), else go on together."""
        try:
            yield
        except Exception as exc:
            self._raise_agreed(exc, self.exchange(_describe(exc, self.rank)))
        else:
            reports = self.exchange(None)
            if any(r is not None for r in reports):
                self._raise_agreed(None, reports)

    def settle(self, failure=None, interrupted=False):
        """Where the ranks agree outside the steps (the end of an epoch, of training).

        One ``all_reduce`` (maximum) of a flag: 2 where a rank holds a ``failure``
        (an exception from a callback, held since it was raised), 1 where it was
        interrupted (skorch's ``EarlyStopping`` raises ``KeyboardInterrupt``), else
        0. When any rank failed, every rank raises the lowest failing rank's error,
        naming it; else returns whether any rank was interrupted, so that all stop
        together.
        """
        flag = torch.tensor([2.0 if failure is not None else 1.0 if interrupted else 0.0],
                            dtype=torch.float64, device=self.device)
        _communicating("agreeing at the end of an epoch", torch.distributed.all_reduce,
                       flag, op=torch.distributed.ReduceOp.MAX, group=self.group)
        worst = int(flag.item())
        if worst == 2:
            self._raise_agreed(failure, self.exchange(
                None if failure is None else _describe(failure, self.rank)))
        return worst == 1

    # --------------------------------------------------------------- in steps

    def begin_step(self, module, batch_size, verify=False):
        """Declare the collectives of the next step (which a failing rank joins)."""
        self._shard_capacity = max(1, math.ceil(batch_size / self.world))
        self._module = module
        self._pending = (["verify"] if verify else []) + ["meta", "sum"]
        self.batch = None

    def all_agree(self, ok):
        """Whether ``ok`` holds on every rank (the ghost check of "auto")."""
        buf = self._stage_buffer("verify")
        buf[1] = 0.0 if ok else 1.0
        return bool(self._reduce("verify", buf)[1] == 0)

    def normalizer(self, index):
        """The step's ``normalize``: gathers the batch's meta-gradients, normalises
        them over the whole batch, returns this shard's weights.

        ``index`` holds the shard's row positions (for :attr:`batch`).
        """
        def normalize(meta):
            n, k = meta.shape[0], self._shard_capacity
            buf = self._stage_buffer("meta")
            buf[1] = n
            buf[2:2 + n] = index.to(buf)
            buf[2 + k:2 + k + n] = meta.detach().to(buf)
            rows = self._gather("meta", buf)
            counts = rows[:, 1].long().tolist()
            # float32 -> float64 -> float32 is exact: one process's values, bit for bit.
            meta_all = torch.cat([r[2 + k:2 + k + c] for r, c in zip(rows, counts)])
            index_all = torch.cat([r[2:2 + c] for r, c in zip(rows, counts)])
            weights = normalize_weights(meta_all.to(device=meta.device, dtype=meta.dtype))
            self.batch = (index_all.long().to(meta.device), weights)
            start = sum(counts[:self.rank])
            return weights[start:start + n]
        return normalize

    def sum_gradients(self, module, loss):
        """Sum every trainable gradient and the loss over the ranks; the global loss."""
        params = [p for p in module.parameters() if p.requires_grad]
        dtype = params[0].dtype if params else loss.dtype
        parts = [torch.zeros(1, dtype=dtype, device=self.device),
                 loss.detach().reshape(1).to(self.device, dtype)]
        parts += [(torch.zeros(p.numel(), dtype=dtype, device=self.device) if p.grad is None
                   else p.grad.reshape(-1).to(self.device, dtype)) for p in params]
        flat = self._reduce("sum", torch.cat(parts))
        offset = 2
        for p in params:
            p.grad = flat[offset:offset + p.numel()].view_as(p).to(p.device)
            offset += p.numel()
        return flat[1].to(loss.device, loss.dtype)

    def run_step(self, step, module, index):
        """This rank's share of one data-parallel step: ``step(agree=..., normalize=...)``
        (weights over the global batch), then gradients and loss summed over the
        ranks. Returns ``(loss, step's result)``.

        A step that raises on any rank raises the same error on every rank
        (:meth:`fail`, :meth:`peer_failed`); a failed communication raises
        :class:`PeerDiedError`.
        """
        try:
            result = step(agree=self.all_agree, normalize=self.normalizer(index))
            loss = self.sum_gradients(module, result.loss)
        except _PeerFailed:
            self.peer_failed()
        except PeerDiedError:
            raise  # no rank is left to tell
        except Exception as exc:
            self.fail(exc)
        return loss, result

    def fail(self, exc):
        """This rank's step raised ``exc``: join the collective the other ranks wait
        in with the failure flag set, then raise the agreed error."""
        stage = self._pending[0] if self._pending else "meta"  # the next step's first
        buf = self._stage_buffer(stage)
        buf[0] = 1
        self._collective(stage, buf)
        self._raise_agreed(exc, self.exchange(_describe(exc, self.rank)))

    def peer_failed(self):
        """Another rank's step raised: take part in the message exchange and raise
        its error here."""
        self._raise_agreed(None, self.exchange(None))

    # ---------------------------------------------------------------- helpers

    def _stage_buffer(self, stage):
        """Zeros of the size and dtype that ``stage``'s collective moves; element 0
        is the failure flag."""
        if stage == "verify":
            return torch.zeros(2, dtype=torch.float64, device=self.device)
        if stage == "meta":
            return torch.zeros(2 + 2 * self._shard_capacity, dtype=torch.float64,
                               device=self.device)
        params = [p for p in self._module.parameters() if p.requires_grad]
        dtype = params[0].dtype if params else torch.get_default_dtype()
        return torch.zeros(2 + sum(p.numel() for p in params), dtype=dtype,
                           device=self.device)

    def _global(self, rank):
        if self.group is None:
            return rank
        return torch.distributed.get_global_rank(self.group, rank)

    def _collective(self, stage, tensor):
        if self._pending and self._pending[0] == stage:
            self._pending.pop(0)
        if stage == "meta":
            out = [torch.empty_like(tensor) for _ in range(self.world)]
            _communicating("gathering meta-gradients", torch.distributed.all_gather,
                           out, tensor, group=self.group)
            return torch.stack(out)
        _communicating(f"summing ({stage})", torch.distributed.all_reduce, tensor,
                       group=self.group)
        return tensor

    def _gather(self, stage, tensor):
        rows = self._collective(stage, tensor.to(self.device))
        if bool((rows[:, 0] != 0).any()):
            raise _PeerFailed
        return rows

    def _reduce(self, stage, tensor):
        out = self._collective(stage, tensor.to(self.device))
        if bool(out[0] != 0):
            raise _PeerFailed
        return out

    def _raise_agreed(self, exc, reports):
        failed = [r for r in reports if r is not None]
        if not failed:  # this rank alone knows nothing of a failure: should not happen
            raise RuntimeError("a rank reported a failure but sent no message") from exc
        kind, message, rank = failed[0]
        text = f"{message} (raised on rank {rank} of {self.world})"
        try:
            error = kind(text)
        except Exception:  # an exception class that wants other arguments
            error = RuntimeError(f"{kind.__name__}: {text}")
        raise error from exc


def agreed():
    """In a data-parallel fit, an error before training on any rank is raised on
    every rank (:meth:`Group.agreed`), so none waits for the others in the first
    step; a null context on one process."""
    group = current_group()
    return contextlib.nullcontext() if group is None else group.agreed()


def shared_seed(group, seed):
    """Rank 0's seed on every rank (drawn first when the fit has none): the ranks
    must draw the same batches."""
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    return group.broadcast(seed)


def notify_ranks(net, run, notify, method_name, cb_kwargs):
    """``net.notify`` in a data-parallel fit: only rank 0 runs the callbacks that
    print, write files or warn (``net.rank_zero_callbacks``), and an exception from
    a callback stops every rank.

    ``notify``: skorch's ``NeuralNet.notify`` bound to ``net``. ``run``: the fit's
    state. A callback can raise on one rank alone, where the others are not
    waiting for it: the exception is held (``run.failure``) until this rank's next
    collective, which it joins with a failure flag: the first of the next training
    step, or the flag every rank all-reduces after ``on_epoch_end`` and
    ``on_train_end`` (:meth:`Group.settle`; one small collective per epoch, none
    per step). Every rank then raises the error, naming the rank.
    """
    settles = method_name in ("on_epoch_end", "on_train_end")
    interrupted = None
    try:
        if run.group.rank == 0:
            notify(method_name, **cb_kwargs)
        else:
            getattr(net, method_name)(net, **cb_kwargs)
            for _, cb in net.callbacks_:
                if not isinstance(cb, net.rank_zero_callbacks):
                    getattr(cb, method_name)(net, **cb_kwargs)
    except Exception as exc:
        if run.failure is None:
            run.failure = exc
    except KeyboardInterrupt as exc:  # skorch's EarlyStopping, in on_epoch_end
        if not settles:
            raise
        interrupted = exc
    if settles and run.group.settle(run.failure, interrupted is not None):
        raise interrupted if interrupted is not None else KeyboardInterrupt


def _describe(exc, rank):
    return (type(exc), str(exc), rank)


class ShardedBatches(torch.utils.data.Sampler):
    """A batch sampler that yields this rank's shard of every global batch.

    The global batches are those one process would draw (the same permutation on
    every rank, from the shared seed), so a torch ``Dataset`` is read only where a
    rank trains.

    Parameters
    ----------
    n : int
        Rows in the dataset.
    batch_size : int
        The global batch.
    shuffle : bool
    random_state : numpy.random.RandomState or None
        Draws the permutation each epoch (seeded alike on every rank); None:
        numpy's global generator (an unseeded fit on one process).
    rank, world : int
    """

    def __init__(self, n, batch_size, *, shuffle, random_state, rank, world):
        self.n, self.batch_size, self.shuffle = n, batch_size, shuffle
        self.random_state, self.rank, self.world = random_state, rank, world

    def __len__(self):
        return -(-self.n // self.batch_size)

    def __iter__(self):
        order = (check_random_state(self.random_state).permutation(self.n) if self.shuffle
                 else np.arange(self.n))
        for start in range(0, self.n, self.batch_size):
            rows = order[start:start + self.batch_size]
            lo, hi = shard_bounds(len(rows), self.rank, self.world)
            yield rows[lo:hi].tolist()
