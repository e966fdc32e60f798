"""Figures: waveform + spectrogram panels (the denoising demo's figure)."""

from __future__ import annotations

from pathlib import Path

import librosa
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def waveform_and_spectrogram(signals: dict[str, np.ndarray], sample_rate: int, path: str | Path,
                             title: str = "") -> None:
    """One row per named [N] signal: waveform (left) and dB spectrogram (right); writes a PNG."""
    rows = len(signals)
    fig, axes = plt.subplots(rows, 2, figsize=(12, 2.6 * rows), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.3]})
    peak = max((float(np.abs(x).max()) for x in signals.values() if x.size), default=0.0) or 1.0
    reference = peak * 256 / 4  # 0 dB ~ a full-scale sine in a 256-point Hamming frame
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
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
