"""Speed and memory of L2RW against plain training, all measured in one run.

Three parts, each interleaved (round-robin over the variants inside every repeat, the
starting variant rotating from repeat to repeat, so machine noise hits all alike) and
reported as medians over the repeats:

1. **Time per training step**, compute only: pre-made tensors, no skorch loop, every
   variant followed by the same ``torch.optim.SGD`` step. Variants: plain training
   (forward, mean loss, backward), ``reference_step``, ``jvp_step``, ``ghost_step`` and
   "auto" (the computation ``choose_meta_gradient(module, "auto")`` picks), on an MLP
   54-256-256-7 at batch 128 with clean batch 32 and 128, and on a LeNet CNN at batch
   64 with clean batch 64.
2. **Whole ``fit`` wall time**: skorch's ``NeuralNetClassifier`` (its default data
   path) against ``sk_l2rw.L2RWClassifier`` ("auto"), eager and ``compile=True``, 5 epochs of 50,000 x 54
   generated rows, batch 128, same MLP, criterion, optimizer and learning rate.
3. **Peak memory of one training step** per computation, at batch 1024 (clean batch
   128), for an MLP 512-1024-512-10 (1,055,242 parameters), in bytes beyond what was
   allocated when the step began (model, data, nothing else).

Writes ``speed.md``, its rows ``speed.json`` (the three parts, with the
configuration, the device and the run's record) and ``speed.png``
(``speed_cuda.*`` with ``--device cuda``) into ``--out`` (default ``results/``; a
``--smoke`` run writes into a new temporary folder unless given one). ``--render
JSON`` rebuilds the report (not the chart) from the rows. The chart needs
matplotlib (optional; skipped with a message otherwise).

Usage::

    python -m benchmarks.speed [--quick | --smoke] [--device cpu|cuda] [--repeats N]
                               [--out benchmarks/results] [--render JSON]
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.environment import (add_out_argument, add_render_argument, run_folder,
                                    study_command)
from benchmarks.common.speed_run import measure, render, report_name, write_chart
from benchmarks.common.timing import full_config, quick_config, smoke_config


def main(argv=None):
    """The command line (see the module's docstring).

    Returns
    -------
    dict or pathlib.Path
        The rows of a run (the three parts), or with ``--render`` the rebuilt
        report's path (:func:`benchmarks.environment.study_command`).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="fewer repeats, shorter blocks, 10,000 rows x 2 epochs "
                           "for the fit (under a minute)")
    size.add_argument("--smoke", action="store_true",
                      help="every part at tiny sizes (seconds; CI)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=None,
                        help="repeats of the per-step timing and of the fits "
                             "(default 15 and 5; quick 3 and 1); memory, which is "
                             "deterministic, uses at most 3")
    add_out_argument(parser)
    add_render_argument(parser, "speed.md or speed_cuda.md")

    def measure_run(args):
        if args.device == "cuda" and not torch.cuda.is_available():
            parser.error("--device cuda: CUDA is not available")
        cfg = (smoke_config() if args.smoke else quick_config() if args.quick
               else full_config())
        if args.repeats is not None:
            if args.repeats < 1:
                parser.error("--repeats must be at least 1")
            cfg.step_repeats = args.repeats
            cfg.fit_repeats = args.repeats
            cfg.mem_repeats = min(cfg.mem_repeats, args.repeats)
        return measure(cfg, args.device)

    # A smoke run writes into a new temporary folder (its chart too), as it did
    # before the move onto study_command; --render rebuilds the report alone.
    return study_command("speed", parser, argv, render, measure_run,
                         beside=write_chart, name=lambda args: report_name(args.device),
                         folder=lambda args: run_folder(args.out, args.smoke, "speed"))


if __name__ == "__main__":
    main()
