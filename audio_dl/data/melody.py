"""Folk-tune corpora as token sequences, and their tf.data pipelines.

    corpus = load_corpus(cfg)                  # MIDI folders -> tunes, split, counted skips
    cfg = corpus.cfg                           # pitch_low/pitch_high the user's, or else the data's
    training_dataset(corpus.train, cfg)        # transposed, shuffled, padded batches + masks
    validation_dataset(corpus.val, cfg)

Batches are (tokens[:-1], tokens[1:], weights): int32 [B, T] inputs and targets padded with
PAD, float32 [B, T] weights that are 0 on padding.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging

import numpy as np
import tensorflow as tf

from audio_dl import audio_io, cli, midi_io
from audio_dl.config import MelodyConfig
from audio_dl.data import corpora
from audio_dl.errors import UsageError

log = logging.getLogger(__name__)

MIDI_SUFFIXES = (".mid", ".midi", ".kar")
FEW_OUTLIERS = 2  # at most this many tunes an octave beyond the others' range are named in a warning


@dataclasses.dataclass
class Tune:
    name: str  # "<folder>/<file name>": the key of the validation split
    notes: list[midi_io.Note]

    @property
    def pitch_range(self) -> tuple[int, int]:
        pitches = [n.pitch for n in self.notes]
        return min(pitches), max(pitches)

    @property
    def melody(self) -> tuple:
        """The notes in any key, whatever the file is called: equal for the same tune in two collections."""
        return tuple((n.pitch - self.notes[0].pitch, n.start, n.duration) for n in self.notes)


@dataclasses.dataclass
class ReadReport:
    """What reading a corpus kept and dropped (the demo went from 1,034 files to 985 tunes)."""

    files: int = 0
    kept: int = 0
    skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # reason -> files
    dropped: midi_io.ReadStats = dataclasses.field(default_factory=midi_io.ReadStats)  # summed over kept tunes
    first_skipped: str = ""  # "<file> (<reason>: <detail>)", named in the summary

    def skip(self, name: str, reason: str, detail: str = "") -> None:
        """Count the file `name` ("<folder>/<file name>", as Tune names it) as skipped for `reason`
        (the first one with its detail)."""
        self.skipped[reason] += 1
        why = reason.replace("_", " ") + (f": {detail}" if detail else "")
        self.first_skipped = self.first_skipped or f"{name} ({why})"

    def summary(self) -> str:
        skipped = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in sorted(self.skipped.items()))
        first = f"; first skipped: {self.first_skipped}" if self.first_skipped else ""
        return (f"{self.files} MIDI files -> {self.kept} single-line tunes"
                f" (skipped: {skipped or 'none'}; dropped: {self.dropped.dropped_text() or 'nothing'}{first})")


@dataclasses.dataclass
class MelodyCorpus:
    cfg: MelodyConfig  # with the vocabulary's pitch_low/pitch_high (set, or the training tunes')
    train: list[Tune]
    val: list[Tune]
    report: ReadReport


def read_tunes(specs: tuple[str, ...], cfg: MelodyConfig) -> tuple[list[Tune], ReadReport]:
    """Every usable melody under `specs`, with the counts of what was skipped or dropped."""
    report = ReadReport()
    tunes = []
    for path in audio_io.find_files(specs, MIDI_SUFFIXES, "MIDI"):
        report.files += 1
        name = f"{path.parent.name}/{path.name}"
        if not audio_io.is_utf8_name(name):  # the tune's name picks its split and is written as text
            report.skip(audio_io.printable_name(name), "unreadable", "the file name is not valid UTF-8 (rename it)")
            continue
        try:
            notes, stats = midi_io.read_melody(path, cfg.steps_per_quarter, cfg.max_steps, cfg.max_chord_share)
        except midi_io.MelodySkipped as skipped:
            report.skip(f"{path.parent.name}/{path.name}", skipped.reason,
                        skipped.detail.removeprefix(f"{path.name}: "))  # named once
            continue
        report.kept += 1
        report.dropped.add(stats)
        tunes.append(Tune(f"{path.parent.name}/{path.name}", notes))
    return tunes, report


def is_validation(name: str, fraction: float) -> bool:
    """A stable `fraction` of tunes, chosen by a hash of the file name."""
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


def load_corpus(cfg: MelodyConfig) -> MelodyCorpus:
    """Read cfg.midi_dir and hold out cfg.val_fraction of the tunes. The vocabulary's pitch range is
    the one set in cfg (a user's, or a saved run's; training tunes with a note outside it are
    skipped and counted) or, when it is not set, the training tunes' range. Validation tunes outside
    it are transposed in by octaves or dropped, either way."""
    tunes, report = read_tunes(corpora.resolve_midi(cfg.midi_dir), cfg)
    if not tunes:
        raise UsageError(f"none of the {report.files} MIDI files holds a usable melody ({report.summary()})")
    train = [t for t in tunes if not is_validation(t.name, cfg.val_fraction)]
    val = [t for t in tunes if is_validation(t.name, cfg.val_fraction)]
    if not train or not val:
        train, val = tunes[: max(1, len(tunes) - 1)], tunes[-1:]
    range_is_set = cfg.pitch_range_is_set
    if range_is_set:  # a range taken from these training tunes keeps every one of them
        train = _inside_range(train, report, cfg)
    else:
        cfg = dataclasses.replace(cfg, pitch_low=min(t.pitch_range[0] for t in train),
                                  pitch_high=max(t.pitch_range[1] for t in train))
        _warn_of_outliers(train, cfg)
    held_out = _without_training_tunes(val, train, report)  # never empties a split it is given
    val = _fit_validation(held_out, report, cfg)
    if held_out and not val:  # each one spans more than the range: not too few tunes
        name = midi_io.range_name(cfg.pitch_low, cfg.pitch_high)
        source = (f"pitch_low={cfg.pitch_low}, pitch_high={cfg.pitch_high}" if range_is_set
                  else "taken from the training tunes")
        which = "the one held-out tune spans" if len(held_out) == 1 else f"all {len(held_out)} held-out tunes span"
        raise UsageError(f"the pitch range {name} ({source}) leaves no validation tune: {which} more than it "
                         f"({report.summary()})")  # no advice: the range may be a trained model's (evaluate_melody)
    if not val or len(tunes) < 2:
        raise UsageError(f"{report.summary()}: too few tunes for a training and a validation set")
    return MelodyCorpus(cfg, train, val, report)


class NoTuneInRange(UsageError):
    """No training tune lies inside the pitch range the config sets: `range_name` (G3..F6) and the
    corpus `summary` for callers whose range is not the user's to change (a trained model's)."""

    def __init__(self, range_name: str, summary: str, message: str):
        super().__init__(message)
        self.range_name, self.summary = range_name, summary


def _inside_range(train: list[Tune], report: ReadReport, cfg: MelodyConfig) -> list[Tune]:
    """The training tunes whose every pitch lies in [pitch_low, pitch_high]; the others are counted
    in `report` as skipped "outside pitch range". UsageError if none is left."""
    inside = [t for t in train if _within_range(t, cfg)]
    _skip_outside_range([t for t in train if not _within_range(t, cfg)], report, cfg)
    if not inside:
        name = midi_io.range_name(cfg.pitch_low, cfg.pitch_high)
        raise NoTuneInRange(name, report.summary(), f"no training tune lies inside the pitch range {name} "
                            f"(pitch_low={cfg.pitch_low}, pitch_high={cfg.pitch_high}; {report.summary()}); "
                            "widen it, or leave both unset to take the training tunes' range")
    return inside


def _without_training_tunes(val: list[Tune], train: list[Tune], report: ReadReport) -> list[Tune]:
    """The validation tunes that are not a training tune in another file (collections share tunes);
    those that are, are counted in `report` as skipped "repeats a training tune". When every one
    is, all are kept, with a warning: a validation set of repeats, not none."""
    trained_on = {t.melody: t.name for t in train}
    repeated = [trained_on.get(t.melody) for t in val]  # the training tune each one repeats, or None
    if val and all(repeated):
        log.warning("each of the %d validation tunes repeats a training tune (e.g. %s: the notes of %s): the "
                    "validation loss is not held-out", len(val), val[0].name, repeated[0])
        return val
    for tune, training_tune in zip(val, repeated):
        if training_tune:
            report.kept -= 1
            report.skip(tune.name, "repeats_a_training_tune", f"the notes of {training_tune}")
    return [t for t, training_tune in zip(val, repeated) if not training_tune]


def _fit_validation(val: list[Tune], report: ReadReport, cfg: MelodyConfig) -> list[Tune]:
    """The validation tunes moved into [pitch_low, pitch_high] by fit_to_range; those wider than the
    range are counted in `report` as skipped "outside pitch range"."""
    fitted = [fit_to_range(t, cfg) for t in val]
    _skip_outside_range([t for t, f in zip(val, fitted) if f is None], report, cfg)
    return [f for f in fitted if f is not None]


def _within_range(tune: Tune, cfg: MelodyConfig) -> bool:
    return cfg.pitch_low <= tune.pitch_range[0] and tune.pitch_range[1] <= cfg.pitch_high


def _skip_outside_range(tunes: list[Tune], report: ReadReport, cfg: MelodyConfig) -> None:
    """Count `tunes`, read and kept, as skipped "outside pitch range" instead."""
    report.kept -= len(tunes)
    for tune in tunes:
        report.skip(tune.name, "outside_pitch_range", f"notes {midi_io.range_name(*tune.pitch_range)}, "
                                                      f"range {midi_io.range_name(cfg.pitch_low, cfg.pitch_high)}")


def range_outliers(tunes: list[Tune]) -> list[Tune]:
    """The few tunes (at most FEW_OUTLIERS at each end) reaching more than an octave below or above
    all the others: alone they widen a range taken from `tunes` (one tune's note 1 adds four octaves)."""
    if len(tunes) <= FEW_OUTLIERS:
        return []
    low = sorted(t.pitch_range[0] for t in tunes)[FEW_OUTLIERS] - 12
    high = sorted((t.pitch_range[1] for t in tunes), reverse=True)[FEW_OUTLIERS] + 12
    return [t for t in tunes if t.pitch_range[0] < low or t.pitch_range[1] > high]


def _warn_of_outliers(train: list[Tune], cfg: MelodyConfig) -> None:
    """A warning naming the training tunes that alone widen the range taken from them, if any."""
    if outliers := range_outliers(train):
        log.warning("the pitch range %s (%d pitches) taken from the training tunes is widened by more than an "
                    "octave by %s; set pitch_low and pitch_high to leave such tunes out (they are then skipped "
                    "and counted)", midi_io.range_name(cfg.pitch_low, cfg.pitch_high),
                    cfg.pitch_high - cfg.pitch_low + 1,
                    ", ".join(f"{t.name} ({midi_io.range_name(*t.pitch_range)})" for t in outliers))


def fit_to_range(tune: Tune, cfg: MelodyConfig) -> Tune | None:
    """The tune shifted by the smallest number of octaves (then semitones) that puts every pitch
    inside [pitch_low, pitch_high]; None if the tune spans more than the range."""
    low, high = tune.pitch_range
    if high - low > cfg.pitch_high - cfg.pitch_low:
        return None
    shifts = sorted(range(cfg.pitch_low - low, cfg.pitch_high - high + 1), key=lambda s: (s % 12 != 0, abs(s)))
    shift = shifts[0]
    if shift == 0:
        return tune
    return Tune(tune.name, [dataclasses.replace(n, pitch=n.pitch + shift) for n in tune.notes])


def encode_tunes(tunes: list[Tune], cfg: MelodyConfig) -> list[np.ndarray]:
    return [midi_io.encode(t.notes, cfg.pitch_low, cfg.pitch_high) for t in tunes]


def _ragged(tunes: list[Tune], cfg: MelodyConfig) -> tf.data.Dataset:
    sequences = encode_tunes(tunes, cfg)
    return tf.data.Dataset.from_tensor_slices(tf.ragged.constant(sequences, dtype=tf.int32))


def transpose_tokens(tokens: tf.Tensor, seed: tf.Tensor, cfg: MelodyConfig) -> tf.Tensor:
    """Shift every NOTE token by one random semitone count in cfg.transpose that keeps the tune
    inside the vocabulary (stateless: the same seed gives the same shift)."""
    first, last = midi_io.FIRST_NOTE_TOKEN, midi_io.FIRST_NOTE_TOKEN + cfg.pitch_high - cfg.pitch_low
    is_note = tokens >= first
    notes = tf.boolean_mask(tokens, is_note)
    low = tf.maximum(cfg.transpose[0], first - tf.reduce_min(notes))
    high = tf.minimum(cfg.transpose[1], last - tf.reduce_max(notes))
    shift = tf.random.stateless_uniform([], seed, minval=low, maxval=high + 1, dtype=tf.int32)
    return tf.where(is_note, tokens + shift, tokens)


def _to_model_io(tokens):
    inputs, targets = tokens[:-1], tokens[1:]
    return inputs, targets, tf.cast(targets != midi_io.PAD, tf.float32)


def _batched(ds: tf.data.Dataset, cfg: MelodyConfig, batch_size: int) -> tf.data.Dataset:
    """Padded batches of tunes of similar length (less padding, same masks)."""
    boundaries = [b for b in (128, 192, 256, 384, 512, 768, 1024) if b < cfg.max_steps]
    ds = ds.map(_to_model_io, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.bucket_by_sequence_length(
        lambda x, y, w: tf.shape(x)[0], boundaries, [batch_size] * (len(boundaries) + 1),
        padding_values=(midi_io.PAD, midi_io.PAD, 0.0))


def training_dataset(tunes: list[Tune], cfg: MelodyConfig, context: tf.distribute.InputContext | None = None,
                     endless: bool = False) -> tf.data.Dataset:
    """One epoch of shuffled, randomly transposed tunes (new order and shifts every epoch);
    `endless`: repeated forever (fit then counts `steps_per_epoch`).

    Under a distribution strategy (`context`): input pipeline k of K takes tunes k, K + k, ... and
    batches per replica. Length buckets give workers different batch counts per pass, so
    distributed training uses `endless`.
    """
    cli.require_utf8_temporary_folder()
    context = context or tf.distribute.InputContext()
    if len(tunes) < context.num_input_pipelines:
        raise UsageError(f"{len(tunes)} training tunes cannot feed {context.num_input_pipelines} workers")
    tunes = tunes[context.input_pipeline_id::context.num_input_pipelines]
    seed = cfg.seed + context.input_pipeline_id
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    ds = _ragged(tunes, cfg).shuffle(len(tunes), seed=seed, reshuffle_each_iteration=True)
    ds = tf.data.Dataset.zip(ds, seeds).map(lambda t, s: transpose_tokens(t, s, cfg),
                                            num_parallel_calls=tf.data.AUTOTUNE)
    ds = _batched(ds, cfg, context.get_per_replica_batch_size(cfg.batch_size)).shuffle(64, seed=seed)
    return (ds.repeat() if endless else ds).prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(tunes: list[Tune], cfg: MelodyConfig) -> int:
    """Steps of one pass over `tunes` in global batches (for the endless distributed pipeline)."""
    return max(1, len(tunes) // cfg.batch_size)


def validation_dataset(tunes: list[Tune], cfg: MelodyConfig,
                       context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """The held-out tunes untransposed, in a fixed order, cached (all of them on every worker,
    batched per replica)."""
    cli.require_utf8_temporary_folder()  # its maps are traced: a clear refusal, not pybind's cast error
    context = context or tf.distribute.InputContext()
    batch = max(1, cfg.batch_size // context.num_replicas_in_sync)
    return _batched(_ragged(tunes, cfg), cfg, batch).cache().prefetch(tf.data.AUTOTUNE)
