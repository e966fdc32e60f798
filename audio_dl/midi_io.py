"""Melodies: MIDI files <-> single-line notes on a grid <-> tokens; note strings; audio rendering.

A melody is a list of `Note(pitch, start, duration)` in grid steps (`steps_per_quarter` per
quarter note, from the file's ticks per quarter, so tempo changes do not move the grid) with no
two notes sounding at once.

Tokens, one per grid step (see `MelodyConfig`)::

    PAD START  END  REST  HOLD  NOTE(pitch_low) ... NOTE(pitch_high)
     0    1     2    3     4     5 ...

`G4 G4` (two notes) is NOTE(67) NOTE(67); a held `G4` of two steps is NOTE(67) HOLD.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from fractions import Fraction
from numbers import Rational, Real
from pathlib import Path
from typing import Iterable

import mido
import numpy as np
import pretty_midi

from audio_dl.errors import UsageError

log = logging.getLogger(__name__)

PAD, START, END, REST, HOLD = 0, 1, 2, 3, 4
FIRST_NOTE_TOKEN = 5
SPECIAL_TOKENS = ("PAD", "START", "END", "REST", "HOLD")
SKIP_REASONS = ("unreadable", "empty", "drums_only", "polyphonic", "too_long")
STRUCK_TOGETHER_STEPS = 0.25  # notes starting this close (in grid steps) may be one chord or one key's bounce


@dataclasses.dataclass(frozen=True)
class Note:
    pitch: int  # MIDI note number
    start: int  # grid step
    duration: int  # grid steps, >= 1


class MelodySkipped(ValueError):
    """A MIDI file holds no usable single-line melody; `reason` is one of SKIP_REASONS."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass
class ReadStats:
    """What reading dropped: extra voices (instruments) and chord notes below the top (of one file,
    or summed over a corpus by `add`)."""

    dropped_voices: int = 0
    dropped_chord_notes: int = 0
    merged_by_grid: int = 0  # notes dropped where two onsets fell on one grid step (e.g. triplets)

    def add(self, other: ReadStats) -> None:
        for field in dataclasses.fields(ReadStats):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def dropped_text(self) -> str:
        """The counts that are not 0 in words, e.g. "2 extra voices, 1 chord note below the melody"
        ("" when nothing was dropped): the one wording of the corpus report and the primer warning."""
        counts = ((self.dropped_voices, "extra voice", ""),
                  (self.dropped_chord_notes, "chord note", " below the melody"),
                  (self.merged_by_grid, "onset", " sharing a grid step"))
        return ", ".join(f"{n} {noun}{'s' * (n != 1)}{rest}" for n, noun, rest in counts if n)


def _parse(path: str | Path, steps_per_quarter: int = 4, max_steps: int | None = None) -> pretty_midi.PrettyMIDI:
    """The file as pretty_midi reads it. MelodySkipped "unreadable" where mido or pretty_midi fails;
    "too_long" where pretty_midi refused its length (past MAX_TICK ticks: "likely corrupt") and
    its notes span more than `max_steps` grid steps, as a long tune's do."""
    try:
        data = mido.MidiFile(str(path))
    except Exception as error:  # noqa: BLE001 - mido raises many types on corrupt files
        raise _unreadable(path, error) from None
    try:
        return pretty_midi.PrettyMIDI(mido_object=data)
    except Exception as error:  # noqa: BLE001 - and pretty_midi on files mido reads
        data = mido.MidiFile(str(path))  # afresh: pretty_midi made the event times absolute in place
        last_event, first_note, last_note = _event_ticks(data)
        if max_steps is not None and data.ticks_per_beat > 0 and last_event > pretty_midi.pretty_midi.MAX_TICK:
            steps = grid_step(Fraction((last_note - first_note) * steps_per_quarter, data.ticks_per_beat))
            if steps > max_steps:
                raise MelodySkipped("too_long", f"its notes span {steps} steps > {max_steps}") from None
        raise _unreadable(path, error) from None


def _unreadable(path: str | Path, error: Exception) -> MelodySkipped:
    reason = str(error) or type(error).__name__  # some of mido's errors carry no message
    return MelodySkipped("unreadable", f"{Path(path).name}: {reason}")


def _event_ticks(data: mido.MidiFile) -> tuple[int, int, int]:
    """(tick of the last event, of the first note event, of the last note event), over all tracks
    (the note ticks 0 without notes)."""
    last_event, notes = 0, []
    for track in data.tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type in ("note_on", "note_off"):
                notes.append(tick)
        last_event = max(last_event, tick)
    return last_event, min(notes, default=0), max(notes, default=0)


def _pitched_voices(midi: pretty_midi.PrettyMIDI) -> list[pretty_midi.Instrument]:
    """The voices with notes that are not drums, the melody's first; MelodySkipped when none."""
    voices = [inst for inst in midi.instruments if inst.notes]
    if not voices:
        raise MelodySkipped("empty")
    pitched = [inst for inst in voices if not inst.is_drum]
    if not pitched:
        raise MelodySkipped("drums_only")
    return pitched


def read_melody(path: str | Path, steps_per_quarter: int = 4, max_steps: int = 1536,
                max_chord_share: float = 0.1) -> tuple[list[Note], ReadStats]:
    """The melody of a MIDI file: its first non-drum voice, chords (`group_chords`: notes struck together,
    or rolled a few ticks one after another while an earlier one sounds) reduced to their top note,
    on the grid by `snap_to_grid`.

    Raises MelodySkipped when the file cannot be read, has no notes, only drums, more than
    `max_chord_share` of its onsets are chords (polyphonic), or it is longer than `max_steps`.
    """
    midi = _parse(path, steps_per_quarter, max_steps)
    pitched = _pitched_voices(midi)
    stats = ReadStats(dropped_voices=len(pitched) - 1)

    def in_steps(tick: int) -> Fraction:  # exact Fractions, so that grid_step rounds halves up
        return Fraction(tick * steps_per_quarter, midi.resolution)

    chords = group_chords((note.pitch, in_steps(midi.time_to_tick(note.start)), in_steps(midi.time_to_tick(note.end)))
                          for note in pitched[0].notes)
    under_top = [notes_under_top(chord) for chord in chords]
    struck_together = sum(count > 0 for count in under_top)
    if struck_together > max_chord_share * len(chords):
        raise MelodySkipped("polyphonic", f"{struck_together} of {len(chords)} onsets are chords")
    stats.dropped_chord_notes = sum(under_top)
    timed = [top_note(chord) for chord in chords]
    notes, stats.merged_by_grid = snap_to_grid(timed)
    origin = notes[0].start  # tunes start at step 0 (drop a leading silence)
    notes = [dataclasses.replace(n, start=n.start - origin) for n in notes]
    if notes[-1].start + notes[-1].duration > max_steps:
        raise MelodySkipped("too_long", f"{notes[-1].start + notes[-1].duration} steps > {max_steps}")
    return notes, stats


def group_chords(timed: Iterable[tuple[int, Real, Real]]) -> list[list[tuple[int, Real, Real]]]:
    """(pitch, start, end) notes in grid steps grouped into the notes struck together, in order of
    onset (a single note is a chord of one): the one chord rule of MIDI files and the app's piano.
    Notes starting together are a chord; a note starting less than a quarter step after the chord's
    latest onset and less than half a step after its first belongs to it if one of the chord's
    notes still sounds a quarter step after the new note starts. So a chord struck by hand or
    rolled (abc2midi spreads a chord's notes about 10 ticks apart: up to 6 notes at 480 ticks per
    quarter) is one chord, while a quick note let go as the next one starts (a grace note, legato
    or not) is not part of it, and a run of such notes is not one chord."""
    chords: list[list[tuple[int, Real, Real]]] = []
    latest_onset = last_end = 0  # the current chord's latest onset, and where its last note ends
    for note in sorted(timed, key=lambda n: n[1]):
        _, start, end = note
        if chords and (start == latest_onset or start - latest_onset < STRUCK_TOGETHER_STEPS
                       and start - chords[-1][0][1] < 2 * STRUCK_TOGETHER_STEPS
                       and last_end - start >= STRUCK_TOGETHER_STEPS):
            chords[-1].append(note)
            last_end = max(last_end, end)
        else:
            chords.append([note])
            last_end = end
        latest_onset = start
    return chords


def notes_under_top(chord: list[tuple[int, Real, Real]]) -> int:
    """How many pitches of a chord (`group_chords`) lie under its top note: the notes reading it
    leaves out (a key struck twice is one)."""
    return len({pitch for pitch, _, _ in chord}) - 1


def top_note(chord: list[tuple[int, Real, Real]]) -> tuple[int, Real, Real]:
    """(pitch, start, end) of a chord's top note, from the chord's first onset to where the last
    of its strikes ends (a top key struck twice within the chord is one note)."""
    top = max(pitch for pitch, _, _ in chord)
    return top, chord[0][1], max(end for pitch, _, end in chord if pitch == top)


def grid_step(position: Real) -> int:
    """The grid step nearest to `position` (in steps), halves rounded up: the same figure reads
    alike wherever it starts (Python's round() sends halves to the even step)."""
    exact = Fraction(position if isinstance(position, (Rational, float)) else float(position))  # numpy's float32 too
    return int(math.floor(exact + Fraction(1, 2)))  # a Python int, whatever type came in


def snap_to_grid(timed: Iterable[tuple[int, Real, Real]], spread: bool = False) -> tuple[list[Note], int]:
    """Notes from (pitch, start, end) in grid steps (fractions allowed), in order of start, and how
    many onsets were dropped: the one grid rule of MIDI files, note strings and the app's piano.
    Start and end go to the nearest step (`grid_step`; a note keeps at least one). Of notes
    starting on one step, the one that sounds longest is kept, of equals the one that starts
    nearest the step, then the first: a short ornament before a long note, or before a note on the
    beat, leaves that note. With spread=True a note whose step is not after the previous note's
    starts one step after that note instead (a run played faster than the grid keeps every note)
    and the count is of notes so moved. A note still sounding at the next onset is cut there."""
    notes: list[Note] = []
    collisions = 0
    kept_rank = None  # (exact length, -distance to its step) of notes[-1]
    for pitch, exact_start, exact_end in timed:
        start = grid_step(exact_start)
        collides = bool(notes) and notes[-1].start >= start  # at or before the previous note's step
        collisions += collides
        if collides and spread:
            start = notes[-1].start + 1
        end = max(start + 1, grid_step(exact_end))
        rank = (exact_end - exact_start, -abs(exact_start - start))
        if collides and not spread:  # one stays
            if rank > kept_rank:
                notes[-1], kept_rank = Note(pitch, start, end - start), rank
            continue
        if notes and notes[-1].start + notes[-1].duration > start:  # legato overlap: cut the previous
            notes[-1] = dataclasses.replace(notes[-1], duration=start - notes[-1].start)
        notes.append(Note(pitch, start, end - start))
        kept_rank = rank
    return notes, collisions


def starting_qpm(path: str | Path) -> float:
    """The tempo in quarter notes per minute where read_melody's melody starts (120, MIDI's
    default, when the file sets none). Raises MelodySkipped as read_melody does."""
    midi = _parse(path)
    start = min(note.start for note in _pitched_voices(midi)[0].notes)
    times, tempi = midi.get_tempo_changes()
    return float(tempi[max(0, np.searchsorted(times, start, side="right") - 1)])


def melody_steps(notes: list[Note]) -> int:
    return max((n.start + n.duration for n in notes), default=0)


def encode(notes: list[Note], pitch_low: int, pitch_high: int) -> np.ndarray:
    """[START, one token per grid step..., END] as int32. Pitches must lie in the range."""
    steps = np.full(melody_steps(notes), REST, np.int32)
    for note in notes:
        if not pitch_low <= note.pitch <= pitch_high:
            raise ValueError(f"pitch {note.pitch} outside the vocabulary {pitch_low}..{pitch_high}")
        steps[note.start] = FIRST_NOTE_TOKEN + note.pitch - pitch_low
        steps[note.start + 1: note.start + note.duration] = HOLD
    return np.concatenate([[START], steps, [END]]).astype(np.int32)


def decode(tokens, pitch_low: int) -> list[Note]:
    """Notes of a token sequence (START and PAD ignored, stops at END; HOLD after a rest is a rest)."""
    notes: list[Note] = []
    step, sounding = 0, False
    for token in (int(t) for t in tokens):
        if token in (START, PAD):
            continue
        if token == END:
            break
        if token >= FIRST_NOTE_TOKEN:
            notes.append(Note(token - FIRST_NOTE_TOKEN + pitch_low, step, 1))
            sounding = True
        elif token == HOLD and sounding:
            notes[-1] = dataclasses.replace(notes[-1], duration=notes[-1].duration + 1)
        else:
            sounding = False
        step += 1
    return notes


def token_names(pitch_low: int, pitch_high: int) -> list[str]:
    """Readable name of every token id, e.g. ['PAD', ..., 'HOLD', 'D3', 'D#3', ...]."""
    return list(SPECIAL_TOKENS) + [pretty_midi.note_number_to_name(p) for p in range(pitch_low, pitch_high + 1)]


def range_name(pitch_low: int, pitch_high: int) -> str:
    """A pitch range in note names, e.g. "G3..F6"."""
    return f"{pretty_midi.note_number_to_name(pitch_low)}..{pretty_midi.note_number_to_name(pitch_high)}"


_NOTE_WORD = re.compile(r"^(?P<name>[A-Ga-g][#b]?-?\d{1,2}|[Rr])(?::(?P<beats>.*))?$")
MAX_BEATS_CHARACTERS = 16  # a note's length: digits enough for any tune, few enough for exact fractions
_BEATS = re.compile(r"^\d+(?:\.\d+)?$|^\d+/\d+$")


@dataclasses.dataclass
class NoteStringFit:
    """What reading a note string changed to fit the grid and a Note list."""

    moved_to_grid: int = 0  # notes that started or ended between grid steps (e.g. triplets)
    merged_by_grid: int = 0  # of those, notes dropped where two fell on one grid step
    rest_dropped: bool = False  # the string ended with a rest (a Note list ends with its last note)

    def warnings(self, steps_per_quarter: int) -> list[str]:
        """One line per change, in the words of the MIDI primer warning ([] when nothing changed)."""
        lines = []
        if self.moved_to_grid:
            moved = (f"primer: {self.moved_to_grid} note{'s' * (self.moved_to_grid != 1)} off the "
                     f"1/{4 * steps_per_quarter}-note grid moved onto it")
            dropped = ReadStats(merged_by_grid=self.merged_by_grid).dropped_text()
            lines.append(f"{moved} (dropped {dropped})" if dropped else moved)
        if self.rest_dropped:
            lines.append("the rest at the end of the primer is dropped: the continuation starts after its last note")
        return lines


def _quoted(word: str, limit: int = 40) -> str:
    """A word of a note string, quoted for a message: its start and "..." when it is long."""
    return repr(word if len(word) <= limit else word[: limit - 3] + "...")


def _word_steps(word: str, beats: str, steps_per_quarter: int) -> Fraction:
    """The exact length in grid steps of a note word's BEATS; UsageError unless it is at least half a step."""
    if len(beats) > MAX_BEATS_CHARACTERS or not _BEATS.match(beats):
        raise UsageError(f"note {_quoted(word)}: write its length in beats as a positive number such as 2, 0.5 or 1/2 "
                         f"(at most {MAX_BEATS_CHARACTERS} characters)")
    numerator, _, denominator = beats.partition("/")
    numerator, denominator = Fraction(numerator), Fraction(denominator or 1)
    if denominator == 0:
        raise UsageError(f"note {_quoted(word)} has a zero denominator")
    steps = numerator / denominator * steps_per_quarter
    if grid_step(steps) < 1:
        raise UsageError(f"note {_quoted(word)} is shorter than half a grid step")
    return steps


def read_note_string(text: str, steps_per_quarter: int = 4) -> tuple[list[Note], NoteStringFit]:
    """Notes from words like "G4 G4 G4 D4 E4 E4 D4:2": NAME[:BEATS] (default 1 beat = a quarter
    note; BEATS may be 0.5 or 1/2), R for a rest, and what fitting them to the grid changed. Each
    note starts where the lengths before it add up to (exactly), then snap_to_grid places it.
    Raises UsageError naming a bad word."""
    timed: list[tuple[int, Fraction, Fraction]] = []
    position = Fraction(0)  # grid steps
    for word in text.split():
        match = _NOTE_WORD.match(word)
        if match is None:
            raise UsageError(f"unknown note {_quoted(word)}: write NAME[:BEATS] such as G4, F#4:2, Bb3:0.5 or R")
        steps = _word_steps(word, "1" if match["beats"] is None else match["beats"], steps_per_quarter)
        if match["name"].upper() != "R":
            try:
                pitch = pretty_midi.note_name_to_number(match["name"][0].upper() + match["name"][1:])
            except ValueError:
                raise UsageError(f"unknown note {_quoted(word)}") from None
            if not 0 <= pitch <= 127:
                raise UsageError(f"note {_quoted(word)} is outside MIDI's range C-1..G9")
            timed.append((pitch, position, position + steps))
        position += steps
    if not timed:
        raise UsageError("the primer holds no notes")
    notes, merged = snap_to_grid(timed)
    moved = sum(start.denominator != 1 or end.denominator != 1 for _, start, end in timed)
    return notes, NoteStringFit(moved, merged, rest_dropped=position > timed[-1][2])


def parse_note_string(text: str, steps_per_quarter: int = 4) -> list[Note]:
    """read_note_string's notes, with a warning for each thing fitting them to the grid changed."""
    notes, fit = read_note_string(text, steps_per_quarter)
    for line in fit.warnings(steps_per_quarter):
        log.warning("%s", line)
    return notes


def to_pretty_midi(notes: list[Note], steps_per_quarter: int = 4, qpm: float = 120.0,
                   program: int = 0) -> pretty_midi.PrettyMIDI:
    """A one-instrument MIDI file of the notes at `qpm` quarter notes per minute (> 0)."""
    if not 0 < qpm < math.inf:
        raise ValueError(f"qpm must be a positive number of quarter notes per minute (got {qpm})")
    midi = pretty_midi.PrettyMIDI(initial_tempo=qpm)
    instrument = pretty_midi.Instrument(program=program, name="melody")
    seconds_per_step = 60.0 / qpm / steps_per_quarter
    for note in notes:
        instrument.notes.append(pretty_midi.Note(velocity=90, pitch=note.pitch, start=note.start * seconds_per_step,
                                                 end=(note.start + note.duration) * seconds_per_step))
    midi.instruments.append(instrument)
    return midi


def _plucked(phase: np.ndarray) -> np.ndarray:
    """A few harmonics: brighter than a sine, still clean at low sample rates."""
    return np.sin(phase) + 0.4 * np.sin(2 * phase) + 0.2 * np.sin(3 * phase) + 0.1 * np.sin(4 * phase)


def render_audio(notes: list[Note], steps_per_quarter: int = 4, qpm: float = 120.0,
                 sample_rate: int = 22050) -> np.ndarray:
    """Mono float32 waveform of the melody (pretty_midi's additive synthesis, decaying notes)."""
    midi = to_pretty_midi(notes, steps_per_quarter, qpm)
    audio = midi.instruments[0].synthesize(fs=sample_rate, wave=_plucked)
    seconds_per_step = 60.0 / qpm / steps_per_quarter
    envelope = np.ones_like(audio)
    for note in notes:  # an exponential decay per note, like a plucked string
        first = int(note.start * seconds_per_step * sample_rate)
        last = min(len(audio), int((note.start + note.duration) * seconds_per_step * sample_rate))
        envelope[first:last] = np.exp(-3.0 * np.arange(last - first) / sample_rate)
    audio = (audio * envelope)[: int((melody_steps(notes) * seconds_per_step + 0.25) * sample_rate)]  # pretty_midi adds 1 s
    return (0.8 * audio / max(1e-9, float(np.abs(audio).max()))).astype(np.float32)
