"""The common base of the studies: what two studies share lives here, once.

``baselines``: the one setting of every net, the timer and seeding, and the fit of
every method and baseline that the studies compare (HGB, plain and L2RW nets,
cleanlab, GLC, IRBL, ``ReweightedClassifier``, ``TrustedClassifier``). A study
imports this package, ``sk_l2rw`` and third-party code; the move of the other
shared pieces here continues.
"""
