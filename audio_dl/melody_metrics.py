"""Melody model metrics: teacher-forced likelihoods, a pitch n-gram baseline, generated-tune statistics.

Onset metrics compare with pitch-only models: at every step where a note starts, the model's
probability of that pitch *given that a note starts here*, p(NOTE_p) / sum_q p(NOTE_q).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import scipy.spatial.distance
import scipy.special
from nltk.lm import WittenBellInterpolated
from nltk.lm.preprocessing import pad_both_ends, padded_everygram_pipeline
from nltk.util import ngrams

from audio_dl import midi_io
from audio_dl.config import MelodyConfig

LN2 = math.log(2.0)


def teacher_forced(score_fn, sequences: list[np.ndarray], batch_size: int = 32) -> dict[str, float]:
    """Token NLL (nats) and accuracy over every predicted token (END included), and next-pitch
    accuracy and bits per note at note onsets, for encoded tunes ([START, ..., END]).
    score_fn: int32 tokens [B, T] -> logits [B, T, V] (numpy)."""
    nll = correct = tokens = 0.0
    onset_bits = onset_correct = onsets = 0.0
    order = np.argsort([len(s) for s in sequences])  # similar lengths per batch: little padding
    for first in range(0, len(order), batch_size):
        batch = [sequences[i] for i in order[first: first + batch_size]]
        padded = keras.utils.pad_sequences(batch, padding="post", dtype="int32", value=midi_io.PAD)
        inputs, targets = padded[:, :-1], padded[:, 1:]
        logits = np.asarray(score_fn(inputs), np.float64)
        log_probs = logits - scipy.special.logsumexp(logits, axis=-1, keepdims=True)
        valid = targets != midi_io.PAD
        picked = np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
        nll -= picked[valid].sum()
        correct += (log_probs.argmax(-1) == targets)[valid].sum()
        tokens += valid.sum()
        is_onset = targets >= midi_io.FIRST_NOTE_TOKEN
        note_log_probs = log_probs[..., midi_io.FIRST_NOTE_TOKEN:]
        pitch_log_probs = note_log_probs - scipy.special.logsumexp(note_log_probs, axis=-1, keepdims=True)
        target_pitch = np.where(is_onset, targets - midi_io.FIRST_NOTE_TOKEN, 0)
        picked_pitch = np.take_along_axis(pitch_log_probs, target_pitch[..., None], -1)[..., 0]
        onset_bits -= picked_pitch[is_onset].sum() / LN2
        onset_correct += (pitch_log_probs.argmax(-1) == target_pitch)[is_onset].sum()
        onsets += is_onset.sum()
    return {"token_nll": nll / tokens, "token_accuracy": correct / tokens,
            "next_pitch_accuracy": onset_correct / onsets, "bits_per_note": onset_bits / onsets,
            "tokens": int(tokens), "notes": int(onsets)}


def pitch_sequences(tunes_notes: list[list[midi_io.Note]]) -> list[list[int]]:
    return [[n.pitch for n in notes] for notes in tunes_notes]


def ngram_baseline(train: list[list[int]], test: list[list[int]], order: int,
                   vocabulary: range) -> dict[str, float]:
    """Interpolated Witten-Bell pitch n-gram (nltk) fitted on `train`, scored on `test`: bits per
    note and next-pitch accuracy (argmax over `vocabulary`) at every note. Every pitch of the
    vocabulary is added once to the training text so none has zero probability. (nltk's
    Kneser-Ney scores ~100x slower: 2.7 ms per call here.)"""
    model = WittenBellInterpolated(order)
    text = [[str(p) for p in tune] for tune in train] + [[str(p) for p in vocabulary]]
    model.fit(*padded_everygram_pipeline(order, text))
    words = [str(p) for p in vocabulary]
    distributions: dict[tuple, dict[str, float]] = {}  # contexts repeat a lot in folk tunes
    bits = correct = count = 0.0
    for tune in test:
        padded = list(pad_both_ends([str(p) for p in tune], n=order))
        for gram in ngrams(padded, order):
            context, word = gram[:-1], gram[-1]
            if word == "</s>":
                continue
            if context not in distributions:
                distributions[context] = {w: model.score(w, list(context)) for w in words}
            distribution = distributions[context]
            bits -= math.log2(max(distribution[word], 1e-12))
            correct += max(distribution, key=distribution.get) == word
            count += 1
    return {"bits_per_note": bits / count, "next_pitch_accuracy": correct / count, "notes": int(count)}


def _distribution(values: np.ndarray, bins: int, offset: int) -> np.ndarray:
    histogram = np.bincount(np.clip(values + offset, 0, bins - 1), minlength=bins).astype(float)
    return histogram / max(histogram.sum(), 1.0)


def pitch_class_histogram(sequences: list[list[int]]) -> np.ndarray:
    return _distribution(np.array([p % 12 for s in sequences for p in s], int), 12, 0)


def interval_histogram(sequences: list[list[int]]) -> np.ndarray:
    """Melodic intervals clipped to +-12 semitones, 25 bins."""
    intervals = np.array([b - a for s in sequences for a, b in zip(s[:-1], s[1:])], int)
    return _distribution(np.clip(intervals, -12, 12), 25, 12)


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance: the square root of the divergence in bits (0 = same distribution,
    1 = disjoint)."""
    return float(scipy.spatial.distance.jensenshannon(p, q, base=2))


class CopyChecker:
    """Which pitch runs of tunes also occur somewhere in the training tunes, in any key.

    A run of n notes is its n - 1 intervals: training transposes tunes into every key, so a tune
    generated from it copies in any key, and folk tunes borrow in any key too. Runs are compared
    through 64-bit polynomial rolling hashes of every window of intervals (numpy), one run length
    at a time, so memory stays a few arrays of the corpus' size whatever the run length.
    """

    BASE = np.uint64(1_000_003)

    def __init__(self, train: list[list[int]]):
        self.train = _flatten(_intervals(train))

    def _windows(self, flat: np.ndarray, owner: np.ndarray):
        """(n, hashes [N-n+1], valid [N-n+1]) for windows of n = 1, 2, ... intervals: those inside
        one tune are valid."""
        hashes = flat.astype(np.uint64)
        n = 1
        while len(hashes):
            yield n, hashes, owner[: len(hashes)] == owner[n - 1:]
            n += 1
            hashes = hashes[:-1] * self.BASE + flat[n - 1:].astype(np.uint64)

    def _matches(self, tunes: list[list[int]]):
        """(notes in the run, owner of each window, window valid?, matched in training?) for runs
        of 2, 3, ... notes."""
        flat, owner = _flatten(_intervals(tunes))
        for (n, train_hashes, train_valid), (_, hashes, valid) in zip(self._windows(*self.train),
                                                                     self._windows(flat, owner)):
            found = np.isin(hashes, np.unique(train_hashes[train_valid])) & valid
            yield n + 1, owner[: len(hashes)], valid, found

    def copied_shares(self, tunes: list[list[int]], n: int = 16) -> list[float | None]:
        """Per tune: share of its n-note runs (n >= 2) found in training in some key (None if the
        tune is shorter); ValueError for n < 2 (a run of 1 note has no interval to find)."""
        if n < 2:
            raise ValueError(f"copied_shares counts runs of n >= 2 notes; got n={n}")
        for length, owner, valid, found in self._matches(tunes):
            if length == n:
                total = np.bincount(owner[valid], minlength=len(tunes))
                hits = np.bincount(owner[found], minlength=len(tunes))
                return [float(h / t) if t else None for h, t in zip(hits, total, strict=True)]
        return [None] * len(tunes)

    def longest_copied_runs(self, tunes: list[list[int]]) -> list[int]:
        """Per tune: the length of its longest run of consecutive notes also found in training in
        some key (1 for a tune of notes none of whose intervals is; 0 for one without notes)."""
        best = np.array([min(len(t), 1) for t in tunes], int)
        for n, owner, _, found in self._matches(tunes):
            hit = np.unique(owner[found])
            if not len(hit):
                break
            best[hit] = n
        return best.tolist()


def _intervals(tunes: list[list[int]]) -> list[np.ndarray]:
    """Each tune's pitch steps in semitones, offset to stay non-negative for the hashes."""
    return [np.diff(np.asarray(t, np.int64)) + 128 for t in tunes]


def _flatten(tunes: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """All values of the sequences (a tune's pitches or intervals) in one array, and the index of
    the sequence each belongs to."""
    lengths = [len(t) for t in tunes]
    flat = np.concatenate([np.asarray(t, np.int64) for t in tunes]) if sum(lengths) else np.zeros(0, np.int64)
    return flat, np.repeat(np.arange(len(tunes)), lengths)


def generated_statistics(generated: list[list[int]], ended: list[bool], train: list[list[int]],
                         held_out: list[list[int]], run_length: int = 16) -> dict[str, float]:
    """Statistics of generated pitch sequences against the training corpus, with the same copy
    statistics for real held-out tunes (the human baseline: folk tunes borrow from each other)."""
    checker = CopyChecker(train)
    reference_pch, reference_intervals = pitch_class_histogram(train), interval_histogram(train)

    def copy_rate(sequences):
        shares = [s for s in checker.copied_shares(sequences, run_length) if s is not None]
        return float(np.mean(shares)) if shares else float("nan")

    return {
        "tunes": len(generated),
        "ended_share": float(np.mean(ended)),
        "median_notes": float(np.median([len(g) for g in generated])),
        "pitch_class_js": jensen_shannon(pitch_class_histogram(generated), reference_pch),
        "interval_js": jensen_shannon(interval_histogram(generated), reference_intervals),
        "held_out_pitch_class_js": jensen_shannon(pitch_class_histogram(held_out), reference_pch),
        "held_out_interval_js": jensen_shannon(interval_histogram(held_out), reference_intervals),
        f"copied_{run_length}_note_runs": copy_rate(generated),
        f"held_out_copied_{run_length}_note_runs": copy_rate(held_out),
        "longest_copied_run_median": float(np.median(checker.longest_copied_runs(generated))),
        "held_out_longest_copied_run_median": float(np.median(checker.longest_copied_runs(held_out))),
    }


def vocabulary_pitches(cfg: MelodyConfig) -> range:
    return range(cfg.pitch_low, cfg.pitch_high + 1)
