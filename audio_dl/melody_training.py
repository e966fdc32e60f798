"""Training and evaluating the folk melody model.

A run directory holds what the denoiser's does (config.json, logs/, backup/ for resuming,
checkpoints/best.weights.h5, history.csv, metrics.json, export/1/).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from audio_dl import melody_metrics as mm
from audio_dl import atomic, midi_io
from audio_dl.compose import MAX_STEPS, MelodyGenerator, keras_scorer
from audio_dl.config import MelodyConfig, json_text
from audio_dl.data import corpora
from audio_dl.data import melody as melody_data
from audio_dl.errors import UsageError
from audio_dl.models.melody import build_folknet, vocab_size
from audio_dl import distribute
from audio_dl.training import (EpochClock, ResumedEarlyStopping, best_epoch, check_divergence, check_validation_set,
                               counted, device_name, finished_training, load_best_weights, mark_trained,
                               prepare_run_dir, refuse_other_config, check_write_paths, run_callbacks)

log = logging.getLogger(__name__)


@dataclasses.dataclass
class MelodyTrainResult:
    run_dir: Path
    export_dir: Path | None  # None on a worker other than the chief
    cfg: MelodyConfig
    metrics: dict
    train_seconds: float


def compile_folknet(cfg: MelodyConfig) -> keras.Model:
    """build_folknet(cfg), compiled; a size whose weights cannot be allocated is a UsageError."""
    try:
        model = build_folknet(cfg)
    except (tf.errors.ResourceExhaustedError, MemoryError):
        raise UsageError(f"cannot build a folkNet of lstm_units={cfg.lstm_units}, lstm_layers={cfg.lstm_layers}, "
                         f"embedding_dim={cfg.embedding_dim} (out of memory); make them smaller") from None
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate, clipnorm=cfg.clipnorm),
                  loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
                  weighted_metrics={"logits": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]})
    return model


def held_out_tunes(specs: tuple[str, ...], cfg: MelodyConfig) -> tuple[list[melody_data.Tune], str]:
    """Up to cfg.max_eval_tunes tunes of another collection, fitted into the vocabulary's range."""
    tunes, report = melody_data.read_tunes(corpora.resolve_midi(specs), cfg)
    chosen = sorted(tunes, key=lambda t: hashlib.sha1(t.name.encode()).hexdigest())[: cfg.max_eval_tunes]
    fitted = [f for t in chosen if (f := melody_data.fit_to_range(t, cfg)) is not None]
    note = f"{report.summary()}; scored {len(fitted)} (of {len(chosen)} drawn; {len(chosen) - len(fitted)} span more than the range)"
    return fitted, note


def tunes_digest(tunes: list[melody_data.Tune], cfg: MelodyConfig) -> str:
    """A digest of `tunes`: their names and tokens."""
    sha = hashlib.sha1()
    for tune, tokens in zip(tunes, melody_data.encode_tunes(tunes, cfg)):
        sha.update(tune.name.encode() + b"\0" + np.asarray(tokens, "<i4").tobytes() + b"\0")
    return sha.hexdigest()


def count_training_tunes(tunes: list[melody_data.Tune], train: list[melody_data.Tune]) -> int:
    """How many of `tunes` are tunes of `train`, by their notes in any key (whatever the file or
    folder is called)."""
    trained_on = {t.melody for t in train}
    return sum(t.melody in trained_on for t in tunes)


def evaluate_tunes(score_fn, cfg: MelodyConfig, train: list[melody_data.Tune], test: list[melody_data.Tune]) -> dict:
    """Model (score_fn: tokens -> logits) vs pitch n-grams (orders 3, 5) on `test`; n-grams fitted on `train`."""
    result = {"model": mm.teacher_forced(score_fn, melody_data.encode_tunes(test, cfg))}
    train_pitches = mm.pitch_sequences([t.notes for t in train])
    test_pitches = mm.pitch_sequences([t.notes for t in test])
    for order in (3, 5):
        result[f"ngram_{order}"] = mm.ngram_baseline(train_pitches, test_pitches, order, mm.vocabulary_pitches(cfg))
    best = min(result["ngram_3"]["bits_per_note"], result["ngram_5"]["bits_per_note"])
    result["bits_reduction_vs_best_ngram"] = 1.0 - result["model"]["bits_per_note"] / best
    return result


def generation_statistics(generator: MelodyGenerator, cfg: MelodyConfig, train: list[melody_data.Tune],
                          held_out: list[melody_data.Tune], temperature: float = 1.0) -> dict:
    """cfg.generated_tunes tunes from scratch (seeds 0..N-1), each allowed 4x the corpus' median
    length (at most compose.MAX_STEPS grid steps)."""
    median_steps = float(np.median([midi_io.melody_steps(t.notes) for t in train]))
    limit = min(int(4 * median_steps), MAX_STEPS)
    generated, ended = [], []
    started = time.perf_counter()
    for seed in range(cfg.generated_tunes):
        result = generator.continue_tune([], temperature=temperature, seed=seed, max_steps=limit)
        generated.append([n.pitch for n in result.generated])
        ended.append(result.ended)
    seconds = time.perf_counter() - started
    stats = mm.generated_statistics(generated, ended, mm.pitch_sequences([t.notes for t in train]),
                                    mm.pitch_sequences([t.notes for t in held_out]))
    stats.update(temperature=temperature, max_steps=limit, corpus_median_steps=median_steps,
                 notes_per_second=sum(map(len, generated)) / seconds)
    return stats


def format_report(metrics: dict, compared_with: str = "held-out") -> str:
    """The metrics as text; `compared_with` names the real tunes the generated ones are set against."""
    lines = []
    for name, block in metrics.items():
        if not isinstance(block, dict) or "model" not in block:
            continue
        lines.append(f"{name}: {block.get('description', '')}")
        if block.get("training_tunes"):
            lines.append(f"  ({block['training_tunes']} of these tunes are training tunes of the model: not held-out)")
        lines.append(f"  {'':10} {'bits/note':>10} {'next-pitch acc':>15}")
        for who in ("model", "ngram_3", "ngram_5"):
            lines.append(f"  {who:10} {block[who]['bits_per_note']:10.3f} {block[who]['next_pitch_accuracy']:15.3f}")
        lines.append(f"  model: token NLL {block['model']['token_nll']:.3f} nats, token accuracy "
                     f"{block['model']['token_accuracy']:.3f}; {_versus_ngram(block['bits_reduction_vs_best_ngram'])}")
    if "generation" in metrics:
        g = metrics["generation"]
        lines.append(f"generation ({g['tunes']} tunes from scratch, temperature {g['temperature']:g}): "
                     f"{100 * g['ended_share']:.0f} % ended by themselves within {g['max_steps']} steps; "
                     f"pitch-class JS {g['pitch_class_js']:.3f} ({compared_with} tunes {g['held_out_pitch_class_js']:.3f}), "
                     f"interval JS {g['interval_js']:.3f} ({compared_with} {g['held_out_interval_js']:.3f}); "
                     f"16-note runs copied from training {_percent(g['copied_16_note_runs'])} "
                     f"({compared_with} human tunes {_percent(g['held_out_copied_16_note_runs'])}); "
                     f"median longest copied run {g['longest_copied_run_median']:g} notes "
                     f"({compared_with} {g['held_out_longest_copied_run_median']:g})")
    return "\n".join(lines)


def _percent(share: float) -> str:
    """A share as "12.3 %", or "n/a" where it is undefined (no tune of 16 notes or more)."""
    return f"{100 * share:.1f} %" if math.isfinite(share) else "n/a (no tune of 16+ notes)"


def train_melody(cfg: MelodyConfig, run_dir: Path, verbose: int = 1, command: str = "",
                 strategy: str = "auto") -> MelodyTrainResult:
    """Train cfg in run_dir (resuming if interrupted), keep the best validation epoch, evaluate, export.

    strategy: one of distribute.STRATEGIES. Under `multiworker`, only the chief evaluates and
    exports; the other workers return after training (export_dir None, empty metrics).
    """
    from audio_dl.export_melody import export_melody  # noqa: PLC0415 - keeps the import graph one-way

    range_keys = () if cfg.pitch_range_is_set else ("pitch_low", "pitch_high")  # set by the training tunes
    check_write_paths(Path(run_dir))
    refuse_other_config(Path(run_dir), cfg, unset=range_keys)  # before the tunes are read (seconds)
    corpus = melody_data.load_corpus(cfg)
    cfg = corpus.cfg
    tf_strategy = distribute.make_strategy(strategy, cfg.batch_size)
    run_dir = distribute.worker_dir(Path(run_dir), tf_strategy)
    keras.utils.set_random_seed(cfg.seed)
    with tf_strategy.scope():
        model = compile_folknet(cfg)  # before the run dir is made: a model too big to build leaves none
    prepare_run_dir(run_dir, cfg)
    print(corpus.report.summary())
    print(f"training {len(corpus.train)} tunes, validation {len(corpus.val)}; vocabulary "
          f"{midi_io.range_name(cfg.pitch_low, cfg.pitch_high)} ({cfg.pitch_high - cfg.pitch_low + 1} pitches)")

    held_out = {spec: held_out_tunes((spec,), cfg) for spec in cfg.eval_midi_dir}  # fail before, not after, fit
    for spec, (tunes, note) in held_out.items():
        if not tunes:
            raise UsageError(f"no tune of {spec} can be scored ({note})")
    checkpoint, callbacks = run_callbacks(run_dir, cfg)
    callbacks.append(ResumedEarlyStopping(run_dir / "history.csv", monitor="val_loss", patience=cfg.patience))
    train_seconds = finished_training(run_dir)
    if train_seconds is None:  # else the fit completed before: only evaluate and export again
        check_validation_set(run_dir, tunes_digest(corpus.val, cfg))
        # epochs have an unknown number of batches (length buckets); Keras warns at each epoch's end
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        distributed = distribute.is_distributed(tf_strategy)
        distribute.fit(model, tf_strategy, distribute.distribute_datasets(tf_strategy,
                                                 lambda c: melody_data.training_dataset(corpus.train, cfg, c, distributed)),
                  epochs=cfg.epochs, steps_per_epoch=melody_data.steps_per_epoch(corpus.train, cfg) if distributed else None,
                  validation_data=distribute.distribute_datasets(
                      tf_strategy, lambda c: melody_data.validation_dataset(corpus.val, cfg, c)),
                  callbacks=callbacks, verbose=verbose)
        check_divergence(callbacks, run_dir, cfg)
        train_seconds = EpochClock(run_dir).total()
        mark_trained(run_dir, train_seconds)
    if not distribute.is_chief(tf_strategy):
        return MelodyTrainResult(run_dir, None, cfg, {}, train_seconds)
    if checkpoint.is_file():
        load_best_weights(model, checkpoint)
    best = best_epoch(run_dir / "history.csv")
    best_epoch_number = None if best is None else best.epoch + 1

    metrics = {"validation": {"description": f"{len(corpus.val)} held-out tunes of the training collections",
                              **evaluate_tunes(keras_scorer(model), cfg, corpus.train, corpus.val)}}
    for spec, (tunes, note) in held_out.items():
        seen = count_training_tunes(tunes, corpus.train)  # the same notes in any key, under another name
        if seen:
            log.warning("%d of the %d tunes of %s scored are training tunes: their scores are not held-out",
                        seen, len(tunes), spec)
        what = f"{spec}: {note}" if seen else f"{spec} (collection never trained on): {note}"
        metrics[f"held_out_{spec}"] = {"description": what, "training_tunes": seen,
                                       **evaluate_tunes(keras_scorer(model), cfg, corpus.train, tunes)}
    metrics["generation"] = generation_statistics(MelodyGenerator.from_keras(model, cfg), cfg, corpus.train,
                                                  corpus.val)
    metrics.update(train_seconds=train_seconds, best_epoch=best_epoch_number, corpus=corpus.report.summary())
    atomic.write_text(run_dir / "metrics.json", json_text(metrics))
    report = format_report(metrics)
    print("\n" + report)

    export_dir = run_dir / "export" / "1"
    card = model_card(cfg, corpus, report, train_seconds, best_epoch_number, model, command)
    export_melody(model, cfg, export_dir, card, {"source": "local run", "run_dir": str(run_dir.resolve())},
                  replace=True)
    return MelodyTrainResult(run_dir, export_dir, cfg, metrics, train_seconds)


def _versus_ngram(reduction: float) -> str:
    """The model's bits per note against the best n-gram's, in words whichever is lower."""
    return f"{100 * abs(reduction):.1f} % {'fewer' if reduction >= 0 else 'more'} bits per note than the best n-gram"


def model_card(cfg: MelodyConfig, corpus: melody_data.MelodyCorpus, report: str, train_seconds: float,
               best_epoch: int | None, model: keras.Model, command: str) -> str:
    return f"""# Folk melody model (folkNet)

Tokens on a {cfg.steps_per_quarter}-per-quarter grid (NOTE-ON per pitch, HOLD, REST, START, END; a repeated
note differs from a held one) -> embedding {cfg.embedding_dim} -> {cfg.lstm_layers} x LSTM({cfg.lstm_units}) with
dropout {cfg.dropout:g} -> dense softmax over {vocab_size(cfg)} tokens ({midi_io.range_name(cfg.pitch_low, cfg.pitch_high)}).
{model.count_params():,} parameters.

## Data
- corpus: {", ".join(cfg.midi_dir)} — {corpus.report.summary()}
- training {len(corpus.train)} tunes, validation {len(corpus.val)} tunes (by file-name hash,
  {100 * cfg.val_fraction:g} %); random transposition {cfg.transpose[0]}..{cfg.transpose[1]} semitones within the range
- collections scored after training (not the training corpus; under Metrics, a count of any tune
  of theirs that repeats a training tune): {", ".join(cfg.eval_midi_dir) or "none"}

## Training
- command: `{command}`
- up to {counted(cfg.epochs, 'epoch')} of batch {cfg.batch_size}, Adam lr {cfg.learning_rate:g} x{cfg.lr_decay_per_epoch:g}/epoch,
  gradient clipping (norm) {cfg.clipnorm:g}, early stopping after {counted(cfg.patience, 'epoch')} without a better validation loss
- best validation epoch: {best_epoch}; training time {train_seconds / 60:.1f} min on {device_name()}
- full config: config.json

## Metrics
```
{report}
```

## Export checks
{{export_checks}}
"""
