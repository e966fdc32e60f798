"""Training the denoiser: run directory, strategy, normalisation, fit, validation metrics, export.

A run directory holds everything of one run::

    RUN/config.json            the exact config (rebuild the model with it)
    RUN/logs/                  TensorBoard (train/ and validation/)
    RUN/backup/                BackupAndRestore state: rerunning the command resumes
    RUN/checkpoints/best.weights.h5   best validation loss
    RUN/history.csv, RUN/metrics.json
    RUN/validation.json        digest of the validation set its epochs were scored on
    RUN/export/1/              SavedModel + denoiser.tflite + MODEL_CARD.md (TF Serving layout)
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import hashlib
import json
import logging
import math
import os
import time
import warnings
from pathlib import Path
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from audio_dl import atomic, audio_io, cli, distribute, evaluate, export
from audio_dl import layers as L
from audio_dl.config import RERUN_KEYS, ConfigError, DenoiserConfig, json_text, read_json_object, save_config, to_dict
from audio_dl.errors import UsageError
from audio_dl.data import speech
from audio_dl.losses import make_losses
from audio_dl.models.denoiser import build_denoiser, copy_weights, count_macs_per_frame

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    export_dir: Path | None
    metrics: dict[str, dict[str, float]]
    train_seconds: float
    export_errors: dict[str, float]
    skipped_files: int


class EpochClock(keras.callbacks.Callback):
    """Adds the seconds of every finished epoch to RUN/train_seconds.json, so a run resumed after
    an interruption reports its whole training time (the lost partial epoch is not counted)."""

    FILE = "train_seconds.json"  # there once an epoch has ended

    def __init__(self, run_dir: Path):
        super().__init__()
        self.path = Path(run_dir) / self.FILE

    def total(self) -> float:
        return float(self._read().get("train_seconds", 0.0))

    def epochs(self) -> int:
        """Epochs finished so far (0 for a new run)."""
        return int(self._read().get("epochs", 0))

    def _read(self) -> dict:
        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = self.total() + time.perf_counter() - self.started
        atomic.write_text(self.path, json.dumps({"train_seconds": seconds, "epochs": epoch + 1}) + "\n")


class StopOnDivergence(keras.callbacks.Callback):
    """Keras' TerminateOnNaN that remembers where: `diverged` is (epoch, batch, loss), 1-based, or None."""

    def __init__(self):
        super().__init__()
        self.diverged, self.epoch = None, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged = (self.epoch + 1, batch + 1, float(loss))
            self.model.stop_training = True


class EpochLines(keras.callbacks.ProgbarLogger):
    """Keras' progress output, except at verbose=2 (the CLIs' --quiet): one line per epoch,
    `Epoch 2/6 - 3s - loss: 0.4321 - val_loss: 0.5012 - ...`, where Keras prints an `Epoch 2/6`
    line and a metrics line. Fit adds no progress bar of its own beside it."""

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        if self.verbose != 2:
            super().on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.verbose != 2:
            return super().on_epoch_end(epoch, logs)
        values = "".join(f" - {name}: {float(value):.4g}" for name, value in (logs or {}).items())
        print(f"Epoch {epoch + 1}/{self.epochs} - {time.perf_counter() - self.started:.0f}s{values}", flush=True)


def check_divergence(callbacks: list[keras.callbacks.Callback], run_dir: Path, cfg) -> None:
    """After fit: a loss that became NaN or infinite is a UsageError unless an epoch before it
    ended with a finite validation loss (then the best such epoch is what the run keeps, with a
    warning)."""
    stop = next(c for c in callbacks if isinstance(c, StopOnDivergence))
    if stop.diverged is None:
        return
    epoch, batch, loss = stop.diverged
    where = f"the loss became {loss} at epoch {epoch}, batch {batch}"
    if best_epoch(run_dir / "history.csv") is None:  # every epoch of the run, resumed ones too
        raise UsageError(f"training diverged ({where}) and no epoch has a finite validation loss; lower "
                         f"learning_rate (now {cfg.learning_rate:g}) and train in another --run-dir")
    log.warning("training stopped early: %s; the best epoch before it is kept", where)


@dataclasses.dataclass(frozen=True)
class BestEpoch:
    """The lowest finite val_loss in a run's history.csv, its 0-based epoch, and the last epoch
    the history logs (of every session of a resumed run)."""
    val_loss: float
    epoch: int
    last_epoch: int


def best_epoch(history: Path) -> BestEpoch | None:
    """BestEpoch of a Keras CSVLogger history, or None before any epoch with a finite val_loss."""
    if not history.is_file():
        return None
    with open(history, newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("epoch")]
    losses = [(float(row["val_loss"]), int(row["epoch"])) for row in rows if row.get("val_loss")]
    losses = [(loss, epoch) for loss, epoch in losses if math.isfinite(loss)]  # a diverged epoch never wins
    return BestEpoch(*min(losses), max(int(row["epoch"]) for row in rows)) if losses else None


class ResumedEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that a resumed run continues: its best val_loss and the epochs waited since
    come from history.csv, not from zero (else every resume would grant `patience` more epochs)."""

    def __init__(self, history: Path, **kwargs):
        super().__init__(**kwargs)
        self.history = Path(history)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        best = best_epoch(self.history)
        if best is not None:
            self.best, self.wait = best.val_loss, best.last_epoch - best.epoch


def run_callbacks(run_dir: Path, cfg) -> tuple[Path, list[keras.callbacks.Callback]]:
    """(best checkpoint path, callbacks) of a run: resume state, best-validation checkpoint (a
    resumed run replaces it only with an epoch better than every logged one), TensorBoard, history
    CSV, per-epoch learning-rate decay, stop on NaN, training time, and the progress output
    (EpochLines, after the LearningRateScheduler: it prints the learning rate the decay logs)."""
    checkpoint = Path(run_dir) / "checkpoints" / "best.weights.h5"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    best = best_epoch(run_dir / "history.csv") if checkpoint.is_file() else None  # else any epoch is saved
    return checkpoint, [
        EpochClock(run_dir),
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        keras.callbacks.ModelCheckpoint(str(checkpoint), monitor="val_loss", save_best_only=True,
                                        save_weights_only=True,
                                        initial_value_threshold=None if best is None else best.val_loss),
        keras.callbacks.TensorBoard(str(run_dir / "logs"), update_freq="epoch"),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.LearningRateScheduler(lambda epoch: cfg.learning_rate * cfg.lr_decay_per_epoch ** epoch),
        StopOnDivergence(),
        EpochLines(),
    ]


TRAINED_MARKER = "trained.json"


def finished_training(run_dir: Path) -> float | None:
    """Training seconds of a run whose fit already completed (then a rerun only evaluates and
    exports), else None."""
    marker = Path(run_dir) / TRAINED_MARKER
    return float(json.loads(marker.read_text())["train_seconds"]) if marker.is_file() else None


def prepare_run_dir(run_dir: Path, cfg) -> None:
    """Create `run_dir` and save `cfg` in it, once refuse_other_config allows it."""
    refuse_other_config(run_dir, cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.json")


VALIDATION_RECORD = "validation.json"


def check_validation_set(run_dir: Path, digest: str) -> None:
    """Record the `digest` of the validation set a run is scored on in RUN/validation.json; warn a
    resumed run whose earlier epochs were scored on another set (its corpus, its split or the code
    that draws it changed since, or another machine or library version computes it otherwise): the
    val_loss its best checkpoint and early stopping go by then compares both. A run older than the
    record records the set it resumes with."""
    path = Path(run_dir) / VALIDATION_RECORD
    epochs = EpochClock(run_dir).epochs()
    saved = _validation_record(path) if epochs else None
    if saved is None:  # a new run, one interrupted before its first epoch ended, or one older than the record
        atomic.write_text(path, json.dumps({"digest": digest, "from_epoch": epochs + 1}) + "\n")
        return
    if saved.get("digest") == digest:
        other = (1, saved["mixed_until"]) if saved.get("mixed_until") else None
    else:
        other = (saved.get("from_epoch", 1), epochs)
        atomic.write_text(path, json.dumps({"digest": digest, "from_epoch": epochs + 1, "mixed_until": epochs}) + "\n")
    if other:
        log.warning("epochs %d..%d of %s were scored on another validation set than this one (%s): its corpus, split "
                    "or the code that draws it changed, or another machine or library version computes it otherwise; "
                    "the best checkpoint and early stopping compare val_loss of both sets (train in another --run-dir "
                    "to compare like with like)", *other, run_dir, path.name)


def _validation_record(path: Path) -> dict | None:
    """RUN/validation.json, or None when there is none; one that is not a JSON object is None too,
    with a warning (it is written again)."""
    if not path.is_file():
        return None
    try:
        return read_json_object(path, "validation record")
    except ConfigError:
        log.warning("%s is not a JSON object: the validation set is recorded again", path)
        return None


def validation_digest(dataset) -> tuple[str, int]:
    """(digest of a finite (noisy, targets) dataset's mixtures, its batches); samples are rounded
    to 1/4096 first, so that float noise of another machine rarely tells two equal sets apart."""
    sha, batches = hashlib.sha1(), 0
    for noisy, targets in dataset:
        for audio in (noisy, targets["denoised"]):
            sha.update(np.round(audio.numpy().astype(np.float64) * 4096).astype("<i8").tobytes())
        batches += 1
    return sha.hexdigest(), batches


def check_write_paths(run_dir: Path) -> None:
    """UsageError, before the data is read, where training would fail only once it starts: a run
    folder this process cannot write or make (cli.writable_folder) or whose path is not UTF-8
    (Keras' TensorBoard and BackupAndRestore hand it to TensorFlow as a string tensor), or a
    temporary folder whose path is not UTF-8 (autograph writes there)."""
    cli.require_utf8_temporary_folder()
    audio_io.require_utf8_path(run_dir, "run folder {path}: TensorFlow writes there and takes only UTF-8 paths; "
                                        "give another --run-dir")
    cli.writable_folder(run_dir)


def refuse_other_config(run_dir: Path, cfg, unset: Sequence[str] = ()) -> None:
    """UsageError, naming the keys that differ, when `run_dir` already holds training of another
    config (keys outside RERUN_KEYS): its checkpoints were made for that config. One interrupted
    before its first epoch ended holds none: it takes any. Cheap: call it before the data is read,
    naming in `unset` the keys the data will set (checked again once it has)."""
    saved = run_dir / "config.json"
    started = any((run_dir / name).exists() for name in (EpochClock.FILE, TRAINED_MARKER)) or \
        any(any((run_dir / name).glob("*")) for name in ("backup", "checkpoints", "export"))
    if not (saved.is_file() and started):
        return
    saved_values = read_json_object(saved, "config")
    current = json.loads(json.dumps(to_dict(cfg)))  # tuples as the JSON lists they are saved as
    unknown = sorted(set(saved_values) - set(current))
    if unknown:
        raise UsageError(f"{run_dir} holds a run whose config has keys a {type(cfg).__name__} does not "
                         f"({', '.join(unknown[:3])}{', ...' if len(unknown) > 3 else ''}); give another --run-dir")
    previous = json.loads(json.dumps({**to_dict(type(cfg)()), **saved_values}))  # keys it lacks: defaults
    changed = [f"{key}: {previous.get(key)!r} -> {current[key]!r}" for key in current
               if _comparable(previous.get(key)) != _comparable(current[key]) and key not in {*RERUN_KEYS, *unset}]
    if changed:
        raise UsageError(f"{run_dir} holds a run of another config ({'; '.join(changed[:3])}"
                         f"{'; ...' if len(changed) > 3 else ''}); continue it with --config {saved}, "
                         "or give another --run-dir")


def _comparable(value):
    """A config value as refuse_other_config compares it: one folder spelled two ways ("data/x/",
    "./data/x", "data//x") is one value."""
    if isinstance(value, list):
        return [_comparable(item) for item in value]
    if not isinstance(value, str) or os.sep not in value or glob.has_magic(value):  # "data/*/" lists folders only
        return value
    normal = os.path.normpath(value)
    return normal if os.sep in normal else os.path.join(".", normal)  # "./folk" is a folder, "folk" a collection


def load_best_weights(model: keras.Model, checkpoint: Path) -> None:
    """The best validation epoch's weights (the optimizer's state is not needed after training)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(str(checkpoint))


def mark_trained(run_dir: Path, train_seconds: float) -> None:
    atomic.write_text(Path(run_dir) / TRAINED_MARKER, json.dumps({"train_seconds": train_seconds}) + "\n")


def adapt_normalization(model: keras.Model, batches: list, cfg: DenoiserConfig) -> None:
    """Fit the in-model normalisation statistics on a few training batches (so exports carry them)."""
    features = keras.Model(model.input, model.get_layer("input_normalization").input)
    history = cfg.history_frames  # the silent frames the model adds around the recording are not data
    model.get_layer("input_normalization").adapt(np.concatenate(
        [(f := features(x).numpy())[:, history:f.shape[1] - cfg.lookahead_frames] for x, _ in batches]))
    if any(layer.name == "target_denormalization" for layer in model.layers):
        clean = np.concatenate([L.stft_magnitude(y["denoised"], cfg).numpy() for _, y in batches])
        model.get_layer("target_denormalization").adapt(clean[..., np.newaxis])


def compile_denoiser(cfg: DenoiserConfig, batches: list) -> keras.Model:
    """build_denoiser(cfg), its normalisation adapted on `batches`, compiled with the recipe's
    losses and Adam with gradient clipping."""
    model = build_denoiser(cfg)
    adapt_normalization(model, batches, cfg)
    losses, weights = make_losses(cfg, model)
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate, clipnorm=cfg.clipnorm,
                                                  weight_decay=cfg.weight_decay or None),
                  loss=losses, loss_weights=weights)
    return model


def denoise_batches(model: keras.Model, dataset) -> tuple[list, list, list]:
    """(clean, noisy, denoised) lists of [N] arrays over a finite (noisy, targets) dataset."""
    clean, noisy, denoised = [], [], []
    for x, y in dataset:
        out = model(x, training=False)["denoised"].numpy()
        clean += list(y["denoised"].numpy())
        noisy += list(x.numpy())
        denoised += list(out)
    return clean, noisy, denoised


def train_denoiser(cfg: DenoiserConfig, run_dir: Path, mixed_precision: bool = False, verbose: int = 1,
                   command: str = "", strategy: str = "auto") -> TrainResult:
    """Train cfg in run_dir (resuming if it was interrupted), report validation metrics, export.

    strategy: one of distribute.STRATEGIES. Under `multiworker`, only the chief evaluates and
    exports; the other workers return after training (export_dir None, empty metrics).
    """
    check_write_paths(Path(run_dir))
    refuse_other_config(Path(run_dir), cfg)  # before the corpus is read and probed
    corpus = speech.load_corpus(cfg)
    keras.utils.set_random_seed(cfg.seed)
    print(_describe_corpus(corpus))
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")

    tf_strategy = distribute.make_strategy(strategy, cfg.batch_size)  # before any TF op (multi-worker collectives)
    speech.reset_read_failures()  # before the probe: files it cannot decode count as skipped
    speech.require_examples(corpus, cfg)
    run_dir = distribute.worker_dir(Path(run_dir), tf_strategy)
    prepare_run_dir(run_dir, cfg)
    val_ds = speech.validation_dataset(corpus.val, cfg)
    with tf_strategy.scope():
        model = compile_denoiser(cfg, list(speech.training_dataset(corpus.train, cfg).take(cfg.normalization_batches)))

    checkpoint, callbacks = run_callbacks(run_dir, cfg)
    distributed = distribute.is_distributed(tf_strategy)
    train_seconds = finished_training(run_dir)
    if train_seconds is None:
        # one pass fills val_ds's cache, counts its batches and digests them (check_validation_set):
        # without a strategy, fit and the metrics below reuse its mixtures and Keras never runs past
        # its end (under a strategy, each worker builds its own validation dataset and runs it to its end)
        digest, batches = validation_digest(val_ds)
        check_validation_set(run_dir, digest)
        validation_steps = None if distributed else batches
        validation_data = distribute.distribute_datasets(
            tf_strategy, lambda c: speech.validation_dataset(corpus.val, cfg, c)) if distributed else val_ds
        first_example = EpochClock(run_dir).epochs() * cfg.steps_per_epoch * cfg.batch_size  # resumed: new mixtures
        training_data = distribute.distribute_datasets(
            tf_strategy, lambda c: speech.training_dataset(corpus.train, cfg, c, first_example))
        distribute.fit(model, tf_strategy, training_data, epochs=cfg.epochs, steps_per_epoch=cfg.steps_per_epoch,
                       validation_data=validation_data, validation_steps=validation_steps, callbacks=callbacks,
                       verbose=verbose)
        check_divergence(callbacks, run_dir, cfg)
        train_seconds = EpochClock(run_dir).total()
        mark_trained(run_dir, train_seconds)
    if not distribute.is_chief(tf_strategy):
        return TrainResult(run_dir, None, {}, train_seconds, {}, corpus.skipped + speech.read_failures())
    if checkpoint.is_file():
        load_best_weights(model, checkpoint)
    if mixed_precision:  # exports and TFLite are float32
        keras.mixed_precision.set_global_policy("float32")
        float_model = build_denoiser(cfg)
        copy_weights(model, float_model)
        model = float_model

    clean, noisy, denoised = denoise_batches(model, val_ds)
    metrics = evaluate.compare(clean, noisy, denoised, sample_rate=cfg.sample_rate)
    if len(clean) < cfg.val_examples:  # validation_dataset draws a bounded number of crops
        log.warning("only %d validation mixtures (val_examples=%d): the other crops drawn had speech quieter than "
                    "min_speech_dbfs=%g dBFS, or did not decode", len(clean), cfg.val_examples, cfg.min_speech_dbfs)
    skipped = corpus.skipped + speech.read_failures()
    atomic.write_text(run_dir / "metrics.json", json_text(
        {"validation": metrics, "validation_mixtures": len(clean), "train_seconds": train_seconds,
         "skipped_files": skipped}))
    print(f"\nValidation ({len(clean)} mixtures of held-out speakers and noises, "
          f"SNR {cfg.snr_db[0]:g}..{cfg.snr_db[1]:g} dB, PESQ narrowband):")
    print(evaluate.format_table(metrics))

    export_dir = run_dir / "export" / "1"
    card = model_card(cfg, corpus, metrics, len(clean), train_seconds, model, command)
    errors = export.export_denoiser(model, cfg, export_dir, card,
                                    {"source": "local run", "run_dir": str(run_dir.resolve())}, replace=True)
    return TrainResult(run_dir, export_dir, metrics, train_seconds, errors, skipped)


def _describe_corpus(corpus: speech.Corpus) -> str:
    def part(split):
        return (f"{split.speech_files} speech files ({split.speech_seconds / 60:.1f} min, "
                f"{len(split.speaker_names)} speakers), {len(split.noise)} noise files")
    skipped = f"; skipped {corpus.skipped} unreadable, empty or misnamed files" if corpus.skipped else ""
    return f"training: {part(corpus.train)}\nvalidation: {part(corpus.val)}{skipped}"


def model_card(cfg: DenoiserConfig, corpus: speech.Corpus, metrics: dict, val_mixtures: int, train_seconds: float,
               model: keras.Model, command: str) -> str:
    """MODEL_CARD.md text: data, command, time, held-out metrics, size and export checks."""
    table = evaluate.format_table(metrics)
    val_speakers = ", ".join(sorted(corpus.val.speaker_names))
    val_noises = ", ".join(sorted(Path(i.path).stem for i in corpus.val.noise))
    design = (cfg.architecture + (f" + {cfg.temporal_blocks} dilated conv blocks" if cfg.temporal_blocks else "")
              + (f" + GRU({cfg.recurrent_units})" if cfg.recurrent_units else "")
              + (f", {cfg.lookahead_frames} frames lookahead" if cfg.lookahead_frames else ""))
    return f"""# Speech denoiser ({design})

Waveform in, waveform out at {cfg.sample_rate} Hz: STFT (periodic {cfg.window}, {cfg.frame_length}
samples, hop {cfg.hop_length}, {cfg.n_bins} bins) -> {design} -> inverse STFT with the
noisy phase, all inside the graph. {model.count_params():,} parameters,
{count_macs_per_frame(model):,} multiply-accumulates per frame.

## Data
- training: {counted(corpus.train.speech_files, 'speech file')} ({corpus.train.speech_seconds / 60:.1f} min,
  {counted(len(corpus.train.speaker_names), 'speaker')}), {counted(len(corpus.train.noise), 'noise recording')}
- validation (never trained on; its loss picks the epoch that is exported): speakers {val_speakers};
  noises {val_noises}
- sources: {", ".join(cfg.speech)} (speech), {", ".join(cfg.noise)} (noise); SNR {cfg.snr_db[0]:g}..{cfg.snr_db[1]:g} dB;
  augmentation {"on" if cfg.augment else "off"}

## Training
- command: `{command}`
- {counted(cfg.epochs, 'epoch')} x {counted(cfg.steps_per_epoch, 'step')} x batch {cfg.batch_size} of {cfg.crop_seconds:g} s,
  loss {cfg.loss}, Adam lr {cfg.learning_rate:g} x{cfg.lr_decay_per_epoch:g} per epoch,
  clipnorm {cfg.clipnorm:g}{f', decoupled weight decay {cfg.weight_decay:g}' if cfg.weight_decay else ''}
- training time: {train_seconds / 60:.1f} min on {device_name()}
- full config: config.json

## Validation metrics ({counted(val_mixtures, 'mixture')} of those voices and noises, PESQ narrowband)
```
{table}
```

## Export checks
Max absolute difference to the Keras model: {{export_errors}} (tolerances
SavedModel {export.SAVED_MODEL_TOLERANCE:g}, TFLite {export.TFLITE_TOLERANCE:g}).
TFLite input: [1, {cfg.tflite_samples}] samples (fixed length; run longer audio in chunks).
"""


def counted(count: int, noun: str) -> str:
    """'1 epoch', '2 epochs': a count and its noun, for model cards."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def device_name() -> str:
    gpus = tf.config.list_logical_devices("GPU")
    return f"{len(gpus)} GPU(s)" if gpus else f"CPU ({os.cpu_count()} cores)"
