"""Continue a tune: primer notes in, the model's continuation out (library API of the CLI and app).

    generator = MelodyGenerator.from_export("saved_models/melody")     # or .from_keras(model, cfg)
    result = generator.continue_tune(parse_note_string("G4 G4 G4 D4 E4 E4 D4:2"), temperature=0.9)
    result.primer, result.generated, result.ended
"""

from __future__ import annotations

import dataclasses
import logging
import numbers
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from audio_dl import midi_io
from audio_dl.config import MelodyConfig, load_config
from audio_dl.errors import UsageError
from audio_dl.export import newest_export, require_utf8_saved_model_path
from audio_dl.models.melody import MelodySampler, one_step_from

log = logging.getLogger(__name__)

TEMPERATURES = (0.01, 10.0)  # below, float32 logits / temperature overflow; above, every token is as likely
MAX_NOTES = 2000  # the graph runs up to 32 steps per requested note and cannot be interrupted
INT32_MAX = 2**31 - 1  # seed and top_k are int32 in the graph


MAX_STEPS = 32 * MAX_NOTES  # grid steps one call may run (about 10 s on a CPU core)


def _whole(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_sampling(temperature: float, top_k: int = 0, seed: int = 0, max_notes: int | None = None,
                   max_steps: int | None = None, names: dict[str, str] | None = None) -> None:
    """UsageError naming the first sampling setting out of range or of the wrong type; `names`
    gives a setting the name its caller knows it by (a CLI's "--top-k" for top_k)."""
    def name(key: str) -> str:
        return (names or {}).get(key, key)

    optional = {"max_notes": max_notes, "max_steps": max_steps}  # None: no limit of this kind
    for key, value in {"top_k": top_k, "seed": seed, **optional}.items():
        if not (_whole(value) or (key in optional and value is None)):
            raise UsageError(f"{name(key)} must be a whole number (got {value!r})")
    if not isinstance(temperature, numbers.Real) or isinstance(temperature, bool):
        raise UsageError(f"{name('temperature')} must be a number (got {temperature!r})")
    ranges = {"temperature": (temperature, *TEMPERATURES, f"[{TEMPERATURES[0]:g}, {TEMPERATURES[1]:g}]"),
              "top_k": (top_k, 0, INT32_MAX, "[0, 2**31 - 1]"), "seed": (seed, 0, INT32_MAX, "[0, 2**31 - 1]"),
              "max_notes": (max_notes, 1, MAX_NOTES, f"[1, {MAX_NOTES}]"),
              "max_steps": (max_steps, 1, MAX_STEPS, f"[1, {MAX_STEPS}]")}
    for key, (value, low, high, text) in ranges.items():
        if value is not None and not low <= value <= high:  # NaN fails too; a 400-digit int compares exactly
            shown = value if isinstance(value, numbers.Integral) else f"{value:g}"
            raise UsageError(f"{name(key)} must be in {text} (got {shown})")


def check_primer(primer) -> None:
    """UsageError unless `primer` is a list of midi_io.Note with whole pitches 0..127, starts >= 0
    and durations >= 1, one line in time order, each note ending by the time the next starts
    (midi_io.parse_note_string makes one from text; midi_io.encode would garble others)."""
    if isinstance(primer, str) or not isinstance(primer, (list, tuple)) or \
            not all(isinstance(note, midi_io.Note) for note in primer):
        raise UsageError("the primer must be a list of midi_io.Note (parse_note_string('G4 A4:2') makes one)")
    for note in primer:
        if not (_whole(note.pitch) and _whole(note.start) and _whole(note.duration)
                and 0 <= note.pitch <= 127 and note.start >= 0 and note.duration >= 1):
            raise UsageError(f"primer note {note} needs a pitch in 0..127, a start >= 0 and a duration >= 1 step")
    for before, note in zip(primer, primer[1:]):
        if note.start < before.start + before.duration:
            raise UsageError(f"primer note {note} starts before the note listed before it, {before}, ends: give "
                             "one line of notes, each ending by the time the next starts")


@dataclasses.dataclass
class Continuation:
    """primer: the primer as the model read it (moved by `transposed` semitones; its last note lasts
    as long as the model held it, which may reach past primer_steps, where the continuation starts)."""

    primer: list[midi_io.Note]
    generated: list[midi_io.Note]
    ended: bool  # the model produced END (the tune ended by itself)
    tokens: np.ndarray  # generated tokens
    transposed: int = 0  # semitones the primer was shifted to fit the vocabulary
    primer_steps: int | None = None  # grid steps the model read as primer: the continuation starts here


def resolve_export(path: str | Path) -> Path:
    """A version folder, or the highest version under a TF Serving base path or a training run's
    export/."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"model not found: {path}")
    newest = newest_export(path)
    if newest is None:
        raise UsageError(f"{path} is not a melody SavedModel, a base path holding versions of one or a "
                         "training run with an export")
    return newest


def load_melody_export(path: str | Path):
    """(loaded SavedModel, its MelodyConfig, version folder); UsageError if it is not a melody model."""
    version = resolve_export(path)
    require_utf8_saved_model_path(version)
    try:
        loaded = tf.saved_model.load(str(version))
        ok = {"generate", "score"} <= set(loaded.signatures)
    except Exception:  # noqa: BLE001 - any loader failure means "not a model we can use"
        ok = False
    if not ok:
        raise UsageError(f"{version} is not a melody model (no 'generate'/'score' signatures)")
    return loaded, load_config(MelodyConfig, version / "config.json"), version


def export_scorer(loaded):
    """tokens [B, T] -> logits [B, T, V] through a loaded export's `score` signature."""
    score = loaded.signatures["score"]
    return lambda tokens: score(tokens=tf.constant(tokens, tf.int32))["logits"].numpy()


def keras_scorer(model: keras.Model):
    """tokens [B, T] -> logits [B, T, V] of a Keras folknet (for melody_metrics.teacher_forced)."""
    return lambda tokens: model(tokens, training=False)["logits"].numpy()


class MelodyGenerator:
    """Wraps a `generate(primer, temperature, top_k, seed, max_steps) -> {"tokens"}` function."""

    def __init__(self, generate_fn, cfg: MelodyConfig):
        self._generate = generate_fn
        self.cfg = cfg

    @classmethod
    def from_export(cls, path: str | Path) -> "MelodyGenerator":
        loaded, cfg, _ = load_melody_export(path)
        generate = loaded.signatures["generate"]
        generator = cls(lambda **kw: generate(**kw), cfg)
        generator._keep_alive = loaded  # the signature's variables live as long as the loaded object
        return generator

    @classmethod
    def from_keras(cls, model: keras.Model, cfg: MelodyConfig) -> "MelodyGenerator":
        sampler = MelodySampler(one_step_from(model, cfg), cfg)
        generator = cls(sampler.generate, cfg)
        generator._keep_alive = sampler  # a tf.function method holds its module only weakly
        return generator

    def fit_primer(self, notes: list[midi_io.Note]) -> tuple[list[midi_io.Note], int]:
        """Primer shifted by whole octaves into the vocabulary's range (with a notice), or UsageError."""
        low, high = min(n.pitch for n in notes), max(n.pitch for n in notes)
        names = midi_io.range_name(self.cfg.pitch_low, self.cfg.pitch_high)
        for shift in sorted(range(-96, 97, 12), key=abs):
            if self.cfg.pitch_low <= low + shift and high + shift <= self.cfg.pitch_high:
                if shift:
                    log.warning("primer transposed by %+d semitones into the model's range %s", shift, names)
                return [dataclasses.replace(n, pitch=n.pitch + shift) for n in notes], shift
        raise UsageError(f"primer pitches {midi_io.range_name(low, high)} do not fit the model's range {names}")

    def continue_tune(self, primer: list[midi_io.Note], temperature: float = 1.0, top_k: int = 0, seed: int = 0,
                      max_steps: int | None = None, max_notes: int | None = None) -> Continuation:
        """Continue `primer` (a list of midi_io.Note; may be empty) until END, `max_steps` grid steps
        or `max_notes` generated notes, whichever comes first; `ended` says the model chose to stop.
        max_steps defaults to the corpus limit, or room for max_notes long notes when that is given
        (the steps run in the graph; the notes past max_notes are dropped after). The same `seed`
        and settings give the same tune; vary the seed for another one."""
        check_primer(primer)
        check_sampling(temperature, top_k, seed, max_notes, max_steps)
        if max_steps is None:  # with max_notes: room for long notes; max_notes stops it earlier
            max_steps = self.cfg.max_steps if max_notes is None else max(self.cfg.max_steps, 32 * max_notes)
        if primer and midi_io.melody_steps(primer) > self.cfg.max_steps:
            raise UsageError(f"the primer is {midi_io.melody_steps(primer)} grid steps long; "
                             f"the model takes at most {self.cfg.max_steps}")
        primer, shift = self.fit_primer(primer) if primer else ([], 0)
        primer_tokens = midi_io.encode(primer, self.cfg.pitch_low, self.cfg.pitch_high)[1:-1]
        tokens = self._generate(primer=tf.constant(primer_tokens, tf.int32),
                                temperature=tf.constant(temperature, tf.float32),
                                top_k=tf.constant(top_k, tf.int32), seed=tf.constant(seed, tf.int32),
                                max_steps=tf.constant(max_steps, tf.int32))["tokens"].numpy()
        notes = midi_io.decode(np.concatenate([primer_tokens, tokens]), self.cfg.pitch_low)
        primer_steps = len(primer_tokens)
        generated = [n for n in notes if n.start >= primer_steps]
        ended = bool(len(tokens) and tokens[-1] == midi_io.END)
        if max_notes is not None and len(generated) > max_notes:
            generated, ended = generated[:max_notes], False
        return Continuation(primer=[n for n in notes if n.start < primer_steps], generated=generated,
                            ended=ended, tokens=tokens, transposed=shift, primer_steps=primer_steps)
