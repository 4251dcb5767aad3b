"""Training and evaluation of one task's lottery levels (``TaskRun``), the paper's protocol.

:class:`TaskRun` bundles what ``lt.Lottery`` needs for one task: a model builder, example
inputs, a ``train(model, ctx)`` that follows the paper's protocol (Adam, learning rate halved
on validation plateaus, best-validation model kept), an ``evaluate(model)`` that returns the
task's test error, and the validation batches that data-driven criteria read. Its splits come
from :mod:`examples.mir.splits`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import lotterytrim as lt

from . import ddsp, ddsp_features, metrics, render_pitch, uncertainty
from .features import MIRData, Splits, transpose_chords
from .models import TASKS, build_model
from .stopping import EarlyStopping
from .train_settings import LevelContextLike, TrainSettings

# evaluation batch per task, else 512: ddsp's synthesizer holds batch x harmonics x samples
_EVAL_BATCH = {"ddsp": 16}
_CRITERION_BATCH = 64


# ------------------------------------------------------------------------------------- data


def _mix_seed(*parts: int) -> int:
    """One 31-bit seed from several integers (replicate seed, level)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] >> 1)


def _to_cpu(model: nn.Module) -> None:
    """Move ``model`` back to the CPU, with ``torch.nn.utils.prune`` masked weights recomputed.

    A masked module's ``weight`` is a plain attribute the pruning hook sets on each forward;
    moving the module leaves it on the old device until then.
    """
    model.to("cpu")
    for module in model.modules():
        if hasattr(module, "weight_orig") and hasattr(module, "weight_mask"):
            with torch.no_grad():
                module.weight = module.weight_orig * module.weight_mask  # type: ignore[operator]


def _outputs(model: nn.Module, x: torch.Tensor, device: torch.device, task: str) -> torch.Tensor:
    """Model outputs for inputs ``x`` in eval mode, in batches on ``device``, on the CPU."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(b.to(device)).cpu() for b in x.split(_EVAL_BATCH.get(task, 512))])


class TaskRun:
    """One task's data, model builder, training and evaluation, as ``lt.Lottery`` takes them.

    ``train_calls`` counts the levels actually trained (a resumed run trains none of the
    finished ones); ``log`` receives one line per trained and evaluated level. With a
    ``device`` other than the CPU, models visit it only inside ``train`` and ``evaluate``: the
    runner steps, measures and saves them on the CPU, and the rewind point is taken there too.
    ``source`` (a cached function and its arguments that make ``splits``) lets the bundle travel
    to worker processes without its data: each worker makes the splits once, from the recipe.
    """

    def __init__(
        self,
        task: str,
        splits: Splits,
        size: str,
        settings: TrainSettings,
        criterion_batches: int = 4,
        seed: int = 0,
        device: str | torch.device = "cpu",
        log: Callable[[str], None] | None = print,
        source: tuple[Callable[..., Splits], tuple[Any, ...]] | None = None,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose from {sorted(TASKS)}")
        self.task = task
        self.spec = TASKS[task]
        self.splits = splits
        self.size = size
        self.settings = settings
        self.criterion_batches = criterion_batches
        self.seed = seed
        self.device = torch.device(device)
        self.log = log
        self.source = source
        self.train_calls = 0
        self._last: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for worker processes without ``spec`` (it is ``TASKS[task]``) and, given a
        ``source``, without the data (the worker makes it from the recipe)."""
        state = dict(self.__dict__)
        del state["spec"]
        if self.source is not None:
            del state["splits"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.spec = TASKS[self.task]
        if "splits" not in state and self.source is not None:
            make, args = self.source
            self.splits = make(*args)

    # -- what lt.Lottery takes --------------------------------------------------------------

    def build_model(self) -> nn.Module:
        """A fresh, untrained model of the task at the run's size."""
        return build_model(self.task, self.size)

    @property
    def example_inputs(self) -> torch.Tensor:
        """A small real input batch, for tracing and size reports."""
        return self.splits.val.inputs[:2].clone()

    def criterion_data(self) -> list[torch.Tensor] | list[tuple[torch.Tensor, torch.Tensor]]:
        """``criterion_batches`` random validation batches of 64, for data-driven criteria, with
        the task's ``criterion_targets`` where it has them (ddsp: a class per frame)."""
        val = self.splits.val
        gen = torch.Generator().manual_seed(self.seed)
        n = min(val.n, self.criterion_batches * _CRITERION_BATCH)
        rows = torch.randperm(val.n, generator=gen)[:n]
        inputs = list(val.inputs[rows].split(_CRITERION_BATCH))
        targets = self.spec.criterion_targets
        return inputs if targets is None else [(x, targets(x)) for x in inputs]

    def train(self, model: nn.Module, ctx: LevelContextLike) -> None:
        """Train ``model`` in place for one level, early-stopped, with its best-validation state.

        Adam with weight decay, learning rate multiplied by ``plateau_factor`` after
        ``plateau_patience`` epochs without a lower validation loss, training stopped after
        ``patience`` epochs without a better validation error (or at ``max_epochs``), and the
        state of the best epoch kept, as in the paper. The optimizer is built anew on every
        call: the runner replaces parameters between levels. Records ``best_epoch``,
        ``epochs``, ``val_loss``, ``still_falling`` (1 when the cap came first) and, after a
        step, ``step_val_error`` (the validation error right after it, before retraining)."""
        self.train_calls += 1
        s = self.settings.at_level(ctx.level)
        start = time.perf_counter()
        seed = _mix_seed(ctx.seed, ctx.level)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        x, y = self.splits.train
        device = self.device
        # take W_k (level 0) on the CPU where the runner keeps it
        capture_at = min(s.rewind_epochs, s.max_epochs) if ctx.level == 0 else -1
        if capture_at == 0:
            ctx.capture_rewind()
        stopper = EarlyStopping(s.patience, s.max_epochs)
        teacher = ctx.teacher(device) if ctx.level and getattr(ctx, "distill", False) else None
        model.to(device)
        if ctx.level:  # what the step alone did, before any retraining
            ctx.record(step_val_error=self._validate(model)[0])
        try:
            optimizer = torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=s.plateau_factor, patience=s.plateau_patience
            )
            for epoch in ctx.epochs(s.max_epochs):
                model.train()
                for idx in self._epoch_rows(gen).split(s.batch_size):
                    if idx.numel() < 2:  # BatchNorm needs two examples in training mode
                        continue
                    xb, yb = x[idx], y[idx]
                    if s.transpose:
                        shift = torch.randint(-s.transpose, s.transpose + 1, (1,), generator=gen)
                        xb, yb = transpose_chords(xb, yb, int(shift))
                    optimizer.zero_grad(set_to_none=True)
                    xb, yb = xb.to(device), yb.to(device)
                    self._loss(model(xb), yb, teacher, xb).backward()
                    optimizer.step()
                val_error, val_loss = self._validate(model)
                ctx.report_loss(val_loss)
                scheduler.step(val_loss)
                stopper.update((val_error, val_loss), model)
                if epoch + 1 == capture_at:
                    _to_cpu(model)
                    ctx.capture_rewind()
                    model.to(device)
                if stopper.should_stop:
                    break
            stopper.restore(model)
        finally:
            if device.type != "cpu":
                _to_cpu(model)
        best_loss = stopper.best[1] if stopper.best else float("nan")
        ctx.record(
            best_epoch=float(stopper.best_epoch),
            epochs=float(stopper.epochs),
            val_loss=best_loss,
            still_falling=float(stopper.still_falling),
        )
        self._last = {
            "ctx": f"{ctx.method}/{ctx.criterion} replicate {ctx.replicate} level {ctx.level}",
            "seconds": time.perf_counter() - start,
            "epochs": stopper.epochs,
            "best_epoch": stopper.best_epoch,
        }
        if ctx.level == 0:
            self._report_curve(ctx, stopper)

    def _report_curve(self, ctx: LevelContextLike, stopper: EarlyStopping) -> None:
        """Print the reference's learning curve, and a warning if it was still falling."""
        if self.log is None:
            return
        curve = " ".join(f"{e:.3f}" for e in stopper.curve)
        name = f"{self.task} replicate {ctx.replicate} reference"
        self.log(f"{name}: validation error per epoch: {curve}")
        if stopper.still_falling:
            self.log(
                f"{name}: STILL FALLING at the cap of {stopper.max_epochs} epochs "
                f"(best at epoch {stopper.best_epoch}); more epochs would likely lower it"
            )

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Test error (the paper's metric) plus the validation error at the same settings.

        Drum and onset models are peak-picked on test at the threshold that is best on the
        validation split (recorded as ``threshold``). ``error_low`` / ``error_high`` bound a
        seeded bootstrap 95 % interval over the ``test_n`` test examples (clips for onsets).
        Pitch adds raw pitch and chroma accuracies (:func:`pitch_accuracies`), ddsp an f0 check.
        """
        model.to(self.device)
        try:
            val_out = _outputs(model, self.splits.val.inputs, self.device, self.task)
            test_out = _outputs(model, self.splits.test.inputs, self.device, self.task)
        finally:
            if self.device.type != "cpu":
                _to_cpu(model)
        result: dict[str, float]
        test = self.splits.test
        if self.spec.metric == "onset_error":
            threshold, val_error = metrics.best_threshold(val_out, self.splits.val)
            error = metrics.onset_error(test_out, test, threshold=threshold)
            result = {"error": error, "val_error": val_error, "threshold": threshold}
        else:
            threshold = 0.5
            result = {
                "error": metrics.task_error(self.task, test_out, test),
                "val_error": metrics.task_error(self.task, val_out, self.splits.val),
            }
        low, high, n = uncertainty.bootstrap_interval(
            self.task, test_out, test, threshold=threshold, seed=self.seed
        )
        result.update(error_low=low, error_high=high, test_n=float(n))
        if self.task == "pitch":
            result.update(pitch_accuracies(test_out, test))
        if self.task == "ddsp":
            result.update(ddsp_features.f0_metrics(test_out, test))
        if self.log is not None and self._last:
            last, self._last = self._last, {}
            self.log(
                f"{self.task} {last['ctx']}: trained {last['seconds']:.1f} s "
                f"({last['epochs']} epochs, best {last['best_epoch']}), "
                f"val error {result['val_error']:.3f}, test error {result['error']:.3f}"
            )
        return result

    # -- internals --------------------------------------------------------------------------

    def _loss(
        self,
        outputs: torch.Tensor,
        targets: torch.Tensor,
        teacher: nn.Module | None = None,
        inputs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The task's training loss on logits; with a teacher, mixed with distillation from
        its outputs on the same ``inputs`` (one forward pass, no gradient)."""
        soft = None
        if teacher is not None and inputs is not None:
            with torch.no_grad():
                soft = teacher(inputs)
        if self.spec.loss == "spectral":
            return ddsp.training_loss(outputs, targets, soft, self.settings.kd_weight)
        if soft is not None:
            kind: Literal["softmax", "sigmoid"] = (
                "softmax" if self.spec.loss == "cross_entropy" else "sigmoid"
            )
            s = self.settings
            return lt.distillation_loss(
                outputs, soft, targets, kind=kind, temperature=s.kd_temperature, weight=s.kd_weight
            )
        if self.spec.loss == "cross_entropy":
            return F.cross_entropy(outputs, targets)
        return F.binary_cross_entropy_with_logits(outputs, targets)

    def _epoch_rows(self, gen: torch.Generator) -> torch.Tensor:
        """This epoch's training rows in random order, at most ``epoch_examples`` of them.

        Drum and onset data hold one window per frame, mostly alike; a random share per epoch
        keeps an epoch short without dropping any clip for good.
        """
        rows = torch.randperm(self.splits.train.n, generator=gen)
        if self.settings.epoch_examples is not None:
            rows = rows[: self.settings.epoch_examples]
        return rows

    def _validate(self, model: nn.Module) -> tuple[float, float]:
        """Validation error (task metric; best threshold for onsets) and validation loss."""
        val = self.splits.val
        out = _outputs(model, val.inputs, self.device, self.task)
        if self.spec.loss == "spectral":  # the loss is the error: computed once
            return (error := metrics.task_error(self.task, out, val)), error
        loss = float(self._loss(out, val.targets))
        if self.spec.metric == "onset_error":
            return metrics.best_threshold(out, val)[1], loss
        return metrics.task_error(self.task, out, val), loss


def pitch_accuracies(outputs: torch.Tensor, data: MIRData) -> dict[str, float]:
    """Raw pitch and raw chroma accuracy (50 cents) of pitch ``outputs`` on ``data``.

    ``rpa`` and ``rca`` cover every frame; ``rpa_heldout`` and ``rca_heldout`` the
    ``heldout_n`` frames played by :data:`examples.mir.render_pitch.PITCH_HELDOUT_PROGRAMS`, timbres
    the rendered training data never holds (NaN when there are none: data without
    ``meta["program"]``, such as NSynth's or the synthetic tones, or a test split without them).
    """
    est = metrics.decode_pitch(outputs)
    ref = np.asarray(data.meta["f0_hz"], dtype=np.float64)
    program = data.meta.get("program")
    heldout = (
        np.isin(np.asarray(program), render_pitch.PITCH_HELDOUT_PROGRAMS)
        if program is not None
        else np.zeros(ref.shape, dtype=bool)
    )
    result = {
        "rpa": metrics.raw_pitch_accuracy(est, ref),
        "rca": metrics.raw_chroma_accuracy(est, ref),
        "rpa_heldout": float("nan"),
        "rca_heldout": float("nan"),
        "heldout_n": float(heldout.sum()),
    }
    if heldout.any():
        result["rpa_heldout"] = metrics.raw_pitch_accuracy(est[heldout], ref[heldout])
        result["rca_heldout"] = metrics.raw_chroma_accuracy(est[heldout], ref[heldout])
    return result
