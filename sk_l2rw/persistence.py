"""What an L2RW estimator keeps and restores: all-or-nothing snapshots, checkpoint
files written whole, the weight record beside the history, and pickling.

:class:`PersistenceMixin` overrides skorch's ``save_params``, ``load_params`` and
pickling for :class:`sk_l2rw.net.L2RWMixin`; :class:`Snapshot` is what a failed
``fit``/``partial_fit``/``load_params`` call restores.
"""

import contextlib
import copy
import os
import types
import uuid
import warnings

import cloudpickle
import numpy as np
import torch
from skorch.callbacks import Checkpoint
from skorch.history import History

from sk_l2rw.distributed import current_group
from sk_l2rw.runtime import resolve_device


def host_copy(state):
    """A copy of a state dict (or a nest of dicts, lists and tensors) with every
    tensor copied to host memory: a snapshot must not double what the device holds,
    and ``load_state_dict`` moves it back."""
    if torch.is_tensor(state):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        out = copy.copy(state)  # keeps the type and a module state dict's _metadata
        for key, value in state.items():
            out[key] = host_copy(value)
        return out
    if isinstance(state, (list, tuple)) and type(state) in (list, tuple):
        return type(state)(host_copy(value) for value in state)
    return copy.deepcopy(state)


#: What :meth:`L2RWMixin.save_params` appends to the history's file name for the
#: weight record.
WEIGHT_RECORD_SUFFIX = ".weights.npz"


def temporary_path(path):
    """A fresh name next to ``path`` (same folder, so renaming is atomic); the
    writer creates the file, with the permissions any new file gets."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")


def first_unreadable(net, args):
    """The first of the files ``load_params`` was given that does not load on its
    own, or None: where a failed load names the culprit."""
    files = {key: value for key, value in args.items()
             if key.startswith("f_") and isinstance(value, (str, os.PathLike))}
    checkpoint = args.get("checkpoint")
    if checkpoint is not None and "f_history" not in files and checkpoint.f_history:
        files["f_history"] = checkpoint.f_history_
    history = files.get("f_history")
    if isinstance(history, (str, os.PathLike)):
        if not _loads(history, lambda f: History.from_file(f)):
            return os.fspath(history)
        files["record"] = os.fspath(history) + WEIGHT_RECORD_SUFFIX
    if checkpoint is not None:
        # File names may be formatted from the checkpoint's history, as skorch
        # formats them after loading it.
        with contextlib.suppress(Exception):
            target = net
            if isinstance(history, (str, os.PathLike)):
                target = types.SimpleNamespace(history=History.from_file(history))
            files = {**checkpoint.get_formatted_files(target), **files}

    def load_record(path):
        with np.load(path, allow_pickle=False) as record:
            [record[name] for name in record.files]

    def load_state(path):
        if args.get("use_safetensors"):
            from safetensors.torch import load_file
            return load_file(path)
        return torch.load(path, map_location="cpu", weights_only=True)

    for key, path in files.items():
        if key == "f_history" or not isinstance(path, (str, os.PathLike)):
            continue
        if not _loads(path, load_record if key == "record" else load_state):
            return os.fspath(path)
    return None


def _loads(path, load):
    """Whether ``load(path)`` succeeds; a missing file is not a damaged one."""
    if not os.path.exists(path):
        return True
    try:
        load(path)
    except Exception:
        return False
    return True


def _is_lazy(module):
    return any(torch.nn.parameter.is_lazy(t)
               for t in (*module.parameters(), *module.buffers()))


#: Objects a callback may hold whose state changes in place during training (the
#: scheduler of skorch's LRScheduler): their state dicts are part of a snapshot.
_STATEFUL = (torch.nn.Module, torch.optim.lr_scheduler.LRScheduler,
             torch.optim.lr_scheduler.ReduceLROnPlateau)


class Snapshot:
    """What a ``fit``/``partial_fit`` call can change, taken when the call starts.

    :meth:`restore` puts the estimator back as it was: its attributes (a shallow
    copy of ``__dict__``: the call replaces objects rather than editing them,
    except for those below), the parameters and buffers of its modules and
    criteria and the user's module or criterion instance, the optimizers' state,
    the rows of the history, the weight record, and the attributes of the
    callbacks (and the state of their schedulers). Tensors are copied to host
    memory once; nothing else is deep-copied, so the cost is one copy of the
    parameters and optimizer state per call (measured in CHANGES.md).
    """

    def __init__(self, net):
        self.net = net
        self.attributes = dict(net.__dict__)
        initialized = net.__dict__.get("initialized_", False)
        candidates = [net.module, net.criterion]
        if initialized:
            candidates += [getattr(net, name + "_", None)
                           for name in net._modules + net._criteria]
        # A lazy module not yet materialised has no values to copy; the one time
        # this matters (a failed first fit of a module instance) it stays
        # materialised, with the shapes the data gave it.
        self.modules = [
            (m, host_copy(m.state_dict()), [(sub, sub.training) for sub in m.modules()])
            for m in _distinct(candidates)
            if isinstance(m, torch.nn.Module) and not _is_lazy(m)]
        self.optimizers = [
            (opt, host_copy(opt.state_dict())) for opt in _distinct(
                getattr(net, name + "_", None) for name in net._optimizers)
            if initialized and isinstance(opt, torch.optim.Optimizer)]
        history = net.__dict__.get("history_")
        self.history = None if history is None else (history, [dict(row) for row in history])
        rows = net.__dict__.get("_weight_rows_")
        self.weight_rows = None if rows is None else (rows, list(rows))
        callbacks = [cb for _, cb in (net.__dict__.get("callbacks_") or [])]
        callbacks += [cb[1] if isinstance(cb, tuple) else cb
                      for cb in (net.callbacks if isinstance(net.callbacks, list) else [])]
        self.callbacks = [
            (cb, dict(vars(cb)), [(value, host_copy(value.state_dict()))
                                  for value in vars(cb).values()
                                  if isinstance(value, _STATEFUL)])
            for cb in _distinct(callbacks) if hasattr(cb, "__dict__")]

    def restore(self):
        """Put the estimator back as it was when the snapshot was taken."""
        net = self.net
        net.__dict__.clear()
        net.__dict__.update(self.attributes)
        for module, state, modes in self.modules:
            module.load_state_dict(state)
            for sub, training in modes:
                sub.training = training
        for optimizer, state in self.optimizers:
            optimizer.load_state_dict(state)
        for saved in (self.history, self.weight_rows):
            if saved is not None:
                target, items = saved
                target.clear()
                target.extend(items)
        for cb, attributes, states in self.callbacks:
            vars(cb).clear()
            vars(cb).update(attributes)
            for value, state in states:
                value.load_state_dict(state)


def _distinct(objects):
    """``objects`` without None and without repeats (by identity), in order."""
    seen, out = set(), []
    for obj in objects:
        if obj is not None and id(obj) not in seen:
            seen.add(id(obj))
            out.append(obj)
    return out


def check_checkpoint_folders(net):
    """Every folder a checkpoint callback writes to takes a file, or the fit
    stops before training: skorch's ``Checkpoint`` reports a failed save only
    in its log (with ``verbose``), and a fit would run on without checkpoints.

    Raises
    ------
    PermissionError or OSError
        Naming the folder.
    """
    group = current_group()
    if group is not None and group.rank != 0:
        return  # rank 0 alone writes checkpoints (rank_zero_callbacks)
    for _, cb in net.callbacks_:
        for checkpoint in (cb, getattr(cb, "checkpoint_", None)):
            if not isinstance(checkpoint, Checkpoint):
                continue
            folder = checkpoint.dirname or "."
            probe = temporary_path(os.path.join(folder, "probe"))
            try:
                with open(probe, "x"):
                    pass
                os.remove(probe)
            except OSError as exc:
                raise type(exc)(
                    exc.errno, f"the checkpoint folder {folder!r} of callback "
                    f"{type(checkpoint).__name__} cannot be written: "
                    f"{exc.strerror or exc}", folder) from exc


@contextlib.contextmanager
def unchanged_on_error(net):
    """Undo validation and re-initialization when anything before training fails
    (a KeyboardInterrupt included: nothing has trained yet).

    Yields the :class:`Snapshot` of the estimator as the call found it, which
    ``L2RWMixin._train`` restores when training fails.
    """
    before = Snapshot(net)
    try:
        yield before
    except BaseException:
        before.restore()
        raise


class PersistenceMixin:
    """skorch's saving, loading and pickling made all or nothing, with the weight
    record (``sample_weights_``) kept beside the history. A base of
    :class:`sk_l2rw.net.L2RWMixin`; it relies on the estimator's ``device_``,
    ``_seed_``, ``_weight_rows_`` and ``_device_resolved``."""

    @property
    def sample_weights_(self):
        """Weights every row received, shape (n_epochs, n_samples).

        Each batch's weights sum to 1 (or are all 0); NaN where a row did not train
        in that epoch. Rows follow the order of ``X`` given to ``fit``.
        """
        rows = getattr(self, "_weight_rows_", None)
        if not rows:
            raise AttributeError(
                "sample_weights_ exists after at least one completed epoch of fit")
        widths = {len(r) for r in rows}
        if len(widths) > 1:
            raise AttributeError(
                "sample_weights_ cannot be stacked: partial_fit calls used data sets "
                f"of different sizes {sorted(widths)}")
        return np.stack(rows)

    def save_params(self, f_params=None, f_optimizer=None, f_criterion=None,
                    f_history=None, use_safetensors=False, **kwargs):
        """As skorch's ``save_params``, with each file written whole or not at all,
        and the weight record saved next to the history.

        Every file given as a path is written under a temporary name in its folder
        and renamed over the target once all are written, so a fit killed while
        saving (or a full disk) never leaves a half-written file under a name that
        ``load_params`` would take. With ``f_history`` a path, the weight record
        (``sample_weights_``) and the seed of the epochs go to
        ``f_history + ".weights.npz"``, which ``load_params`` reads back with the
        history: what resuming from skorch's ``Checkpoint`` needs.

        Raises
        ------
        OSError
            A file cannot be written; the message names its folder. No target is
            changed.
        """
        targets = dict(f_params=f_params, f_optimizer=f_optimizer,
                       f_criterion=f_criterion, f_history=f_history, **kwargs)
        paths = {key: os.fspath(value) for key, value in targets.items()
                 if isinstance(value, (str, os.PathLike))}
        temporary = {}
        try:
            for key, path in paths.items():
                temporary[key] = temporary_path(path)
            record = None
            if "f_history" in paths:
                record = paths["f_history"] + WEIGHT_RECORD_SUFFIX
                temporary["record"] = temporary_path(record)
                self._save_weight_record(temporary["record"])
            super().save_params(**{**targets, **{k: v for k, v in temporary.items()
                                                 if k != "record"}},
                                use_safetensors=use_safetensors)
            for key, path in paths.items():
                os.replace(temporary.pop(key), path)
            if record is not None:
                os.replace(temporary.pop("record"), record)
        except OSError as exc:
            folder = os.path.dirname(os.path.abspath(exc.filename or
                                                     next(iter(paths.values()), ".")))
            raise type(exc)(exc.errno, f"cannot write the checkpoint files in "
                            f"{folder!r}: {exc.strerror or exc}", exc.filename) from exc
        finally:
            for path in temporary.values():
                with contextlib.suppress(OSError):
                    os.remove(path)

    def _save_weight_record(self, path):
        rows = getattr(self, "_weight_rows_", None) or []
        with open(path, "wb") as f:
            np.savez(f, seed=np.array(-1 if self._seed_ is None else self._seed_),
                     **{f"epoch{i}": row for i, row in enumerate(rows)})

    def load_params(self, f_params=None, f_optimizer=None, f_criterion=None,
                    f_history=None, checkpoint=None, use_safetensors=False, **kwargs):
        """As skorch's ``load_params``, with ``device="auto"`` resolved, the weight
        record restored with the history, and all or nothing.

        With a history (``f_history``, or a ``checkpoint`` that saves one) whose
        weight record :meth:`save_params` wrote next to it, ``sample_weights_`` and
        the seed of the epochs come back too, so that ``partial_fit`` continues the
        fit where the checkpoint left it (see the user guide's "Resuming from a
        checkpoint").

        Raises
        ------
        ValueError
            A file is truncated or corrupted, or the weight record does not belong
            to the history; the message names the file. The estimator is then as
            it was before the call.
        """
        if not hasattr(self, "device_"):
            self.device_ = resolve_device(self.device)
        before = Snapshot(self)
        args = dict(f_params=f_params, f_optimizer=f_optimizer, f_criterion=f_criterion,
                    f_history=f_history, checkpoint=checkpoint,
                    use_safetensors=use_safetensors, **kwargs)
        try:
            with self._device_resolved():
                super().load_params(**args)
            history = f_history
            if history is None and checkpoint is not None:
                history = checkpoint.f_history_
            if isinstance(history, (str, os.PathLike)):
                self._load_weight_record(os.fspath(history))
        except Exception as exc:
            before.restore()
            # Only a file that does not load on its own is called corrupted; any
            # other error (a state dict of another module) keeps its own message.
            culprit = first_unreadable(self, args)
            if culprit is None:
                raise
            raise ValueError(
                f"cannot load {culprit!r}: the file is truncated or corrupted "
                f"({type(exc).__name__}: {exc}); the estimator is unchanged") from exc

    def _load_weight_record(self, history):
        path = history + WEIGHT_RECORD_SUFFIX
        if not os.path.exists(path):
            warnings.warn(
                f"no weight record {path!r} next to the history: sample_weights_ "
                "holds only the epochs trained after this load", UserWarning,
                stacklevel=3)
            self._weight_rows_ = []
            return
        with np.load(path, allow_pickle=False) as record:
            rows = [record[f"epoch{i}"] for i in range(len(record.files) - 1)]
            seed = int(record["seed"])
        if len(rows) != len(self.history):
            raise ValueError(
                f"the weight record {path!r} holds {len(rows)} epochs but the history "
                f"{history!r} holds {len(self.history)}: they come from different "
                "checkpoints")
        self._weight_rows_ = rows
        # The epochs' randomness derives from this seed and the epoch's number.
        self._seed_ = None if seed < 0 else seed

    def __getstate__(self):
        """skorch's state, with the torch parts pickled by cloudpickle.

        skorch pickles the module, criterion and optimizer with plain pickle, which
        refers to a module class by its import path. A class defined in a notebook
        (``__main__``) then cannot be unpickled in a worker process (GridSearchCV
        with ``n_jobs=2``); cloudpickle stores such classes by value.
        """
        state = self.__dict__.copy()
        torch_parts = {
            key: state.pop(key) for key in list(state)
            if isinstance(key, str)
            and any(key.startswith(p) for p in self.cuda_dependent_attributes_)}
        state["__cuda_dependent_attributes__"] = cloudpickle.dumps(torch_parts)
        return state

    def __setstate__(self, state):
        requested = state["device"]
        if requested == "auto":
            state["device"] = state.get("device_") or resolve_device("auto")
        super().__setstate__(state)
        # skorch maps CUDA tensors to the CPU when no GPU is present.
        self.device_ = str(self.__dict__["device"])
        self.__dict__["device"] = requested
        if requested == "auto":
            self.device_ = (self.device_ if self.device_ != "cuda" or
                            torch.cuda.is_available() else "cpu")
