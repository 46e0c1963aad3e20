"""Where and how an L2RW estimator computes: its device, its dtype and its seeds.

Every epoch's randomness depends only on the seed and the epoch's number, so a run
resumed from a checkpoint repeats the epochs it has not yet done.
"""

import contextlib

import numpy as np
import torch
from sklearn.utils import check_random_state


def resolve_device(device):
    """``"auto"`` becomes ``"cuda"`` when CUDA is available, else ``"cpu"``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def module_dtype(net):
    """The floating dtype of the estimator's module (initialized, else the module
    instance given); torch's default dtype when there is none yet."""
    module = getattr(net, "module_", None)
    if module is None and isinstance(net.module, torch.nn.Module):
        module = net.module
    if module is not None:
        for p in module.parameters():
            if p.is_floating_point():
                return p.dtype
    return torch.get_default_dtype()


def seed_of(random_state):
    """The fit's seed from ``random_state``: None, the int itself, or for a
    RandomState one draw, so that the fit is reproducible from here."""
    if random_state is None:
        return None
    if isinstance(random_state, (int, np.integer)):
        return int(random_state)
    return int(check_random_state(random_state).randint(2 ** 31 - 1))


def derived_seed(seed, *key):
    """A seed for one purpose (initial weights, epoch e) from the fit's ``seed``."""
    return int(np.random.SeedSequence([seed, *key]).generate_state(1)[0])


@contextlib.contextmanager
def seeded(net, *key):
    """Inside: torch's RNG seeded for ``key`` from the fit's seed (``net._seed_``),
    or only saved; outside: as before. Nothing is touched without a seed."""
    if net._seed_ is None:
        yield
        return
    device = torch.device(net.device_)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if key:
            torch.manual_seed(derived_seed(net._seed_, *key))
        yield


@contextlib.contextmanager
def device_resolved(net):
    """Inside: ``net.device`` is the resolved ``net.device_``.

    skorch's own code moves tensors to ``self.device``; "auto" means nothing to
    torch, so the resolved device stands in while skorch code runs.
    """
    requested = net.device
    net.__dict__["device"] = net.device_
    try:
        yield
    finally:
        net.__dict__["device"] = requested
