"""Folk melody family: MIDI reading and tokens, tf.data, model parity, sampling, metrics, export, CLIs."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sys
from fractions import Fraction
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
import tensorflow as tf

from audio_dl import melody_metrics as mm
from audio_dl import midi_io
from audio_dl.compose import MelodyGenerator
from audio_dl.config import ConfigError, MelodyConfig, make_config
from audio_dl.data import melody as melody_data
from audio_dl.errors import UsageError
from audio_dl.models import melody as melody_models

FIXTURE = Path(__file__).parent / "data" / "folk"
N = midi_io.Note


def tiny_cfg(**overrides) -> MelodyConfig:
    return dataclasses.replace(make_config(MelodyConfig, "tiny", overrides=[f"midi_dir={FIXTURE}"]), **overrides)


def write_midi(path: Path, notes: list[tuple[int, float, float]], is_drum: bool = False, voices: int = 1) -> Path:
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    for _ in range(voices):
        instrument = pretty_midi.Instrument(0, is_drum=is_drum)
        instrument.notes = [pretty_midi.Note(80, p, s, e) for p, s, e in notes]
        midi.instruments.append(instrument)
    midi.write(str(path))
    return path


def write_tempo_midi(path: Path, tempi: list[tuple[int, float]], voices: list[tuple[int, list[int]]]) -> Path:
    """A MIDI file (480 ticks per quarter) with set_tempo events [(tick, qpm)] and, per (channel,
    onset ticks), quarter notes; channel 9 is drums."""
    events = [(tick, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(qpm), time=0)) for tick, qpm in tempi]
    for channel, onsets in voices:
        for tick in onsets:
            events += [(tick, mido.Message("note_on", channel=channel, note=67, velocity=80, time=0)),
                       (tick + 400, mido.Message("note_off", channel=channel, note=67, velocity=0, time=0))]
    track, now = mido.MidiTrack(), 0
    for tick, message in sorted(events, key=lambda e: e[0]):
        track.append(message.copy(time=tick - now))
        now = tick
    mido.MidiFile(ticks_per_beat=480, tracks=[track]).save(str(path))
    return path


def write_line_tunes(folder: Path, count: int, pitches: dict[int, list[int]] | None = None) -> Path:
    """`folder`/tune0.mid ... of sixteenth notes rising 60..72, tune i of `pitches`[i] instead; the
    last note of tune i lasts i + 1 sixteenths, so no two tunes are the same."""
    folder.mkdir()
    for i in range(count):
        line = list((pitches or {}).get(i, range(60, 73)))
        write_midi(folder / f"tune{i}.mid", [(p, 0.125 * k, 0.125 * (k + 1 + i * (k == len(line) - 1)))
                                             for k, p in enumerate(line)])
    return folder


def test_a_primers_tempo_is_the_one_where_its_melody_starts(tmp_path, caplog):
    from audio_dl.generate_melody import QPM, primer_qpm

    count_in = write_tempo_midi(tmp_path / "count_in.mid", [(0, 100), (1920, 80)],
                                [(9, [0, 480, 960, 1440]), (0, [1920, 2400])])  # drums at 100, melody at 80
    assert midi_io.starting_qpm(count_in) == pytest.approx(80, rel=1e-5)
    unset = write_tempo_midi(tmp_path / "unset.mid", [], [(0, [0, 480])])
    assert midi_io.starting_qpm(unset) == 120.0
    slow = write_tempo_midi(tmp_path / "slow.mid", [(0, 10)], [(0, [0, 480])])
    assert primer_qpm(str(slow)) == QPM[0] and "is at 10 qpm; writing at 20" in caplog.text
    caplog.clear()
    assert primer_qpm(str(write_tempo_midi(tmp_path / "edge.mid", [(0, QPM[0] - 0.001)], [(0, [0])]))) == QPM[0]
    assert not caplog.text  # whole microseconds per quarter miss a bound by that much: not worth a warning


# --- MIDI and tokens -------------------------------------------------------------------------

def test_repeated_notes_differ_from_held_notes():
    repeated = [N(67, 0, 1), N(67, 1, 1), N(67, 2, 1)]
    held = [N(67, 0, 3)]
    a, b = midi_io.encode(repeated, 60, 72), midi_io.encode(held, 60, 72)
    assert a.tolist() != b.tolist()
    assert b.tolist() == [midi_io.START, midi_io.FIRST_NOTE_TOKEN + 7, midi_io.HOLD, midi_io.HOLD, midi_io.END]
    assert midi_io.decode(a, 60) == repeated and midi_io.decode(b, 60) == held


def test_encode_decode_round_trip_with_rests():
    notes = [N(60, 0, 2), N(62, 4, 1), N(62, 5, 3)]
    assert midi_io.decode(midi_io.encode(notes, 55, 70), 55) == notes
    with pytest.raises(ValueError, match="outside the vocabulary"):
        midi_io.encode([N(90, 0, 1)], 55, 70)


def test_read_melody_quantises_to_sixteenths(tmp_path):
    # 120 qpm: a quarter is 0.5 s = 4 steps; an eighth rest between the notes
    path = write_midi(tmp_path / "t.mid", [(67, 0.0, 0.5), (67, 0.5, 0.75), (69, 1.0, 2.0)])
    notes, stats = midi_io.read_melody(path)
    assert notes == [N(67, 0, 4), N(67, 4, 2), N(69, 8, 8)]
    assert stats.dropped_voices == 0


def test_an_ornament_rounded_onto_a_long_notes_step_leaves_the_long_note(tmp_path):
    # a 32nd-ish note at step 3.6 and a half note at step 4 round to one step: the longer one stays
    path = write_midi(tmp_path / "t.mid", [(67, 0.0, 0.45), (69, 0.45, 0.5), (71, 0.5, 1.5)])
    notes, stats = midi_io.read_melody(path)
    assert notes == [N(67, 0, 4), N(71, 4, 8)] and stats.merged_by_grid == 1
    assert json.dumps([dataclasses.asdict(note) for note in notes])  # Python ints (a reply to the app holds them)
    # a 32nd before a 16th on the beat: both last one step on the grid, the 16th sounds longer
    assert midi_io.snap_to_grid([(60, 0, 0.5), (62, 0.5, 1), (64, 1, 2)]) == ([N(60, 0, 1), N(64, 1, 1)], 1)
    # as long, the one nearer its step stays; as near too, the first
    fifths = [Fraction(k, 5) for k in range(11)]
    assert midi_io.snap_to_grid([(60, fifths[3], fifths[7]), (62, fifths[6], fifths[10])]) == ([N(62, 1, 1)], 1)
    assert midi_io.snap_to_grid([(60, fifths[4], fifths[8]), (62, fifths[6], fifths[10])]) == ([N(60, 1, 1)], 1)
    # spread (the app's piano): a run faster than the grid keeps every note, each a step after the one before
    run = [(60, 0, 3), (62, 0.4, 0.45), (64, 0.6, 0.7)]
    assert midi_io.snap_to_grid(run, spread=True) == ([N(60, 0, 1), N(62, 1, 1), N(64, 2, 1)], 2)
    assert midi_io.snap_to_grid(run) == ([N(60, 0, 1), N(64, 1, 1)], 1)


def test_halves_of_a_step_round_up_wherever_the_figure_starts(tmp_path):
    for offset in range(4):  # round() would send 0.5 and 2.5 down, 1.5 and 3.5 up
        notes, merged = midi_io.snap_to_grid([(60, offset, offset + 0.5), (62, offset + 0.5, offset + 2)])
        assert [(n.start - offset, n.duration) for n in notes] == [(0, 1), (1, 1)] and merged == 0
    assert midi_io.read_note_string("C4:1/8 D4:3/8")[0] == [N(60, 0, 1), N(62, 1, 1)]  # half a step is one
    assert [type(midi_io.grid_step(x)) for x in (np.float32(0.5), np.int64(2), 0.49999999999999994)] == [int] * 3
    assert [midi_io.grid_step(x) for x in (np.float32(0.5), np.int64(2), 0.49999999999999994)] == [1, 2, 0]
    with pytest.raises(UsageError, match="shorter than half a grid step"):
        midi_io.read_note_string("C4:1/9")
    # 100 ticks per quarter, 3 steps per quarter: tick 250 is step 7.5 exactly, not 7.4999...
    midi = pretty_midi.PrettyMIDI(resolution=100, initial_tempo=120)
    voice = pretty_midi.Instrument(0)
    voice.notes = [pretty_midi.Note(80, 60, 0.0, 0.5), pretty_midi.Note(80, 62, 1.25, 1.5)]
    midi.instruments.append(voice)
    midi.write(str(tmp_path / "t.mid"))
    assert [n.start for n in midi_io.read_melody(tmp_path / "t.mid", steps_per_quarter=3)[0]] == [0, 8]


def test_a_chord_struck_by_hand_keeps_its_top_note_and_counts_as_a_chord(tmp_path):
    rolled = [(60, 0.0, 1.0), (64, 0.01, 1.0), (67, 0.02, 1.0)]  # 0.08 and 0.16 of a step apart
    tune = rolled + [(65 + k, 1.0 + 0.25 * k, 1.25 + 0.25 * k) for k in range(10)]
    notes, stats = midi_io.read_melody(write_midi(tmp_path / "rolled.mid", tune))
    assert notes[0] == N(67, 0, 8) and len(notes) == 11 and stats.dropped_chord_notes == 2
    assert stats.merged_by_grid == 0
    with pytest.raises(midi_io.MelodySkipped, match="polyphonic: 2 of 2 onsets are chords"):
        midi_io.read_melody(write_midi(tmp_path / "strummed.mid", rolled + [(p, 1.0 + 0.01 * k, 2.0)
                                                                           for k, p in enumerate((62, 65, 69))]))
    # a quarter step apart (31.25 ms at 120 qpm, 480 ticks per quarter) is not a chord: two notes on one step
    midi = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=120)
    midi.instruments.append(pretty_midi.Instrument(0))
    midi.instruments[0].notes = [pretty_midi.Note(80, 60, 0.0, 1.0), pretty_midi.Note(80, 64, 0.03125, 1.0)]
    midi.write(str(tmp_path / "apart.mid"))
    assert midi_io.read_melody(tmp_path / "apart.mid")[1] == midi_io.ReadStats(merged_by_grid=1)
    # abc2midi's roll: 10 ticks between notes, five notes past the quarter step from the first; then a tune
    midi.instruments[0].notes = [pretty_midi.Note(80, 60 + 3 * k, k * 10 / 960, 1.0) for k in range(5)] + \
        [pretty_midi.Note(80, 62 + k, 1.0 + 0.25 * k, 1.25 + 0.25 * k) for k in range(12)]
    midi.write(str(tmp_path / "roll.mid"))
    notes, stats = midi_io.read_melody(tmp_path / "roll.mid")
    assert notes[0] == N(72, 0, 8) and stats == midi_io.ReadStats(dropped_chord_notes=4)
    # struck on one tick: a chord, whichever of its notes comes first and however short
    midi.instruments[0].notes = [pretty_midi.Note(80, 72, 0.0, 0.01), pretty_midi.Note(80, 60, 0.0, 1.0)]
    midi.write(str(tmp_path / "stab.mid"))
    assert midi_io.read_melody(tmp_path / "stab.mid", max_chord_share=1.0) == \
        ([N(72, 0, 1)], midi_io.ReadStats(dropped_chord_notes=1))
    stab = [(72, 0, Fraction(2, 25)), (60, 0, 8)]  # (pitch, start, end) in steps
    restruck = stab + [(72, Fraction(1, 10), 8)]  # its top key struck again within it: one note to its last end
    assert midi_io.top_note(restruck) == (72, 0, 8) and midi_io.notes_under_top(restruck) == 1
    for order in (1, -1):  # pretty_midi reads notes back in its own order: ask group_chords itself
        assert [len(chord) for chord in midi_io.group_chords(stab[::order])] == [2]
    # a roll of 7 notes 10 ticks (1/12 step) apart: the 7th, half a step after the first, starts a chord of its own
    roll = [(60 + k, Fraction(k, 12), 8) for k in range(7)]
    assert [len(chord) for chord in midi_io.group_chords(roll)] == [6, 1] == \
        [len(chord) for chord in midi_io.group_chords(roll[::-1])]  # in order of onset, whatever the order given


def test_a_grace_note_or_a_quick_run_is_not_a_chord(tmp_path):
    # a high grace note (20 ms) just before a long note, let go as it starts or 10 ms after (legato):
    # the long note stays, no chord is counted
    for grace_end in (0.47, 0.48):
        grace = [(67, 0.0, 0.45), (72, 0.45, grace_end), (71, 0.47, 1.5), (69, 1.5, 2.0)]
        notes, stats = midi_io.read_melody(write_midi(tmp_path / "grace.mid", grace), max_chord_share=0.0)
        assert notes == [N(67, 0, 4), N(71, 4, 8), N(69, 12, 4)] and stats.dropped_chord_notes == 0
    # a rolled chord whose first note is let go early keeps its top note
    rolled = [(60, 0.0, 0.015), (64, 0.005, 1.0), (67, 0.02, 1.0), (69, 1.0, 2.0)]
    notes, _ = midi_io.read_melody(write_midi(tmp_path / "rolled.mid", rolled), max_chord_share=1.0)
    assert notes == [N(67, 0, 8), N(69, 8, 8)]
    run = [(60 + k, 0.02 * k, 0.02 * (k + 1)) for k in range(6)]  # six 128th-ish notes, each ended
    notes, stats = midi_io.read_melody(write_midi(tmp_path / "run.mid", run), max_chord_share=0.0)
    assert stats.dropped_chord_notes == 0 and stats.merged_by_grid == len(run) - len(notes)


@pytest.mark.parametrize("kind, reason", [("corrupt", "unreadable"), ("drums", "drums_only"),
                                          ("chords", "polyphonic"), ("long", "too_long"), ("empty", "empty")])
def test_bad_midi_files_are_skipped_with_a_reason(tmp_path, kind, reason):
    path = tmp_path / f"{kind}.mid"
    if kind == "corrupt":
        path.write_bytes(b"MThd garbage" + bytes(range(50)))
    elif kind == "drums":
        write_midi(path, [(36, 0, 0.5), (38, 0.5, 1.0)], is_drum=True)
    elif kind == "chords":
        write_midi(path, [(p, t, t + 0.5) for t in (0.0, 0.5, 1.0) for p in (60, 64, 67)])
    elif kind == "long":
        write_midi(path, [(60, t, t + 0.25) for t in np.arange(0, 200, 0.5)])
    else:
        write_midi(path, [])
    with pytest.raises(midi_io.MelodySkipped) as caught:
        midi_io.read_melody(path, max_steps=256)
    assert caught.value.reason == reason


def test_an_empty_midi_file_is_unreadable_for_a_named_reason(tmp_path):
    (tmp_path / "nothing.mid").write_bytes(b"")
    with pytest.raises(midi_io.MelodySkipped, match="nothing.mid: EOFError"):
        midi_io.read_melody(tmp_path / "nothing.mid")


def test_a_valid_midi_too_long_for_pretty_midi_is_too_long_not_unreadable(tmp_path):
    onsets = list(range(0, 10**7 + 48000, 48000))  # a note every 100 quarters: past pretty_midi's 10^7 ticks
    long = write_tempo_midi(tmp_path / "long.mid", [(0, 120)], [(0, onsets)])
    with pytest.raises(midi_io.MelodySkipped, match=r"too_long: its notes span 836\d\d steps > 1536"):
        midi_io.read_melody(long)
    late = write_tempo_midi(tmp_path / "late.mid", [(0, 120), (2 * 10**7, 100)], [(0, [0, 480])])
    with pytest.raises(midi_io.MelodySkipped, match="unreadable: late.mid: .*likely corrupt"):
        midi_io.read_melody(late)  # a tick pretty_midi refuses, yet short notes: not told apart from corruption


def test_corpus_counts_skips_and_keeps_the_first_voice(tmp_path):
    write_midi(tmp_path / "good.mid", [(60, 0, 0.5), (62, 0.5, 1.0)])
    write_midi(tmp_path / "duet.mid", [(60, 0, 0.5), (62, 0.5, 1.0)], voices=2)
    write_midi(tmp_path / "drums.mid", [(36, 0, 0.5)], is_drum=True)
    (tmp_path / "broken.mid").write_bytes(b"not midi")
    tunes, report = melody_data.read_tunes((str(tmp_path),), tiny_cfg())
    assert len(tunes) == 2 and report.files == 4 and report.kept == 2
    assert report.skipped == {"drums_only": 1, "unreadable": 1} and report.dropped.dropped_voices == 1
    assert "4 MIDI files -> 2 single-line tunes" in report.summary()


def test_the_corpus_report_names_the_first_skipped_file_and_its_reason(tmp_path):
    write_midi(tmp_path / "good.mid", [(60, 0, 0.5), (62, 0.5, 1.0)])
    (tmp_path / "broken.mid").write_bytes(b"not midi")
    (tmp_path / "empty.mid").write_bytes(b"")
    _, report = melody_data.read_tunes((str(tmp_path),), tiny_cfg())
    assert report.summary().startswith("3 MIDI files -> 1 single-line tunes (skipped: 2 unreadable;")
    assert f"; first skipped: {tmp_path.name}/broken.mid (unreadable: MThd not found" in report.summary()
    folder = write_line_tunes(tmp_path / "tunes", 12, {3: [48, 60]})
    corpus = melody_data.load_corpus(tiny_cfg(midi_dir=(str(folder),), pitch_low=60, pitch_high=72))
    assert "; first skipped: tunes/tune3.mid (outside pitch range: notes C3..C4, range C4..C5))" in corpus.report.summary()


def test_a_tune_whose_file_name_is_not_utf8_is_skipped_and_named_printably(tmp_path):
    tmp_path = tmp_path / os.fsdecode(b"M\xe4rz") / "tunes"  # a folder above the tunes may be called anything
    tmp_path.mkdir(parents=True)
    write_midi(tmp_path / "good.mid", [(60, 0, 0.5), (62, 0.5, 1.0)])
    write_midi(Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.mid")), [(60, 0, 0.5), (62, 0.5, 1.0)])
    tunes, report = melody_data.read_tunes((str(tmp_path),), tiny_cfg())
    assert [t.name for t in tunes] == [f"{tmp_path.name}/good.mid"] and report.skipped == {"unreadable": 1}
    assert (f"first skipped: {tmp_path.name}/caf\\xe9.mid (unreadable: the file name is not valid UTF-8 "
            "(rename it))") in report.summary()


def test_empty_folder_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no MIDI files"):
        melody_data.read_tunes((str(tmp_path),), tiny_cfg())


def test_note_strings():
    notes = midi_io.parse_note_string("G4 G4:0.5 R D4:2 Bb3:1/2", steps_per_quarter=4)
    assert notes == [N(67, 0, 4), N(67, 4, 2), N(62, 10, 8), N(58, 18, 2)]
    for bad in ("H4", "G4:x", "G4:0.1", "R R", "", "G4:1/0", "C99999999999999999999"):
        with pytest.raises(UsageError):
            midi_io.parse_note_string(bad)
    for bad_length in ("G4:1e9", "G4:-1", "G4:inf", "G4:"):  # a known note: the length is what is wrong
        with pytest.raises(UsageError, match=f"note '{bad_length}': write its length in beats"):
            midi_io.parse_note_string(bad_length)
    for long_word in ("G4:1/" + "1" * 5000, "X" * 5000):  # named by their start, in a line of a readable length
        with pytest.raises(UsageError, match=f"note '{long_word[:37]}\\.\\.\\.'") as raised:
            midi_io.parse_note_string(long_word)
        assert len(str(raised.value)) < 200
    assert [n.pitch for n in midi_io.parse_note_string("C-1 G9")] == [0, 127]
    for outside in ("G#9", "C10", "Cb-1", "C-9"):
        with pytest.raises(UsageError, match=f"note '{outside}' is outside MIDI's range C-1..G9"):
            midi_io.parse_note_string(outside)


def test_a_rest_at_the_end_of_a_note_string_is_named_as_dropped(caplog):
    assert midi_io.parse_note_string("C4 D4 R:4") == [N(60, 0, 4), N(62, 4, 4)]
    assert "the rest at the end of the primer is dropped" in caplog.text
    caplog.clear()
    midi_io.parse_note_string("C4 R D4")
    assert not caplog.text


def test_a_midi_primer_names_the_voices_and_chord_notes_it_drops(tmp_path, caplog):
    from audio_dl.generate_melody import read_primer

    midi = pretty_midi.PrettyMIDI()
    for pitches in ([40, 43], [67, 69, 71]):
        voice = pretty_midi.Instrument(0)
        voice.notes = [pretty_midi.Note(90, p, 0.5 * i, 0.5 * i + 0.5) for i, p in enumerate(pitches)]
        midi.instruments.append(voice)
    midi.instruments[0].notes.append(pretty_midi.Note(90, 36, 0.0, 0.5))  # a chord under its first note
    midi.write(str(tmp_path / "two_voices.mid"))
    assert [n.pitch for n in read_primer(str(tmp_path / "two_voices.mid"), 4)] == [40, 43]
    assert "dropped 1 extra voice, 1 chord note below the melody (the primer is" in caplog.text


def test_the_primer_warning_and_the_corpus_report_word_what_they_drop_alike(tmp_path, caplog):
    from audio_dl.generate_melody import read_primer

    # two voices; the second onset 50 ms (0.4 of a step) after the first, on the same 16th step
    path = write_midi(tmp_path / "duet.mid", [(60, 0.0, 0.5), (62, 0.05, 1.0), (64, 1.0, 1.5)], voices=2)
    read_primer(str(path), 4)
    _, report = melody_data.read_tunes((str(tmp_path),), tiny_cfg())
    words = "dropped: 1 extra voice, 1 onset sharing a grid step"
    assert words in report.summary() and words.replace(":", "") in caplog.text


def test_a_tempo_of_zero_is_refused():
    with pytest.raises(ValueError, match="qpm must be a positive number"):
        midi_io.render_audio([N(69, 0, 4)], 4, qpm=0)


def test_render_audio_is_finite_and_as_long_as_the_tune():
    audio = midi_io.render_audio([N(69, 0, 4), N(71, 4, 4)], 4, qpm=120, sample_rate=8000)
    assert np.isfinite(audio).all() and len(audio) == 8000 + 2000 and np.abs(audio).max() <= 0.81


# --- tf.data ----------------------------------------------------------------------------------

def test_fixture_corpus_split_and_vocabulary():
    corpus = melody_data.load_corpus(tiny_cfg())
    assert corpus.report.kept == 50 and len(corpus.train) + len(corpus.val) == 50 and corpus.val
    cfg = corpus.cfg
    assert cfg.pitch_low == min(t.pitch_range[0] for t in corpus.train)
    assert all(cfg.pitch_low <= p <= cfg.pitch_high for t in corpus.val for p in t.pitch_range)


def test_a_pitch_range_the_user_sets_is_kept_and_tunes_outside_it_are_skipped():
    cfg = make_config(MelodyConfig, "tiny", overrides=[f"midi_dir={FIXTURE}", "pitch_low=60", "pitch_high=84"])
    corpus = melody_data.load_corpus(cfg)
    assert (corpus.cfg.pitch_low, corpus.cfg.pitch_high) == (60, 84) and melody_models.vocab_size(corpus.cfg) == 5 + 25
    assert corpus.report.skipped == {"outside_pitch_range": 9} and corpus.report.kept == 41
    assert "(skipped: 9 outside pitch range;" in corpus.report.summary()
    assert all(60 <= p <= 84 for t in corpus.train + corpus.val for p in t.pitch_range)
    with pytest.raises(UsageError, match=r"no training tune lies inside the pitch range C4\.\.C#4 \(pitch_low=60,"):
        melody_data.load_corpus(dataclasses.replace(cfg, pitch_high=61))
    with pytest.raises(ConfigError, match="set both pitch_low and pitch_high"):
        make_config(MelodyConfig, "tiny", overrides=["pitch_high=84"])


def test_a_saved_run_config_reads_the_same_tunes_as_the_run_did(tmp_path):
    """A run's config.json holds the range taken from its training tunes: reading the corpus with it
    (to resume, or to evaluate an export) gives the same split, nothing skipped, even with a
    validation tune above that range (moved down an octave both times)."""
    folder = tmp_path / "tunes"
    folder.mkdir()
    for i in range(12):
        name = f"tune{i}.mid"
        top = 84 if melody_data.is_validation(f"tunes/{name}", 0.1) else 72
        write_midi(folder / name, [(p, 0.25 * k, 0.25 * (k + 1 + i * (p == top)))  # last notes differ: 12 tunes
                                   for k, p in enumerate(range(top - 12, top + 1))])
    first = melody_data.load_corpus(tiny_cfg(midi_dir=(str(folder),)))
    assert first.cfg.pitch_high == 72 and first.val
    again = melody_data.load_corpus(first.cfg)
    assert again.cfg == first.cfg and not again.report.skipped
    assert [t.name for t in again.train] == [t.name for t in first.train] and again.val == first.val


def test_midi_note_0_is_a_pitch_of_the_range_taken_from_the_tunes(tmp_path):
    folder = write_line_tunes(tmp_path / "tunes", 12, {3: [0, 60, 72]})
    corpus = melody_data.load_corpus(tiny_cfg(midi_dir=(str(folder),)))
    assert (corpus.cfg.pitch_low, corpus.cfg.pitch_high) == (0, 72) and not corpus.report.skipped


def test_a_range_one_tune_widens_by_octaves_is_named_in_a_warning(tmp_path, caplog):
    melody_data.load_corpus(tiny_cfg())
    assert "widened" not in caplog.text  # the fixture's lowest and highest tunes lie within an octave of the rest
    folder = write_line_tunes(tmp_path / "tunes", 12, {3: [1, 60, 127]})
    corpus = melody_data.load_corpus(tiny_cfg(midi_dir=(str(folder),)))
    assert (corpus.cfg.pitch_low, corpus.cfg.pitch_high) == (1, 127)
    assert ("pitch range C#-1..G9 (127 pitches) taken from the training tunes is widened by more than an octave by "
            "tunes/tune3.mid (C#-1..G9); set pitch_low and pitch_high") in caplog.text


def test_validation_tunes_wider_than_the_range_are_counted_as_skipped(tmp_path):
    folder = write_line_tunes(tmp_path / "tunes", 25, {24: list(range(48, 80))})  # tunes 11 and 24 are held out
    corpus = melody_data.load_corpus(tiny_cfg(midi_dir=(str(folder),), pitch_low=60, pitch_high=72))
    assert [t.name for t in corpus.val] == ["tunes/tune11.mid"] and len(corpus.train) == 23
    assert corpus.report.kept == 24 and corpus.report.skipped == {"outside_pitch_range": 1}
    assert "(skipped: 1 outside pitch range;" in corpus.report.summary()


def test_a_range_that_leaves_no_validation_tune_says_so_not_too_few_tunes(tmp_path, capsys):
    from audio_dl import cli, train_melody

    folder = write_line_tunes(tmp_path / "tunes", 12, {11: list(range(48, 80))})  # tune11, held out, spans C3..G5
    with pytest.raises(UsageError, match=r"^the pitch range C4\.\.C5 \(pitch_low=60, pitch_high=72\) leaves no "
                                         r"validation tune: the one held-out tune spans more than it \(12 MIDI files "
                                         r"-> 11 single-line tunes \(skipped: 1 outside pitch range;"):
        melody_data.load_corpus(tiny_cfg(midi_dir=(str(folder),), pitch_low=60, pitch_high=72))
    with pytest.raises(UsageError, match=r"^the pitch range C4\.\.C5 \(taken from the training tunes\) leaves no"):
        melody_data.load_corpus(tiny_cfg(midi_dir=(str(folder),)))
    run = tmp_path / "run"
    assert cli.run_main(train_melody.main, ["--preset", "tiny", "--midi-dir", str(folder), "--run-dir", str(run),
                                            "--publish", "never", "--quiet", "--set", "pitch_low=60",
                                            "--set", "pitch_high=72"]) == 2
    error = capsys.readouterr().err
    assert "leaves no validation tune" in error and "too few tunes" not in error and len(error.splitlines()) == 1
    assert not run.exists()


def test_the_validation_digest_a_resumed_run_compares_changes_with_any_tune_name_or_note():
    from audio_dl import melody_training

    cfg = tiny_cfg(pitch_low=60, pitch_high=72)
    tunes = [melody_data.Tune("folk/a.mid", [N(67, 0, 2), N(69, 2, 2)]), melody_data.Tune("folk/b.mid", [N(60, 0, 4)])]
    digest = melody_training.tunes_digest(tunes, cfg)
    assert melody_training.tunes_digest([dataclasses.replace(t) for t in tunes], cfg) == digest
    assert melody_training.tunes_digest([dataclasses.replace(tunes[0], name="folk/c.mid"), tunes[1]], cfg) != digest
    assert melody_training.tunes_digest([tunes[0], melody_data.Tune("folk/b.mid", [N(60, 0, 3)])], cfg) != digest
    assert melody_training.tunes_digest(tunes[:1], cfg) != digest


def test_a_validation_tune_that_repeats_a_training_tune_is_left_out_and_counted(tmp_path):
    folder = write_line_tunes(tmp_path / "tunes", 12)  # tune11 is held out
    assert [t.name for t in melody_data.load_corpus(tiny_cfg(midi_dir=(str(folder),))).val] == ["tunes/tune11.mid"]
    (tmp_path / "tunes" / "other").mkdir()
    copy = write_midi(tmp_path / "tunes" / "other" / "tune24.mid",  # tune 0 up a fifth: the same tune in another key
                      [(p + 7, 0.125 * k, 0.125 * (k + 1)) for k, p in enumerate(range(60, 73))])
    assert melody_data.is_validation(f"other/{copy.name}", 0.1)
    corpus = melody_data.load_corpus(tiny_cfg(midi_dir=(str(folder),)))
    assert [t.name for t in corpus.val] == ["tunes/tune11.mid"] and len(corpus.train) == 11
    assert corpus.report.kept == 12 and corpus.report.skipped == {"repeats_a_training_tune": 1}
    assert ("(skipped: 1 repeats a training tune; dropped: nothing; first skipped: other/tune24.mid "
            "(repeats a training tune: the notes of tunes/tune0.mid))") in corpus.report.summary()


def test_validation_tunes_that_all_repeat_training_tunes_are_kept_with_a_warning(tmp_path, caplog):
    folder = tmp_path / "tunes"
    folder.mkdir()
    for i in range(12):  # one tune, twelve files
        write_midi(folder / f"tune{i}.mid", [(p, 0.125 * k, 0.125 * (k + 1)) for k, p in enumerate(range(60, 73))])
    corpus = melody_data.load_corpus(tiny_cfg(midi_dir=(str(folder),)))
    assert [t.name for t in corpus.val] == ["tunes/tune11.mid"] and not corpus.report.skipped
    assert ("each of the 1 validation tunes repeats a training tune (e.g. tunes/tune11.mid: the notes of "
            "tunes/tune") in caplog.text


def test_training_batches_are_padded_masked_and_transposed_within_range():
    corpus = melody_data.load_corpus(tiny_cfg())
    cfg = corpus.cfg
    last = melody_models.vocab_size(cfg) - 1
    for inputs, targets, weights in melody_data.training_dataset(corpus.train, cfg).take(4):
        inputs, targets, weights = inputs.numpy(), targets.numpy(), weights.numpy()
        assert inputs.shape == targets.shape == weights.shape
        np.testing.assert_array_equal(weights, targets != midi_io.PAD)
        assert inputs.max() <= last and (inputs[:, 0] == midi_io.START).all()
        following = weights[:, 1:] > 0  # the targets are the inputs shifted by one step
        np.testing.assert_array_equal(inputs[:, 1:][following], targets[:, :-1][following])


def test_transposition_shifts_only_notes_and_stays_in_range():
    cfg = dataclasses.replace(tiny_cfg(), pitch_low=60, pitch_high=72, transpose=(-5, 6))
    tokens = midi_io.encode([N(62, 0, 2), N(70, 2, 1)], 60, 72)
    shifts = set()
    for seed in range(40):
        out = melody_data.transpose_tokens(tf.constant(tokens), tf.constant([seed, 1], tf.int64), cfg).numpy()
        is_note = tokens >= midi_io.FIRST_NOTE_TOKEN
        np.testing.assert_array_equal(out[~is_note], tokens[~is_note])
        shift = set((out - tokens)[is_note])
        assert len(shift) == 1
        shifts |= shift
    assert shifts == set(range(-2, 3))  # 62-2 = 60 and 70+2 = 72 are the range's edges


# --- model, sampling -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_model():
    cfg = tiny_cfg(pitch_low=55, pitch_high=80)
    return melody_models.build_folknet(cfg), cfg


def test_folknet_preset_is_the_demo_network():
    cfg = dataclasses.replace(make_config(MelodyConfig), pitch_low=55, pitch_high=89)
    model = melody_models.build_folknet(cfg)
    lstms = [layer for layer in model.layers if "lstm" in layer.name]
    assert [layer.units for layer in lstms] == [250, 250]
    assert [layer.name for layer in model.layers if "dropout" in layer.name] == ["dropout_1", "dropout_2"]
    assert model.output["logits"].shape[-1] == 5 + 35


def test_one_step_model_equals_the_sequence_model(small_model):
    model, cfg = small_model
    step = melody_models.one_step_from(model, cfg)
    tokens = np.array([midi_io.START, 8, midi_io.HOLD, 9, midi_io.REST, 12, 12, midi_io.HOLD], np.int32)
    expected = model(tokens[np.newaxis], training=False)["logits"].numpy()[0]
    states = {name: np.zeros((1, cfg.lstm_units), np.float32) for name in melody_models.state_names(cfg)}
    for i, token in enumerate(tokens):
        out = step({"token": np.array([token]), **states}, training=False)
        states = {name: out[f"next_{name}"].numpy() for name in states}
        np.testing.assert_allclose(out["logits"].numpy()[0], expected[i], atol=1e-5)


def test_sampling_is_seeded_and_stops_at_end(small_model):
    model, cfg = small_model
    generator = MelodyGenerator.from_keras(model, cfg)
    primer = [N(67, 0, 4), N(67, 4, 4)]
    a = generator.continue_tune(primer, temperature=1.0, seed=5, max_steps=300)
    b = generator.continue_tune(primer, temperature=1.0, seed=5, max_steps=300)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert a.primer == primer and len(a.tokens) <= 300
    assert a.ended == (a.tokens[-1] == midi_io.END) and midi_io.END not in a.tokens[:-1].tolist()
    assert not ({midi_io.PAD, midi_io.START} & set(a.tokens.tolist()))
    assert a.primer_steps == 8 and all(n.start >= 8 for n in a.generated)
    assert generator.continue_tune([], seed=5, max_steps=20).primer_steps == 0


@pytest.mark.parametrize("settings, message", [
    (dict(temperature=1e-45), "temperature must be in [0.01, 10]"), (dict(temperature=1e30), "temperature must be"),
    (dict(temperature=float("nan")), "temperature must be"), (dict(seed=2**32), "seed must be in"),
    (dict(seed=-1), "seed must be in"), (dict(top_k=-1), "top_k must be in [0, 2**31 - 1]"),
    (dict(max_notes=100_000_000), "max_notes must be in [1, 2000]"),
    (dict(max_steps=0), "max_steps must be in [1, 64000]"), (dict(max_steps=2**31), "max_steps must be in"),
    (dict(seed=None), "seed must be a whole number (got None)"), (dict(top_k=2.5), "top_k must be a whole number"),
    (dict(max_notes=True), "max_notes must be a whole number"), (dict(temperature="hot"), "temperature must be a number"),
])
def test_sampling_settings_out_of_range_are_refused(small_model, settings, message):
    model, cfg = small_model
    with pytest.raises(UsageError, match=re.escape(message)):
        MelodyGenerator.from_keras(model, cfg).continue_tune([N(60, 0, 2)], **settings)


def test_sampling_settings_are_named_as_the_caller_knows_them():
    from audio_dl.compose import check_sampling

    with pytest.raises(UsageError, match=re.escape("--top-k must be in [0, 2**31 - 1] (got -1)")):
        check_sampling(1.0, top_k=-1, names={"top_k": "--top-k"})
    with pytest.raises(UsageError, match=re.escape("seed must be in [0, 2**31 - 1] (got 1000")):
        check_sampling(1.0, seed=10**400)  # too big for a float: compared exactly, no OverflowError
    with pytest.raises(UsageError, match=re.escape("temperature must be in [0.01, 10] (got 20)")):
        check_sampling(np.float32(20))


@pytest.mark.parametrize("inputs, message", [
    (dict(temperature=0.0), "temperature must be a finite number > 0"),
    (dict(temperature=float("nan")), "temperature must be a finite number > 0"),
    (dict(temperature=float("inf")), "temperature must be a finite number > 0"),
    (dict(top_k=-1), "top_k must be >= 0"), (dict(max_steps=-5), "max_steps must be >= 0"),
    (dict(primer=[5, 999]), "primer tokens must be in [3, "), (dict(primer=[-1]), "primer tokens must be in [3, "),
    (dict(primer=[midi_io.END]), "primer tokens must be in [3, "),
])
def test_the_served_generate_graph_refuses_what_a_client_sends_wrong(small_model, inputs, message):
    from audio_dl.models.melody import MelodySampler, one_step_from

    model, cfg = small_model
    sampler = MelodySampler(one_step_from(model, cfg), cfg)
    good = dict(primer=[5, 6], temperature=1.0, top_k=0, seed=1, max_steps=4)
    arguments = {k: tf.constant(v, tf.float32 if k == "temperature" else tf.int32) for k, v in (good | inputs).items()}
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        sampler.generate(**arguments)
    sampler.generate(**{k: tf.constant(v, tf.float32 if k == "temperature" else tf.int32) for k, v in good.items()})


@pytest.mark.parametrize("primer, message", [
    ("G4 A4", "must be a list of midi_io.Note"), ([(67, 0, 4)], "must be a list of midi_io.Note"),
    ([N(67, -4, 4)], "a start >= 0"), ([N(67, 0, 0)], "a duration >= 1"), ([N(128, 0, 4)], "a pitch in 0..127"),
    # encode() writes notes in list order: these would lose a note, or lengthen one, without a word
    ([N(62, 4, 4), N(60, 0, 8)], "starts before the note listed before it"),
    ([N(60, 0, 4), N(64, 0, 4)], "starts before the note listed before it"),
    ([N(60, 0, 8), N(62, 2, 2)], "starts before the note listed before it, Note(pitch=60, start=0, duration=8), ends"),
])
def test_a_primer_that_is_not_notes_is_refused(small_model, primer, message):
    model, cfg = small_model
    with pytest.raises(UsageError, match=re.escape(message)):
        MelodyGenerator.from_keras(model, cfg).continue_tune(primer)


def test_pad_and_start_are_never_drawn_even_at_a_huge_temperature():
    """The SavedModel's sampler is also called by TF Serving clients, past the library's range checks."""
    logits = tf.constant([[50.0, 50.0, 0.0, 0.0, 0.0]])  # PAD and START the likeliest by far
    drawn = [int(melody_models.sample_logits(logits, tf.constant(1e30), tf.constant(0), tf.constant([s, 0]))[0])
             for s in range(200)]
    assert not {midi_io.PAD, midi_io.START} & set(drawn)


@pytest.mark.parametrize("temperature", [1e-9, 1e-30, 1e-45])
def test_a_tiny_temperature_is_greedy_and_never_draws_pad_or_start(temperature):
    """Scaled logits far below any fixed mask value (or overflowing to -inf) still leave the best
    allowed token the only one drawn."""
    logits = tf.constant([[0.0, 0.0, -7.0, -5.0, -6.0]])  # PAD and START the likeliest
    drawn = {int(melody_models.sample_logits(logits, tf.constant(temperature), tf.constant(top_k), tf.constant([s, 0]))[0])
             for s in range(50) for top_k in (0, 2)}
    assert drawn == {3}


def test_top_k_one_is_greedy(small_model):
    model, cfg = small_model
    generator = MelodyGenerator.from_keras(model, cfg)
    runs = [generator.continue_tune([N(60, 0, 2)], temperature=1.0, top_k=1, seed=s, max_steps=40).tokens
            for s in (1, 2)]
    np.testing.assert_array_equal(*runs)


def test_primer_out_of_range_is_transposed_or_refused(small_model):
    model, cfg = small_model
    generator = MelodyGenerator.from_keras(model, cfg)
    low = generator.continue_tune([N(43, 0, 2), N(45, 2, 2)], seed=0, max_steps=8)
    assert low.transposed == 12 and low.primer[0].pitch == 55
    with pytest.raises(UsageError, match="do not fit the model's range G3..G#5"):
        generator.continue_tune([N(40, 0, 2), N(90, 2, 2)])
    for temperature in (0.0, float("inf"), float("nan")):
        with pytest.raises(UsageError, match="temperature"):
            generator.continue_tune([N(60, 0, 2)], temperature=temperature)
    with pytest.raises(UsageError, match="grid steps long"):
        generator.continue_tune([N(60, 0, 10**6)])


def test_max_notes_stops_the_continuation(small_model):
    model, cfg = small_model
    generator = MelodyGenerator.from_keras(model, cfg)
    free = generator.continue_tune([N(60, 0, 2)], temperature=1.5, seed=3, max_steps=400)
    capped = generator.continue_tune([N(60, 0, 2)], temperature=1.5, seed=3, max_steps=400, max_notes=2)
    assert len(capped.generated) == min(2, len(free.generated)) and capped.generated == free.generated[:2]
    assert not capped.ended or len(free.generated) <= 2


def test_bad_melody_config_values():
    for override in ("lstm_units=0", "transpose=2,3", "dropout=1.0", "val_fraction=0"):
        with pytest.raises(ConfigError):
            make_config(MelodyConfig, "folknet", overrides=[override])


# --- metrics ---------------------------------------------------------------------------------

def test_teacher_forced_uniform_model_gives_log2_of_the_pitch_count():
    vocab = midi_io.FIRST_NOTE_TOKEN + 8
    sequences = [midi_io.encode([N(60, 0, 1), N(62, 1, 2), N(64, 3, 1)], 60, 67)]
    result = mm.teacher_forced(lambda x: np.zeros(x.shape + (vocab,)), sequences)
    assert result["bits_per_note"] == pytest.approx(3.0) and result["notes"] == 3
    assert result["token_nll"] == pytest.approx(np.log(vocab))


def test_ngram_learns_a_repeated_scale():
    scale = [60, 62, 64, 65, 67, 69, 71, 72] * 4
    result = mm.ngram_baseline([scale] * 20, [scale], order=3, vocabulary=range(60, 73))
    assert result["bits_per_note"] < 0.5 and result["next_pitch_accuracy"] > 0.9


def test_copy_checker():
    checker = mm.CopyChecker([[1, 2, 3, 4, 5, 6], [9, 9, 9]])
    assert checker.longest_copied_runs([[7, 2, 3, 4, 8], [6, 9, 9], [7], [3, 4, 5, 6, 9, 9, 9], []]) == [3, 2, 1, 4, 0]
    assert checker.copied_shares([[1, 2, 3, 4, 5, 6], [1, 2], [5, 6, 9, 1]], n=3) == [1.0, None, 0.0]
    with pytest.raises(ValueError, match="n >= 2 notes; got n=1"):
        checker.copied_shares([[1, 2, 3]], n=1)  # not None for every tune, as if none were long enough


def test_copies_are_found_in_any_key():  # training transposes: a generated copy may be in any key
    tune = [67, 69, 71, 72, 74, 72, 71, 69, 67, 66, 67, 69, 71, 67, 62, 67, 71, 74]
    checker = mm.CopyChecker([tune])
    copies = [tune, [p + 2 for p in tune], [p - 5 for p in tune]]
    assert checker.copied_shares(copies) == [1.0] * 3
    assert checker.longest_copied_runs(copies) == [len(tune)] * 3
    assert checker.copied_shares([[p + (i == 8) for i, p in enumerate(tune)]]) == [0.0]  # one note moved
    assert mm.jensen_shannon(mm.interval_histogram([[60, 62]]), mm.interval_histogram([[60, 62]])) == 0.0


# --- training, export, CLIs ------------------------------------------------------------------

@pytest.fixture
def trained(tiny_melody_run):
    return tiny_melody_run


@pytest.mark.parametrize("units, message", [
    (10**6, "lstm_units must be <= 8192"),
    (4096, "cannot build a folkNet of lstm_units=4096, lstm_layers=2, embedding_dim=8 (out of memory)"),
])
def test_train_melody_refuses_a_model_too_big_to_build_in_one_line(tmp_path, capsys, monkeypatch, units, message):
    import tensorflow as tf

    from audio_dl import cli, melody_training, train_melody

    def out_of_memory(cfg):  # what building 4096 units does on a machine without the memory for them
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    monkeypatch.setattr(melody_training, "build_folknet", out_of_memory)
    run = tmp_path / "run"
    assert cli.run_main(train_melody.main, ["--preset", "tiny", "--midi-dir", str(FIXTURE), "--run-dir", str(run),
                                            "--publish", "never", "--quiet", "--set", f"lstm_units={units}"]) == 2
    assert message in capsys.readouterr().err and not run.exists()


@pytest.mark.slow
def test_train_melody_writes_a_verified_export(trained):
    version = trained / "export" / "1"
    for name in ("saved_model.pb", "melody_one_step.tflite", "config.json", "MODEL_CARD.md", "provenance.json"):
        assert (version / name).is_file(), name
    metrics = json.loads((trained / "metrics.json").read_text())
    assert {"validation", "generation", "best_epoch"} <= set(metrics)
    card = (version / "MODEL_CARD.md").read_text()
    assert "tflite_one_step_max_abs_error" in card and "bits/note" in card
    assert "up to 2 epochs of batch 4" in card and "after 2 epochs without" in card
    loaded = tf.saved_model.load(str(version))
    assert {"serving_default", "generate", "one_step", "score"} <= set(loaded.signatures)
    out = loaded.signatures["serving_default"](primer=tf.constant([9, 4, 9], tf.int32), temperature=tf.constant(1.0),
                                               top_k=tf.constant(0), seed=tf.constant(1), max_steps=tf.constant(50))
    assert out["tokens"].dtype == tf.int32 and 0 < out["tokens"].shape[0] <= 50


@pytest.mark.slow
def test_generate_melody_cli_writes_midi_wav_png(trained, tmp_path):
    from audio_dl import generate_melody

    out = tmp_path / "tune_0.7"
    assert generate_melody.main(["G4 G4 G4 D4 E4 E4 D4:2", "--model", str(trained / "export" / "1"),
                                 "-o", str(out), "--seed", "3", "--max-notes", "40"]) == 0
    for suffix in (".mid", ".wav", ".png"):
        assert Path(f"{out}{suffix}").stat().st_size > 100
    midi = pretty_midi.PrettyMIDI(f"{out}.mid")
    assert [n.pitch for n in midi.instruments[0].notes[:7]] == [67, 67, 67, 62, 64, 64, 62]


@pytest.mark.slow
def test_generate_melody_keeps_a_midi_primers_tempo_unless_qpm_is_given(trained, tmp_path):
    from audio_dl import generate_melody

    primer = tmp_path / "primer.mid"
    midi = pretty_midi.PrettyMIDI(initial_tempo=90)
    midi.instruments.append(pretty_midi.Instrument(0))
    midi.instruments[0].notes = [pretty_midi.Note(80, 67, i * 0.5, i * 0.5 + 0.4) for i in range(4)]
    midi.write(str(primer))
    for extra, qpm in (([], 90.0), (["--qpm", "140"], 140.0)):
        out = tmp_path / f"tune_{qpm:g}"
        assert generate_melody.main([str(primer), "--model", str(trained / "export" / "1"), "-o", str(out),
                                     "--max-notes", "4", *extra]) == 0
        assert pretty_midi.PrettyMIDI(f"{out}.mid").get_tempo_changes()[1] == pytest.approx([qpm], rel=1e-5)
    assert generate_melody.primer_qpm("G4 A4") == generate_melody.DEFAULT_QPM


@pytest.mark.slow
def test_generate_melody_never_overwrites_its_primer_nor_leaves_part_of_a_tune(trained, tmp_path, capsys,
                                                                             monkeypatch):
    from audio_dl import cli, generate_melody

    model = ["--model", str(trained / "export" / "1"), "--max-notes", "4"]
    primer = tmp_path / "primer.mid"
    midi_io.to_pretty_midi([N(67, 0, 4), N(69, 4, 4)]).write(str(primer))
    before = primer.read_bytes()
    assert cli.run_main(generate_melody.main, [str(primer), "-o", str(primer), *model]) == 2
    assert "would overwrite an input" in capsys.readouterr().err and primer.read_bytes() == before
    assert cli.run_main(generate_melody.main, ["Q4", "-o", str(tmp_path / "deep" / "er" / "tune"), *model]) == 2
    assert "unknown note 'Q4'" in capsys.readouterr().err and not (tmp_path / "deep").exists()
    (tmp_path / "half.wav").mkdir()
    assert cli.run_main(generate_melody.main, ["G4 A4", "-o", str(tmp_path / "half"), *model]) == 2
    assert "half.wav is a folder" in capsys.readouterr().err and not (tmp_path / "half.mid").exists()
    monkeypatch.chdir(tmp_path)
    assert cli.run_main(generate_melody.main, ["G4 A4", "-o", ".", *model]) == 0  # a folder: ./melody.*
    assert (tmp_path / "melody.mid").is_file()
    assert cli.run_main(generate_melody.main, ["G4 A4", "-o", str(tmp_path / "tune.MID"), *model]) == 0
    assert (tmp_path / "tune.mid").is_file() and not list(tmp_path.glob(".*partial*"))
    assert cli.run_main(generate_melody.main, ["G4 A4", "-o", f"{tmp_path / 'new'}/", *model]) == 0  # a new folder
    assert (tmp_path / "new" / "melody.mid").is_file()
    assert cli.run_main(generate_melody.main, ["G4 A4", "-o", str(tmp_path / "tune2.MIDI"), *model]) == 0
    assert (tmp_path / "tune2.mid").is_file() and not (tmp_path / "tune2.MIDI.mid").exists()


@pytest.mark.slow
@pytest.mark.parametrize("arguments, message", [
    (["G4", "--temperature", "0"], "--temperature must be in [0.01, 10] (got 0)"),
    (["G4", "--temperature", "1e-45"], "--temperature must be in"), (["G4", "--qpm", "2"], "--qpm must be in [20, 500]"),
    (["G4", "--qpm", "nan"], "--qpm must be in"),
    (["G4", "--max-notes", "100000000"], "--max-notes must be in [1, 2000] (got 100000000)"),
    (["G4", "--seed", "4294967296"], "--seed must be in"), (["G4", "--top-k", "-1"], "--top-k must be in"),
    (["G4", "-o", ""], "needs a file name"),
    (["G4 H9"], "unknown note 'H9'"),
    (["C1 C8"], "do not fit the model's range"),
    (["missing.mid"], "primer file not found"),
    (["."], "primer . is a folder; give a MIDI file or notes"),
])
def test_generate_melody_bad_input_exits_2(trained, arguments, message, capsys):
    from audio_dl import cli, generate_melody

    assert cli.run_main(generate_melody.main, [*arguments, "--model", str(trained / "export" / "1")]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_a_note_string_is_read_as_notes_beside_a_folder_of_that_name_and_at_any_length(trained, tmp_path, monkeypatch,
                                                                                      capsys):
    from audio_dl import cli, generate_melody

    monkeypatch.chdir(tmp_path)
    (tmp_path / "G4").mkdir()  # e.g. the folder of an earlier `generate_melody G4 -o G4/`
    model = ["--model", str(trained / "export" / "1"), "--max-notes", "1"]
    assert cli.run_main(generate_melody.main, ["G4", "-o", "G4/", *model]) == 0
    long_primer = " ".join(["G4:0.25"] * 60)  # too long to be a file name: no OSError from the path checks
    assert cli.run_main(generate_melody.main, [long_primer, "-o", "G4/", *model]) == 0
    assert cli.run_main(generate_melody.main, [long_primer, "-o", "G4/", *model]) == 0  # its outputs exist now


def test_generate_melody_refuses_an_output_suffix_it_cannot_write(tmp_path, capsys):
    from audio_dl import cli, generate_melody

    for name in ("t.flac", "t.TXT"):  # refused before the model is looked for, and no folder is made
        assert cli.run_main(generate_melody.main, ["G4", "-o", str(tmp_path / "new" / name),
                                                   "--model", str(tmp_path / "no-model")]) == 2
        assert f"cannot write {Path(name).suffix} files; give a name ending in .mid, .midi, .wav, .png or no suffix" \
            in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    assert generate_melody.output_paths(str(tmp_path / "tune_0.7"), [])[".wav"] == tmp_path / "tune_0.7.wav"
    assert generate_melody.output_paths(str(tmp_path / "tune.WAV"), [])[".mid"] == tmp_path / "tune.mid"
    for title in ("St. Patrick", "op. 12 jig", "tune v1.0 final"):  # a dot in a title is no file type
        assert generate_melody.output_paths(str(tmp_path / title), [])[".png"] == tmp_path / f"{title}.png"


def test_generate_melody_rejects_a_model_that_is_not_a_melody_model(tiny_export, capsys):
    from audio_dl import cli, generate_melody

    assert cli.run_main(generate_melody.main, ["G4", "--model", str(tiny_export)]) == 2
    assert "not a melody model" in capsys.readouterr().err


def test_the_shipped_melody_export_names_a_bad_temperature_a_client_sends():
    from audio_dl.compose import load_melody_export

    loaded, _, _ = load_melody_export(Path(__file__).parents[1] / "saved_models" / "melody")
    with pytest.raises(tf.errors.InvalidArgumentError, match="temperature must be a finite number > 0"):
        loaded.signatures["generate"](primer=tf.constant([5], tf.int32), temperature=tf.constant(0.0),
                                      top_k=tf.constant(0), seed=tf.constant(0), max_steps=tf.constant(4))


@pytest.mark.slow
def test_a_melody_reexport_scores_and_generates_as_the_version_it_came_from(trained, tmp_path):
    from audio_dl import export
    from audio_dl.compose import export_scorer, load_melody_export

    earlier = tmp_path / "melody" / "3"
    shutil.copytree(trained / "export" / "1", earlier)
    assert export.main(["reexport", str(earlier)]) == 0
    old, cfg, _ = load_melody_export(earlier)
    new, _, again = load_melody_export(tmp_path / "melody")  # the base path serves the highest version
    assert again.name == "4"
    tokens = np.array([[midi_io.START, 5, 6, midi_io.HOLD, 7]], np.int32)
    np.testing.assert_array_equal(export_scorer(old)(tokens), export_scorer(new)(tokens))
    request = dict(primer=tf.constant([5, 6], tf.int32), temperature=tf.constant(1.0), top_k=tf.constant(0),
                   seed=tf.constant(3), max_steps=tf.constant(40))
    np.testing.assert_array_equal(*(m.signatures["generate"](**request)["tokens"].numpy() for m in (old, new)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="temperature must be a finite number > 0"):
        new.signatures["generate"](**(request | {"temperature": tf.constant(0.0)}))
    edited = tmp_path / "edited" / "1"
    shutil.copytree(earlier, edited)
    config = json.loads((edited / "config.json").read_text())
    (edited / "config.json").write_text(json.dumps({**config, "lstm_units": config["lstm_units"] + 1}))
    with pytest.raises(UsageError, match="does not hold the weights its config.json describes"):
        export.reexport(edited)


@pytest.mark.slow
def test_evaluate_melody_cli(trained, tmp_path, capsys, caplog):
    from audio_dl import cli, evaluate_melody

    report = tmp_path / "report.json"
    assert evaluate_melody.main(["--midi-dir", str(FIXTURE), "--model", str(trained / "export" / "1"),
                                 "--train-midi-dir", str(FIXTURE), "--generate", "2", "-o", str(report)]) == 0
    result = json.loads(report.read_text())
    assert {"model", "ngram_3", "ngram_5"} <= set(result["scored"]) and result["generation"]["tunes"] == 2
    assert result["scored"]["training_tunes"] > 0  # FIXTURE's training split is among the tunes scored
    captured = capsys.readouterr()
    assert "bits/note" in captured.out and "(scored tunes " in captured.out
    assert f"({result['scored']['training_tunes']} of these tunes are training tunes of the model" in captured.out
    assert "in the model's training split: their scores are not held-out" in caplog.text
    tune = next(FIXTURE.glob("*.mid"))
    copy = tmp_path / "tunes"
    copy.mkdir()
    (copy / tune.name).write_bytes(tune.read_bytes())
    assert cli.run_main(evaluate_melody.main, ["--midi-dir", str(copy), "--model", str(trained / "export" / "1"),
                                               "-o", str(copy / tune.name)]) == 2  # a tune it reads
    assert "give the .json file" in capsys.readouterr().err and (copy / tune.name).read_bytes() == tune.read_bytes()


@pytest.mark.slow
def test_evaluate_melody_scores_the_models_own_validation_split(trained, tmp_path, capsys, caplog):
    from audio_dl import cli, evaluate_melody

    report = tmp_path / "report.json"
    assert cli.run_main(evaluate_melody.main, ["--validation-split", "--model", str(trained / "export" / "1"),
                                               "--train-midi-dir", str(FIXTURE), "--generate", "0",
                                               "-o", str(report)]) == 0
    held_out = melody_data.load_corpus(tiny_cfg()).val
    result = json.loads(report.read_text())["scored"]
    assert result["description"] == "the validation split" and result["training_tunes"] == 0
    assert f"; scored {len(held_out)} of its {len(held_out)} validation tunes" in capsys.readouterr().out
    assert "not held-out" not in caplog.text
    with pytest.raises(SystemExit, match="2"):
        evaluate_melody.main(["--validation-split", "--midi-dir", str(FIXTURE)])
    assert "argument --midi-dir: not allowed with argument --validation-split" in capsys.readouterr().err


def test_training_tunes_are_recognised_by_their_notes_in_any_key():
    from audio_dl.melody_training import count_training_tunes

    tune = melody_data.Tune("folk/a.mid", [N(67, 0, 2), N(69, 2, 2), N(71, 4, 4)])
    moved = melody_data.Tune("airds/other_name.mid", [dataclasses.replace(n, pitch=n.pitch - 5) for n in tune.notes])
    other = melody_data.Tune("folk/a.mid", [N(67, 0, 2), N(69, 2, 2), N(72, 4, 4)])  # same name, other tune
    assert count_training_tunes([moved, other], [tune]) == 1


@pytest.mark.slow
def test_a_held_out_collection_holding_training_tunes_is_not_called_never_trained_on(tmp_path, caplog):
    from audio_dl import train_melody

    run = tmp_path / "run"
    assert train_melody.main(["--preset", "tiny", "--midi-dir", str(FIXTURE), "--set", f"eval_midi_dir={FIXTURE}",
                              "--run-dir", str(run), "--publish", "never", "--quiet"]) in (0, None)
    held_out = json.loads((run / "metrics.json").read_text())[f"held_out_{FIXTURE}"]
    assert held_out["training_tunes"] > 0 and "never trained on" not in held_out["description"]
    assert f"tunes of {FIXTURE} scored are training tunes: their scores are not held-out" in caplog.text
    card = (run / "export" / "1" / "MODEL_CARD.md").read_text()
    assert "of these tunes are training tunes of the model: not held-out" in card and "never trained on" not in card


def test_report_says_n_a_for_a_copy_share_no_tune_defines():
    from audio_dl.melody_training import format_report

    generation = {"tunes": 1, "temperature": 1.0, "ended_share": 1.0, "max_steps": 64, "pitch_class_js": 0.1,
                  "held_out_pitch_class_js": 0.2, "interval_js": 0.1, "held_out_interval_js": 0.2,
                  "copied_16_note_runs": 0.25, "held_out_copied_16_note_runs": float("nan"),
                  "longest_copied_run_median": 5.0, "held_out_longest_copied_run_median": 3.0}
    report = format_report({"generation": generation})
    assert "copied from training 25.0 % (held-out human tunes n/a (no tune of 16+ notes))" in report
    assert "nan" not in report


def test_tflite_one_step_runs_under_litert(trained):
    from audio_dl.export import run_tflite

    cfg = json.loads((trained / "export" / "1" / "config.json").read_text())
    states = {f"state_{k}_{i}": np.zeros((1, cfg["lstm_units"]), np.float32) for i in (1, 2) for k in "hc"}
    out = run_tflite(trained / "export" / "1" / "melody_one_step.tflite", {"token": np.array([1], np.int32), **states})
    assert out["logits"].shape == (1, 5 + cfg["pitch_high"] - cfg["pitch_low"] + 1)


@pytest.mark.slow
def test_melody_benchmark_runs_and_writes_json(trained, tmp_path):
    from audio_dl import bench

    out = tmp_path / "bench.json"
    assert bench.main(["melody", "--model", str(trained / "export" / "1"), "--tunes", "2", "-o", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["stateful_graph_notes_per_second"] > 0 and results["refeed_sequence_tokens_per_second_at_300"] > 0


def test_folk_corpus_command_rejects_unknown_collections(capsys):
    from audio_dl import cli, datasets

    assert cli.run_main(datasets.main, ["folk-corpus", "/tmp/unused", "--collections", "nope"]) == 2
    assert "unknown collection" in capsys.readouterr().err
    assert cli.run_main(datasets.main, ["folk-corpus", "/tmp/unused", "--collections", " , "]) == 2
    assert "--collections names no collection" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_code:  # argparse's own exit
        datasets.main(["denoiser-corpus", ""])
    assert exit_code.value.code == 2 and "an empty path" in capsys.readouterr().err


FAKE_ABC2MIDI = """
# like abc2midi: <stem><X>.mid for each tune (X:0001 -> 1; a second tune of one X: overwrites the first);
# for a K: field it rejects an error line with the line number and no MIDI file; exit code 0 either way
import pathlib, re, sys
abc = pathlib.Path(sys.argv[1])
x = None
for number, line in enumerate(abc.read_text().splitlines(), 1):
    if m := re.match(r"\\s*X:\\s*(\\S*)", line):  # " X:1" too; an X: that is no number is 0
        x = int(m.group(1)) if m.group(1).isdigit() else 0
    elif line == "K: H":
        print(f"Error in line-char {number}-3 : First K: field must specify key signature")
        x = None
    elif line.startswith("K:") and x is not None:
        pathlib.Path(f"{abc.stem}{x}.mid").write_text(line)
"""


def test_folk_corpus_counts_and_lists_the_tunes_abc2midi_writes_no_midi_for(tmp_path, monkeypatch, capsys):
    from audio_dl import cli, datasets
    from audio_dl.data import corpora

    packages = tmp_path / "packages"
    songs = packages / "music21" / "corpus" / "airdsAirs"
    songs.mkdir(parents=True)
    (songs / "book1.abc").write_text("% three tunes\n\nX:0001\nK:G\nGAB|\n\nX:2\nT:Two\nK: H\nGAB|\n\nX:11\nK:A\n")
    (songs / "book11.abc").write_text("X:1\nK:D\nDEF|\n")  # book111.mid, as book1's X:11
    (songs / "dup.abc").write_text("X:5\nK:C\n\nX:5\nK:F\n\nX:6 % a comment\nK:E\n")
    (songs / "notes.abc").write_text("% no tune\n")
    (songs / "lead.abc").write_text(" X:1\nK:G\n")  # abc2midi takes an X: field after a space: lead1.mid
    (songs / "odd.abc").write_text("X:abc\nK:G\n")  # and writes odd0.mid for one that is not a number
    abc2midi = packages / "usr" / "bin" / "abc2midi"
    abc2midi.parent.mkdir(parents=True)
    abc2midi.write_text(f"#!{sys.executable}{FAKE_ABC2MIDI}")
    abc2midi.chmod(0o755)
    monkeypatch.setattr(corpora, "_fetch", lambda package, cache: packages)
    out = tmp_path / "midi"

    assert cli.run_main(datasets.main, ["folk-corpus", str(out), "--collections", "airdsAirs"]) == 0
    assert capsys.readouterr().out.strip() == (
        f"airdsAirs: 6 MIDI files in {out}/airdsAirs; 4 tune(s) abc2midi could not convert, listed in "
        f"{out}/airdsAirs/NOT_CONVERTED.tsv")
    assert (out / "airdsAirs" / "NOT_CONVERTED.tsv").read_text().splitlines() == [
        "book1.abc\tX:2\tFirst K: field must specify key signature",
        "book11.abc\tX:1\tbook111.mid is the name of a tune of another ABC file",
        "dup.abc\tX:5\tanother tune of this file is X:5 too: abc2midi writes one MIDI file for both (the last)",
        "notes.abc\t-\tno X: field, so no tune"]
    assert sorted(p.name for p in (out / "airdsAirs").iterdir()) == [
        "LICENSE.txt", "NOT_CONVERTED.tsv", "book11.mid", "book111.mid", "dup5.mid", "dup6.mid", "lead1.mid",
        "odd0.mid"]
    assert (out / "airdsAirs" / "book111.mid").read_text() == "K:A"  # book1's X:11, not overwritten by book11's
    # an existing collection folder is counted, not converted again; one converted before the listing says so
    assert corpora.build_folk_corpus(out, ("airdsAirs",)) == {"airdsAirs": {"midi_files": 6, "not_converted": 4}}
    (out / "airdsAirs" / "NOT_CONVERTED.tsv").unlink()
    assert cli.run_main(datasets.main, ["folk-corpus", str(out), "--collections", "airdsAirs"]) == 0
    assert "converted before the tunes abc2midi could not convert were listed" in capsys.readouterr().out


@pytest.mark.slow
def test_rerunning_a_finished_run_only_evaluates_exports_and_publishes_it_once(trained, tmp_path, capsys):
    from audio_dl import train_melody

    history = (trained / "history.csv").read_text()
    assert (trained / "trained.json").is_file()
    for _ in range(2):
        assert train_melody.main(["--preset", "tiny", "--midi-dir", str(FIXTURE), "--run-dir", str(trained),
                                  "--publish", "always", "--export-base", str(tmp_path / "base"), "--quiet"]) == 0
    assert (trained / "history.csv").read_text() == history  # no epoch was trained again
    assert (trained / "export" / "1" / "saved_model.pb").is_file()
    assert sorted(p.name for p in (tmp_path / "base").iterdir()) == ["1"]  # each rerun exports anew: same model
    assert f"already published as {tmp_path / 'base' / '1'}" in capsys.readouterr().out


@pytest.mark.slow
def test_a_model_of_a_one_pitch_range_exports_and_passes_its_checks(tmp_path):
    from audio_dl import export_melody

    cfg = tiny_cfg(pitch_low=60, pitch_high=60)  # the check primer's two notes are then one
    checks = export_melody.export_melody(melody_models.build_folknet(cfg), cfg, tmp_path / "1", "card", {})
    assert checks["generate_matches_in_process"] and (tmp_path / "1" / "saved_model.pb").is_file()


@pytest.mark.slow
def test_an_export_that_lost_the_trained_weights_is_refused(tmp_path, monkeypatch):
    from audio_dl import export_melody
    from audio_dl.export import ExportError

    def forgetful(cfg):  # a serving copy whose weights never arrive
        fresh = melody_models.build_folknet(cfg)
        fresh.set_weights = lambda weights: None
        return fresh

    cfg = tiny_cfg(pitch_low=55, pitch_high=80)
    monkeypatch.setattr(export_melody, "build_folknet", forgetful)
    with pytest.raises(ExportError, match="does not match the Keras model"):
        export_melody.export_melody(melody_models.build_folknet(cfg), cfg, tmp_path / "1", "card", {})
    assert not (tmp_path / "1").exists()


@pytest.mark.slow
def test_evaluate_melody_says_nothing_can_be_scored_before_reading_the_training_corpus(trained, tmp_path, capsys,
                                                                                          monkeypatch):
    from audio_dl import cli, evaluate_melody

    write_midi(tmp_path / "drums.mid", [(36, 0.0, 0.5), (38, 0.5, 1.0)], is_drum=True)

    def slow_corpus(cfg):
        raise AssertionError("the training corpus was read first")

    monkeypatch.setattr(evaluate_melody.melody_data, "load_corpus", slow_corpus)
    assert cli.run_main(evaluate_melody.main, ["--midi-dir", str(tmp_path), "--model", str(trained / "export" / "1"),
                                               "-o", str(tmp_path / "report.json")]) == 2
    assert "can be scored" in capsys.readouterr().err


def test_note_string_onsets_are_quantised_from_their_running_position_with_a_warning(caplog):
    triplets = midi_io.parse_note_string("G4:1/3 G4:1/3 G4:1/3 A4:2")
    assert triplets == [N(67, 0, 1), N(67, 1, 2), N(67, 3, 1), N(69, 4, 8)]  # A4 on beat 1, not 0.75
    assert "primer: 3 notes off the 1/16-note grid moved onto it" in caplog.text
    assert midi_io.melody_steps(midi_io.parse_note_string(" ".join(["G4:0.6"] * 5))) == 12  # 3 beats, not 2.5
    caplog.clear()
    assert [n.start for n in midi_io.parse_note_string("C4:1/6 D4:1/6 E4:1/6 F4:1/2")] == [0, 1, 2]
    assert "(dropped 1 onset sharing a grid step)" in caplog.text  # the MIDI primers' rule and words
    caplog.clear()
    midi_io.parse_note_string("G4 G4:0.5 R D4:2 Bb3:1/2")  # on the grid: nothing moved, nothing said
    assert not caplog.text


def test_every_midi_suffix_the_corpus_reads_is_a_midi_primer(tmp_path):
    from audio_dl.generate_melody import primer_qpm, read_primer

    midi = pretty_midi.PrettyMIDI(initial_tempo=90)
    midi.instruments.append(pretty_midi.Instrument(0))
    midi.instruments[0].notes = [pretty_midi.Note(80, 67, 0.0, 0.6), pretty_midi.Note(80, 69, 0.66, 1.3)]
    for name in ("chords.kar", "TUNE.MID", "tune.Midi", "song.KAR"):
        midi.write(str(tmp_path / name))
        assert [n.pitch for n in read_primer(str(tmp_path / name), 4)] == [67, 69]
        assert primer_qpm(str(tmp_path / name)) == pytest.approx(90, rel=1e-5)
    with pytest.raises(UsageError, match="primer file not found"):
        read_primer(str(tmp_path / "missing.kar"), 4)
    (tmp_path / "notes.txt").write_text("G4 A4")
    with pytest.raises(UsageError, match=r"notes.txt is not a MIDI file: MIDI primers end in \.mid, \.midi, \.kar"):
        read_primer(str(tmp_path / "notes.txt"), 4)


def test_train_melody_refuses_a_base_of_denoisers_before_training(tiny_export, tmp_path, capsys):
    from audio_dl import cli, export, train_melody

    base = tmp_path / "denoisers"
    export.publish(tiny_export, base, shipped=True)
    run = tmp_path / "run"
    assert cli.run_main(train_melody.main, ["--preset", "tiny", "--midi-dir", str(FIXTURE), "--run-dir", str(run),
                                            "--export-base", str(base)]) == 2
    assert f"a melody model takes max_steps, primer, seed, temperature, top_k; the models in {base} take waveform" in (
        capsys.readouterr().err)
    assert not run.exists()


@pytest.mark.slow
def test_evaluate_melody_names_a_training_corpus_its_config_gives_as_a_relative_path(trained, tmp_path, capsys):
    from audio_dl import cli, evaluate_melody

    model = tmp_path / "model" / "1"
    shutil.copytree(trained / "export" / "1", model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "midi_dir": ["mini"]}))  # trained where mini/ was
    args = ["--midi-dir", str(FIXTURE), "--model", str(model), "--generate", "0", "-o", str(tmp_path / "r.json")]
    assert cli.run_main(evaluate_melody.main, args) == 2
    error = capsys.readouterr().err.strip()
    assert f"midi_dir in {model / 'config.json'}: path does not exist: mini; give them with --train-midi-dir" in error
    assert cli.run_main(evaluate_melody.main, [*args, "--train-midi-dir", str(FIXTURE)]) == 0


def test_evaluate_melody_says_the_training_tunes_lie_outside_the_models_range(tmp_path, capsys):
    """The range is the model's: no advice to widen it or leave it unset (evaluate_melody has no --set)."""
    from audio_dl import cli, evaluate_melody

    high = write_line_tunes(tmp_path / "high", 4, {i: range(96, 101) for i in range(4)})  # above A6
    assert cli.run_main(evaluate_melody.main, ["--midi-dir", str(FIXTURE), "--train-midi-dir", str(high),
                                               "--model", "saved_models/melody/6", "--generate", "0",
                                               "-o", str(tmp_path / "r.json")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"no tune of --train-midi-dir {high} lies inside the model's pitch range G3..A6" in line
    assert "widen" not in line and "unset" not in line
    model = tmp_path / "model" / "6"
    shutil.copytree("saved_models/melody/6", model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "midi_dir": [str(high)]}))  # its config's tunes
    assert cli.run_main(evaluate_melody.main, ["--midi-dir", str(FIXTURE), "--model", str(model), "--generate", "0",
                                               "-o", str(tmp_path / "r.json")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"no tune of midi_dir in {model / 'config.json'} lies inside the model's pitch range G3..A6" in line
    assert "widen" not in line


def test_a_collection_is_also_found_by_its_own_name_unless_a_folder_has_that_name(tmp_path, monkeypatch):
    from audio_dl.data import corpora

    cache = tmp_path / "cache"
    (cache / "folk-midi" / "airdsAirs").mkdir(parents=True)
    monkeypatch.setenv("AUDIO_DL_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    resolved = str(cache / "folk-midi" / "airdsAirs")
    assert corpora.resolve_midi(("airds", "airdsAirs", "mine")) == (resolved, resolved, "mine")
    (tmp_path / "airdsAirs").mkdir()  # a folder of that name here is read as a folder
    assert corpora.resolve_midi(("airds", "airdsAirs")) == (resolved, "airdsAirs")
