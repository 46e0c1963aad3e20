"""The common base of the studies: what two studies share lives here, once.

- ``baselines``: the one setting of every net, the timer and seeding, and the fit of
  every method and baseline that the studies compare (HGB, plain and L2RW nets,
  cleanlab, GLC, IRBL, ``ReweightedClassifier``, ``TrustedClassifier``).
- ``protocol``: the label-noise protocol (``Setting``, ``quality``'s ``Config`` and its
  sizes, the data of a seed, clean and noisy splits, the 4-vs-9 and collapse subsets)
  and the tables protocol (``TablesConfig``, per-class and audit clean sets).
- ``methods``: the nets of that protocol and the fit of each method on a cell's rows.
- ``runner``: running tasks in one or several processes, with thread limits.
- ``speed_run``: the speed study's three parts and report, which ``speed`` and
  ``gpu_check`` both run.
- ``timing``: what the timing studies share (step cases, generated data, quiet
  repeats, timed blocks, other processes' load, CPU peak memory).

A study imports this package, the other shared modules of ``benchmarks`` (``datasets``,
``environment``, ``models``, ``ports``, ``report``), ``sk_l2rw`` and third-party code;
never another study (``tests/test_imports.py``).
"""
