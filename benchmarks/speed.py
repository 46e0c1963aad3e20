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

Writes ``speed.md`` and ``speed.png`` (``speed_cuda.*`` with ``--device cuda``) into
``--out``. The chart needs matplotlib (optional; skipped with a message otherwise).

Usage::

    python -m benchmarks.speed [--quick] [--device cpu|cuda] [--repeats N]
                               [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks.environment import run_folder
from benchmarks.common.speed_run import load_run, render, run
from benchmarks.common.timing import full_config, quick_config, smoke_config


def main(argv=None):
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
    parser.add_argument("--out", default=None,
                        help="output folder (default: benchmarks/results; a "
                             "--smoke run writes into a new temporary folder)")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="rebuild the report from the rows a run wrote (speed.json)")
    args = parser.parse_args(argv)
    args.out = str(run_folder(args.out, args.smoke, "speed"))
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    if args.render:
        out = Path(args.out) / args.render.with_suffix(".md").name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(load_run(args.render)))
        print(out)
        return out
    cfg = smoke_config() if args.smoke else quick_config() if args.quick else full_config()
    if args.repeats is not None:
        if args.repeats < 1:
            parser.error("--repeats must be at least 1")
        cfg.step_repeats = args.repeats
        cfg.fit_repeats = args.repeats
        cfg.mem_repeats = min(cfg.mem_repeats, args.repeats)
    run(cfg, args.out, args.device)
    print((Path(args.out) / ("speed_cuda.md" if args.device == "cuda"
                             else "speed.md")).read_text())


if __name__ == "__main__":
    main()
