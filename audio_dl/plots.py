"""Figures: waveform + spectrogram panels (the denoising demo's figure), piano rolls, training curves."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import librosa
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy.signal  # noqa: E402

from audio_dl import audio_io  # noqa: E402
from audio_dl.atomic import staged_file  # noqa: E402


def waveform_and_spectrogram(signals: dict[str, np.ndarray], sample_rate: int, path: str | Path,
                             title: str = "") -> None:
    """One row per named float [N] signal: waveform (left) and dB spectrogram (right); writes a PNG.
    ValueError for no signals or a signal that is not one finite channel."""
    if not signals:
        raise ValueError("no signals to plot")
    signals = {name: audio_io.mono_samples(x, f"signal {name!r}") for name, x in signals.items()}
    rows = len(signals)
    fig, axes = plt.subplots(rows, 2, figsize=(12, 2.6 * rows), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.3]})
    peak = max((float(np.abs(x).max()) for x in signals.values() if x.size), default=0.0) or 1.0
    reference = peak * scipy.signal.get_window("hamming", 256).sum() / 2  # 0 dB: a full-scale sine
    for row, (name, x) in enumerate(signals.items()):
        t = np.arange(len(x)) / sample_rate
        axes[row, 0].plot(t, x, linewidth=0.4)
        axes[row, 0].set(ylim=(-peak, peak), ylabel=name, xlim=(0, max(t[-1], 1e-3) if len(t) else 1))
        spectrum = np.abs(librosa.stft(x, n_fft=256, hop_length=64, window="hamming"))
        db = librosa.amplitude_to_db(spectrum, ref=reference, top_db=None)
        image = axes[row, 1].imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-90, vmax=0,
                                    extent=(0, len(x) / sample_rate, 0, sample_rate / 2000))
        axes[row, 1].set(ylabel="kHz")
        fig.colorbar(image, ax=axes[row, 1], label="dB")
    axes[-1, 0].set_xlabel("time (s)")
    axes[-1, 1].set_xlabel("time (s)")
    if title:
        fig.suptitle(_shown(title), parse_math=False)
    _save(fig, path)


def _shown(title: str) -> str:
    """A title (often a file name) as matplotlib can draw it: each surrogate (a byte of a name that
    is not UTF-8, a lone half of a Windows name) shown as U+FFFD; set with parse_math=False, "$" is
    not math text."""
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in title)


PRIMER_COLOR, GENERATED_COLOR = "tab:red", "tab:blue"


def piano_roll(primer: list, generated: list, steps_per_quarter: int, path: str | Path, title: str = "",
               continued_from: int | None = None) -> None:
    """Notes (midi_io.Note) as bars: x in beats (quarter notes), y in pitch; primer red, generated
    blue. continued_from: the grid step where the continuation starts (Continuation.primer_steps);
    the part of a primer note the model held past it is drawn blue."""
    notes = [*primer, *generated]
    played, continued = [], [(n.pitch, n.start, n.start + n.duration) for n in generated]
    for note in primer:
        end = note.start + note.duration
        split = end if continued_from is None else max(note.start, min(end, continued_from))
        if split > note.start:
            played.append((note.pitch, note.start, split))
        if end > split:
            continued.insert(0, (note.pitch, split, end))
    fig, ax = plt.subplots(figsize=(max(6.0, min(24.0, 0.25 * _beats(notes, steps_per_quarter) + 2)), 4))
    for bars, color, label in ((played, PRIMER_COLOR, "primer"), (continued, GENERATED_COLOR, "generated")):
        for i, (pitch, start, end) in enumerate(bars):
            ax.broken_barh([(start / steps_per_quarter, (end - start) / steps_per_quarter)], (pitch - 0.4, 0.8),
                           facecolors=color, edgecolors="black", linewidth=0.3, label=label if i == 0 else None)
    if notes:
        import pretty_midi  # noqa: PLC0415

        low, high = min(n.pitch for n in notes), max(n.pitch for n in notes)
        ticks = [p for p in range(low - 1, high + 2) if p % 12 in (0, 7)] or [low]
        ax.set_yticks(ticks, [pretty_midi.note_number_to_name(p) for p in ticks])
        ax.set_ylim(low - 1.5, high + 1.5)
        ax.set_xlim(0, _beats(notes, steps_per_quarter) + 0.5)
        ax.legend(loc="upper right")
    ax.set(xlabel="beats (quarter notes)", ylabel="pitch")
    ax.set_title(_shown(title) or "piano roll", parse_math=False)
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)


def _beats(notes: list, steps_per_quarter: int) -> float:
    return max((n.start + n.duration for n in notes), default=0) / steps_per_quarter


def training_curves(history_csv: str | Path, path: str | Path, metrics: str | Sequence[str] | None = None) -> None:
    """Training and validation curves of a run's history.csv (Keras CSVLogger), one panel per
    metric; by default every metric logged with a validation twin (e.g. loss, denoised_loss).
    ValueError naming what was logged when a metric was not."""
    import csv  # noqa: PLC0415

    rows = list(csv.DictReader(Path(history_csv).read_text().splitlines()))
    columns = [name for name in (rows[0] if rows else ()) if name != "epoch"]
    if metrics is None:
        metrics = [name for name in columns if f"val_{name}" in columns]
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    missing = [name for name in metrics if name not in columns]
    if not rows or missing:
        raise ValueError(f"{history_csv} logs no {', '.join(missing) or 'epoch yet'} "
                         f"(it has: {', '.join(columns) or 'nothing'})")
    if not metrics:
        raise ValueError(f"{history_csv} logs no metric with a val_ twin; name the ones to draw with metrics=")
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.2), squeeze=False)
    epochs = [int(r["epoch"]) + 1 for r in rows]
    for ax, name in zip(axes[0], metrics, strict=True):
        for key, label in ((name, "training"), (f"val_{name}", "validation")):
            if rows and key in rows[0]:
                ax.plot(epochs, [float(r[key]) for r in rows], marker="o", label=label)
        ax.set(xlabel="epoch", ylabel=name)
        ax.legend()
    _save(fig, path)


def _save(fig, path) -> None:
    """Lay out, write the PNG atomically (never a half-written image at `path`) and close. A
    character the font lacks (a title in CJK) is drawn as a box without a warning per glyph."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r"Glyph \d+ .* missing from font", UserWarning)
            fig.tight_layout()
            with staged_file(Path(path)) as staging:
                fig.savefig(staging, dpi=100)
    finally:
        plt.close(fig)
