"""The benchmarks of sk-l2rw: one module per study, run from the repository root as

    python -m benchmarks.<study> [--smoke] [options]

(``quality``, ``tables``, ``tables_balance``, ``tables_average``, ``label_issues``,
``speed``, ``compiled_step``, ``scale``, ``sparse_memory``, ``categorical``,
``clean_loss_warning``, ``imbalance_steps``, ``last_layers``, ``clean_batch``,
``gpu_check``, ``fuzz``). Each
writes its report under ``benchmarks/results/``; ``--smoke`` runs it on tiny data
without downloading (CI). Shared pieces: ``common`` (the base the studies share:
``common.baselines`` fits every method and baseline once; ``common.protocol``,
``common.methods``, ``common.runner`` and ``common.timing`` hold the label-noise
protocol, its fits, the task runner and the timing helpers), ``datasets`` (real data sets from package
registries, cached), ``environment`` (the machine, versions and command a report
names; the rows' JSON next to a report, from which ``--render`` rebuilds it;
``study_command``, a study's parse / ``--render`` / run / write steps written once),
``models`` (the networks), ``ports`` (the public ways of computing L2RW that
``speed`` times), ``report`` (the tables, "mean ± std" cells and paired ratios every
report is written with).
"""
