"""The paper's MIR reproduction for lotterytrim: six tasks, their models, data, runs and errors,
and a generative example (``ddsp``, docs/generative.md).

Models:

* :mod:`examples.mir.networks`: the five model families, built from plain PyTorch layers.
* :mod:`examples.mir.ddsp`: the DDSP decoder, its differentiable synthesizer and spectral loss.
* :mod:`examples.mir.models`: the ``TASKS`` table (sizes, inputs, losses) and ``build_model``.

Data:

* :mod:`examples.mir.features`: the features, targets and splits every data source shares.
* :mod:`examples.mir.audio`: signal helpers the synthetic and the rendered data share.
* :mod:`examples.mir.synth`: seeded synthetic datasets of every task (``make_dataset``).
* :mod:`examples.mir.synth_pitch`: synthetic pitch data (CREPE frames of harmonic tones).
* :mod:`examples.mir.synth_tones`: synthetic instrument and singing data.
* :mod:`examples.mir.synth_chords`: synthetic chord data (CQT patches of voiced triads).
* :mod:`examples.mir.synth_drums`: synthetic drum and onset data.
* :mod:`examples.mir.synth_ddsp`: synthetic ddsp data (harmonic tones on a random f0 contour).
* :mod:`examples.mir.ddsp_features`: ddsp's loudness feature and the f0 check of its audio.
* :mod:`examples.mir.soundfont`: a General MIDI SoundFont renderer (notes to audio).
* :mod:`examples.mir.render`: data of every task rendered from a SoundFont, cached on disk.
* :mod:`examples.mir.render_pitch`: rendered pitch data, with held-out timbres.
* :mod:`examples.mir.render_tones`: rendered instrument and singing data.
* :mod:`examples.mir.render_chords`: rendered chord data.
* :mod:`examples.mir.render_drums`: rendered drum and onset data.
* :mod:`examples.mir.render_ddsp`: rendered ddsp phrases (violin, trumpet, flute).
* :mod:`examples.mir.cache`: the on-disk cache of rendered splits.
* :mod:`examples.mir.datasets`: what the real-dataset loaders share (audio reading,
  ``DatasetNotFoundError``).
* :mod:`examples.mir.datasets_clips`: loaders for NSynth, VocalSet and URMP/MedleyDB already
  on disk.
* :mod:`examples.mir.datasets_annotated`: loaders for Isophonics chords and IDMT-SMT-Drums
  already on disk.
* :mod:`examples.mir.splits`: train / val / test splits of each data source, cached per process.

Training, runs and results:

* :mod:`examples.mir.stopping`: early stopping on validation error.
* :mod:`examples.mir.training`: one task's training and evaluation for ``lt.Lottery``.
* :mod:`examples.mir.metrics`: the paper's task errors, computed with mir_eval.
* :mod:`examples.mir.uncertainty`: how noisy a test error is.
* :mod:`examples.mir.profiles`: the run profiles (paper, quick, tiny).
* :mod:`examples.mir.run`: the command that runs a task's lottery (``python -m examples.mir.run``).
* :mod:`examples.mir.row_files`: result rows, exported from run directories and read back.
* :mod:`examples.mir.tables`: the results tables of docs/results.md, built from the rows.
* :mod:`examples.mir.summarize`: the command that rebuilds docs/results.md from the rows
  (``python -m examples.mir.summarize``).
"""
