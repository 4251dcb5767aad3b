"""MIR examples for lotterytrim: the paper's five model families, their data and their errors.

* :mod:`examples.mir.models`: model builders and the ``TASKS`` registry (``build_model``).
* :mod:`examples.mir.synth`: seeded synthetic datasets (``make_dataset``).
* :mod:`examples.mir.datasets`: loaders for NSynth, VocalSet, URMP/MedleyDB, Isophonics
  chords and IDMT-SMT-Drums already on disk.
* :mod:`examples.mir.features`: the features and targets the two share.
* :mod:`examples.mir.metrics`: the paper's task errors, computed with mir_eval.
"""
