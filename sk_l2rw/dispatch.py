"""Which exact computation of the meta-gradients runs, in one place.

``meta_gradient="auto"`` starts from the fastest computation the module allows
(:func:`choose_meta_gradient`), checks ghost against jvp on the first batch of the
fit, and falls back to the paper's double back-propagation when ``torch.func``
cannot run the module. With ``compile=True`` the ghost step runs compiled
(:func:`sk_l2rw.ghost.compiled_ghost_step`), checked against the eager step on the
first batch. :class:`Computation` holds these decisions for one fit and runs every
step through it.
"""

import warnings
from collections.abc import Mapping

import torch

from sk_l2rw import ghost
from sk_l2rw.exceptions import FallbackWarning
from sk_l2rw.meta_gradient import jvp_meta_gradients, jvp_step, plain_step, reference_step

__all__ = ["STEPS", "choose_meta_gradient", "Computation"]


def _disagreement(fast, exact):
    """Why the compiled step's meta-gradients are not the eager step's up to float
    rounding, or None. A compiler can compute wrongly; this catches it before the
    step trains anything."""
    scale = float(exact.abs().max())
    if torch.allclose(fast, exact, rtol=1e-4, atol=1e-5 * scale):
        return None
    return (f"the compiled step's meta-gradients differ from the eager step's by up "
            f"to {float((fast - exact).abs().max()):.3g} (largest {scale:.3g})")


def _rng_state(device):
    cuda = torch.device(device).type == "cuda"
    return torch.get_rng_state(), (torch.cuda.get_rng_state(device) if cuda else None), device


def _set_rng_state(state):
    cpu, cuda, device = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, device)


def _all_dense(X):
    """Whether ``X`` (a tensor or a mapping of them) has no sparse tensor: the
    compiler traces dense tensors only."""
    parts = X.values() if isinstance(X, Mapping) else (X,)
    return not any(t.is_sparse for t in parts)

STEPS = {
    "reference": reference_step,
    "jvp": jvp_step,
    "ghost": ghost.ghost_step,
    "plain": plain_step,
}


def choose_meta_gradient(module, requested):
    """The computation to run for ``requested`` on ``module``.

    ``"auto"`` takes ``"ghost"`` when every layer with trainable parameters is
    supported and rows are independent, else ``"jvp"`` (which itself falls back to
    ``"reference"`` when ``torch.func`` cannot run the module). An explicit
    ``"ghost"`` on an unsupported module is an error that names the layers.

    Returns
    -------
    str
    """
    if requested in ("ghost", "auto"):
        bad = ghost.unsupported_layers(module)
        if not bad:
            return "ghost"
        if requested == "ghost":
            raise ValueError(
                "meta_gradient='ghost' cannot handle these layers: "
                f"{', '.join(bad)}; use meta_gradient='auto' or 'jvp'")
        return "jvp"
    return requested


class Computation:
    """The computation of one fit: chosen once, revised at most twice by "auto".

    Parameters
    ----------
    module : torch.nn.Module
    requested : {"auto", "ghost", "jvp", "reference"}
    has_clean : bool
        Without a clean set the step is plain training.
    compile_kwargs : dict or None
        ``torch.compile``'s keyword arguments to compile the ghost step with; None
        runs it eagerly.

    Attributes
    ----------
    method : str
        What runs now: "ghost", "jvp", "reference" or "plain".
    """

    def __init__(self, module, requested, has_clean, compile_kwargs=None):
        self.requested = requested
        self.method = choose_meta_gradient(module, requested) if has_clean else "plain"
        # "auto" checks its choice of ghost once, on the first batch.
        self._verify = self.method == "ghost" and requested == "auto"
        # The compiled step is checked against the eager one on its first batch.
        self._compiled = (ghost.compiled_ghost_step(compile_kwargs)
                          if compile_kwargs is not None and self.method == "ghost" else None)
        self._check_compiled = True

    @property
    def verifies_next(self):
        """Whether the next step first checks ghost against jvp ("auto")."""
        return self._verify

    def step(self, module, loss_fn, X, y, X_clean, y_clean, *, zero_grad, agree=None,
             **kwargs):
        """One training step (arguments of :func:`sk_l2rw.meta_gradient.reference_step`).

        ``zero_grad`` clears the parameters' gradients before a fallback reruns the
        step; ``agree(ok)`` (a data-parallel fit's) turns this rank's check of ghost
        into the verdict of all ranks; ``kwargs`` are the step's keyword arguments.
        """
        if self._verify:
            self._verify = False
            agrees = self._ghost_agrees(module, loss_fn, X, y, X_clean, y_clean, **kwargs)
            if agree is not None:
                agrees = agree(agrees)
            if not agrees:
                warnings.warn(
                    "meta_gradient='auto': the layer-wise computation disagreed with "
                    "the forward-mode one on this module (a parameter used outside "
                    "its layer, e.g. F.linear(x, self.layer.weight)?); using 'jvp'",
                    FallbackWarning, stacklevel=3)
                self.method = "jvp"
        if (self.method == "ghost" and self._compiled is not None and agree is None
                and kwargs.get("normalize") is None and _all_dense(X) and _all_dense(X_clean)):
            result = self._compiled_step(module, loss_fn, X, y, X_clean, y_clean,
                                         zero_grad=zero_grad, **kwargs)
            if result is not None:
                return result
        try:
            return STEPS[self.method](module, loss_fn, X, y, X_clean, y_clean, **kwargs)
        except (RuntimeError, NotImplementedError):
            # torch.func cannot run every module; "auto" then takes the paper's route.
            if not (self.method == "jvp" and self.requested == "auto"):
                raise
            self.method = "reference"
            zero_grad()
            return reference_step(module, loss_fn, X, y, X_clean, y_clean, **kwargs)

    def _compiled_step(self, module, loss_fn, X, y, X_clean, y_clean, *, zero_grad,
                       normalize=None, **kwargs):
        """The compiled ghost step, or None (and eager from here on) when it fails
        or, on the first batch, disagrees with the eager step."""
        state, exact = _rng_state(y.device), None
        if self._check_compiled:
            self._check_compiled = False
            # The eager check draws the same random numbers (dropout) as the
            # compiled step (inductor's fallback_random), from the same state.
            exact = ghost.ghost_step(module, loss_fn, X, y, X_clean, y_clean,
                                     update=False, **kwargs).meta_gradients
            _set_rng_state(state)
        try:
            result = self._compiled(module, loss_fn, X, y, X_clean, y_clean, **kwargs)
            problem = None if exact is None else _disagreement(result.meta_gradients,
                                                               exact)
        except Exception as exc:  # torch.compile's errors have many types
            problem = f"torch.compile failed ({type(exc).__name__}: {exc})"
        if problem is None:
            return result
        warnings.warn(f"compile=True: {problem}; the L2RW step runs eagerly",
                      FallbackWarning, stacklevel=4)
        self._compiled = None
        zero_grad()
        _set_rng_state(state)
        return None

    @staticmethod
    def _ghost_agrees(module, loss_fn, X, y, X_clean, y_clean, *, lr, forward_kwargs,
                      clean_weights=None, clean_share=0.0, normalize=None):
        """Ghost against jvp on one batch, with dropout off in both.

        Ghost can only see parameters used inside their own layer; a parameter a
        parent module uses directly would be missed silently. One comparison on the
        first batch catches that.
        """
        was_training = module.training
        module.eval()
        try:
            fast = ghost.ghost_step(module, loss_fn, X, y, X_clean, y_clean, lr=lr,
                                    forward_kwargs=forward_kwargs,
                                    clean_weights=clean_weights,
                                    update=False).meta_gradients
            try:
                exact = jvp_meta_gradients(module, loss_fn, X, y, X_clean, y_clean, lr=lr,
                                           forward_kwargs=forward_kwargs,
                                           clean_weights=clean_weights)
            except (RuntimeError, NotImplementedError):
                return True  # nothing to compare with; trust the layer rules
        finally:
            module.train(was_training)
        scale = exact.abs().max()
        return bool(torch.allclose(fast, exact, rtol=1e-3, atol=float(1e-4 * scale)))
