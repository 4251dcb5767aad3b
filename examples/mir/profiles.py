"""The run profiles (``PROFILES``): ``paper``, ``quick`` and ``tiny``, each a :class:`Profile`.

Every value that differs per task is here, with the reason and the measurement behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import lotterytrim as lt

from .models import TASKS
from .profile_spec import EARLYBIRD_DEFAULTS, Profile, per_task

__all__ = ["EARLYBIRD_DEFAULTS", "PROFILES", "Profile"]


#: the generative example's own lottery: deeper levels, the recipe, magnitude (information,
#: ranked per frame, was screened on one replicate and lost at every level: docs/generative.md).
#: The default floor (a quarter of each layer's units) stops the last level at 7.5% of the
#: weights; a tenth reaches 5% but was behind it on validation from level 3 on (three
#: replicates each), so the floor stays the default
_DDSP_LOTTERY: Mapping[str, object] = MappingProxyType(
    {
        "amount": 0.45,
        "levels": 5,
        "methods": ("lrr",),
        "criteria": ("magnitude",),
        "criterion_options": {"information": {"positions": True}},
    }
)

PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        "paper": Profile(
            name="paper",
            description="the paper's protocol: paper-size models, 15 levels, 5 replicates",
            size="paper",
            levels=15,
            amount=0.3,
            replicates=5,
            methods=("trim", "finetune", "mask"),
            criteria=("magnitude", "activation", "batchnorm"),
            # the paper trains a fixed number of epochs, keeps the best-validation model and
            # rewinds to half of them: patience = the cap never stops a level early
            rewind_epochs=per_task(
                instrument=25, singing=25, pitch=25, chord=50, drum=25, onset=25, ddsp=25
            ),
            max_epochs=per_task(
                instrument=50, singing=50, pitch=50, chord=100, drum=50, onset=50, ddsp=50
            ),
            patience=per_task(
                instrument=50, singing=50, pitch=50, chord=100, drum=50, onset=50, ddsp=50
            ),
            # ddsp: 1,000 phrases of 4 s (about 67 minutes of audio)
            examples=per_task(
                instrument=8000,
                singing=4000,
                pitch=20000,
                chord=20000,
                drum=500,
                onset=500,
                ddsp=1000,
            ),
            epoch_examples=per_task(**dict.fromkeys(TASKS)),
            # ddsp: its synthesizer holds batch x harmonics x samples values
            batch_size=per_task(**{**dict.fromkeys(TASKS, 64), "ddsp": 16}),
            transpose=6,
            criterion_batches=16,
            # 15 levels of 30% go down to 0.5% of the weights: the default floor (a quarter of
            # each layer's units) would hold the steps past about 7% (docs/benchmarks.md)
            safeguards=MappingProxyType(lt.Safeguards(keep_floor=0.05).to_dict()),
        ),
        "quick": Profile(
            name="quick",
            description="rendered data, quick-size models trained to convergence, 6 levels",
            size="quick",
            levels=6,
            amount=0.3,
            replicates=3,
            # the unstructured mask lottery costs as much as trim and fine-tuning together on a
            # CPU; add it with --methods trim,finetune,mask
            methods=("trim", "finetune"),
            criteria=("magnitude",),
            # units ranked per layer where validation chose it over the global ranking: the
            # fine-tuned tickets' mean validation error over the levels, three replicates of
            # each scope (python -m benchmarks.scope; docs/selection.md, stage 10)
            task_scope=MappingProxyType(
                dict.fromkeys(("chord", "instrument", "singing", "pitch"), "local")
            ),
            # pitch: the quick CREPE's middle layers have 4 channels, and a quarter of them is
            # one; at least 3 units per layer (and a floor of 5%, so the wide first and last
            # layers go on shrinking) cut its two deepest levels' excess over the reference's
            # error by half or more, at smaller sizes, against the default floor on the same
            # three references; chosen on the mean validation error over the levels
            # (docs/retraining.md)
            min_units=per_task(**{**dict.fromkeys(TASKS, 1), "pitch": 3}),
            task_config=MappingProxyType(
                {
                    # ddsp: five levels of 45% reach 5% of the weights, as Diet did, retrained
                    # by learning-rate rewinding (the recipe of docs/retraining.md)
                    "ddsp": _DDSP_LOTTERY,
                    "pitch": MappingProxyType({"safeguards": {"keep_floor": 0.05}}),
                }
            ),
            # W_k a few epochs in and a patience of 8: measured on chord (docs/selection.md),
            # W_1 and patience 3 left trimmed tickets behind fine-tuning. Drum: W_k after epoch
            # 10, past its plateau, and a patience of 12; with W_4 and patience 8, two trim
            # levels stopped on the plateau (results/probes/drum-patience8.csv)
            rewind_epochs=per_task(**{**dict.fromkeys(TASKS, 4), "drum": 10}),
            # drum: a reference sits on a plateau (hi-hat learnt, kick and snare not) before it
            # finds the kick and the snare; batches of 64 at 5e-3 leave it by epoch 10 and flatten
            # by epoch 60 (probes in results/probes/references.csv). Pitch starts on one too
            # (error above 0.9 for 15-20 epochs): with a patience of 8 and the rate halved every
            # third flat epoch, tickets rewound to W_k stopped on it
            # ddsp: with a cap of 25 its levels were still improving at epochs 23-24
            max_epochs=per_task(
                instrument=50, singing=50, pitch=80, chord=60, drum=80, onset=50, ddsp=40
            ),
            patience=per_task(instrument=8, singing=8, pitch=15, chord=8, drum=12, onset=8, ddsp=8),
            # instrument and singing: 1,200 clips (600 to train) fit the 40-minute budget on
            # two cores; their probed references still reach a third of chance, flattened
            # (results/probes/references.csv); pitch: 2,000 frames (1,000 to train) fit it, and
            # its probed reference flattens before the cap at 0.40 test error
            # ddsp: 300 phrases of 2 s (150 to train, 10 minutes of audio), 64 of them an epoch
            # (6 s on one core); its reference trains 200 epochs (below)
            examples=per_task(
                instrument=1200,
                singing=1200,
                pitch=2000,
                chord=2500,
                drum=150,
                onset=150,
                ddsp=300,
            ),
            epoch_examples=per_task(
                instrument=None,
                singing=None,
                pitch=None,
                chord=None,
                drum=2048,
                onset=2048,
                ddsp=64,
            ),
            batch_size=per_task(
                instrument=32, singing=32, pitch=32, chord=32, drum=64, onset=32, ddsp=16
            ),
            fractions=(0.5, 0.15, 0.35),
            # drum: halved after 3 flat epochs, its reference is flat from about epoch 70 (0.075
            # validation, 0.072 test); after 6 it was still falling at 100 (docs/examples.md)
            plateau_patience=per_task(
                instrument=2, singing=2, pitch=6, chord=2, drum=3, onset=2, ddsp=3
            ),
            # drum's plateau lasts about 45 epochs at 1e-3, 20 at 3e-3 and 10 at 5e-3 (batches of
            # 64); pitch's likewise needs 5e-3 (docs/examples.md)
            lr=per_task(
                instrument=1e-3,
                singing=1e-3,
                pitch=5e-3,
                chord=1e-3,
                drum=5e-3,
                onset=1e-3,
                ddsp=1e-3,
            ),
            # drum: the reference alone halves its rate after 4 flat epochs, stops after 15 (cap
            # 100); with the levels' 3 and 12, two of three references stopped early (0.086 and
            # 0.099 validation; 0.077-0.079 with these). Probes: results/probes/references.csv.
            # The levels keep their own schedule, inside the time budget
            reference=per_task(
                **{
                    **{t: MappingProxyType({}) for t in TASKS},
                    "drum": MappingProxyType(
                        {"plateau_patience": 4, "patience": 15, "max_epochs": 100}
                    ),
                    # pitch: one of three references was still improving at the levels' cap
                    "pitch": MappingProxyType({"max_epochs": 120}),
                    # ddsp: at 1e-3 its validation loss still fell 1.5% over epochs 150-200
                    # (3e-3: higher all the way); results/probes/ddsp-reference-quick.csv
                    "ddsp": MappingProxyType(
                        {"max_epochs": 200, "patience": 20, "plateau_patience": 5}
                    ),
                }
            ),
            cap_real_data=True,
        ),
        "tiny": Profile(
            name="tiny",
            description="seconds per task: checks the loop, files and resume, not accuracy",
            size="tiny",
            levels=2,
            amount=0.3,
            replicates=1,
            methods=("trim", "finetune", "mask"),
            criteria=("magnitude",),
            rewind_epochs=per_task(**dict.fromkeys(TASKS, 0)),
            max_epochs=per_task(**dict.fromkeys(TASKS, 1)),
            patience=per_task(**dict.fromkeys(TASKS, 1)),
            examples=per_task(
                instrument=40, singing=40, pitch=60, chord=40, drum=4, onset=4, ddsp=20
            ),
            epoch_examples=per_task(**dict.fromkeys(TASKS)),
            batch_size=per_task(**dict.fromkeys(TASKS, 16)),
            data="synthetic",
            criterion_batches=2,
            task_config=MappingProxyType(
                {
                    "ddsp": {
                        "criteria": ("magnitude", "information"),
                        "criterion_options": _DDSP_LOTTERY["criterion_options"],
                    }
                }
            ),
            cap_real_data=True,
        ),
    }
)
