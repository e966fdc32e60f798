"""Speech quality metrics: narrowband PESQ (`pesq`), STOI (`pystoi`) and SI-SDR, per file and averaged.

PESQ runs at 8 kHz narrowband (audio at other rates is resampled to 8 kHz first); never compare
these figures with wideband PESQ.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Iterable

import numpy as np
import soxr
from pesq import pesq
from pystoi import stoi
from pystoi.stoi import FS as STOI_RATE, N_FRAME as STOI_FRAME

from audio_dl.audio_io import is_silent

log = logging.getLogger(__name__)

METRICS = ("pesq_nb", "stoi", "si_sdr")


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB of one [N] estimate against its [N]
    reference; NaN where it is undefined (0/0): a silent reference or a silent estimate."""
    reference, estimate = _same_length(reference, estimate)
    if is_silent(reference):
        return math.nan
    if not np.any(estimate - estimate.mean()):  # exact silence
        log.info("SI-SDR skipped one file: the estimate is silent")
        return math.nan
    reference = reference - reference.mean()
    estimate = estimate - estimate.mean()
    scale = np.dot(reference, estimate) / np.dot(reference, reference)
    target = scale * reference
    return float(10 * np.log10(max(np.sum(target**2), 1e-12) / max(np.sum((estimate - target) ** 2), 1e-12)))


def _same_length(clean, estimate) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64 [N], or ValueError naming the two lengths."""
    clean, estimate = np.asarray(clean, np.float64), np.asarray(estimate, np.float64)
    if clean.ndim != 1 or clean.shape != estimate.shape:
        raise ValueError(f"metrics compare one channel of equal length: the reference has shape {clean.shape}, "
                         f"the estimate {estimate.shape}")
    return clean, estimate


def speech_metrics(clean: np.ndarray, estimate: np.ndarray, sample_rate: int) -> dict[str, float]:
    """{"pesq_nb", "stoi", "si_sdr"} of one [N] estimate against its clean reference.

    A metric that is undefined here is NaN (and logged): PESQ when it finds no utterance, STOI
    when fewer than its 30 frames (about 0.4 s) are left after it drops the silent ones, all
    three when the reference is silent; SI-SDR when the estimate is exact silence (0/0; a method
    that outputs silence also fails PESQ, so that pair drops out for every method). ValueError for arrays of
    other shapes than one [N] each.
    """
    clean, estimate = _same_length(clean, estimate)
    if is_silent(clean):
        log.info("metrics skipped one file: its reference is silent")
        return dict.fromkeys(METRICS, math.nan)
    if sample_rate == 8000:
        clean_nb, estimate_nb = clean, estimate
    else:
        clean_nb, estimate_nb = (soxr.resample(x, sample_rate, 8000) for x in (clean, estimate))
    try:
        pesq_nb = float(pesq(8000, clean_nb, estimate_nb, "nb"))
    except Exception as error:  # noqa: BLE001 - pesq raises its own error types for silent input
        log.info("PESQ skipped one file: %s", error)
        pesq_nb = math.nan
    return {"pesq_nb": pesq_nb, "stoi": _stoi(clean, estimate, sample_rate), "si_sdr": si_sdr(clean, estimate)}


def _stoi(clean: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """pystoi's STOI, or NaN where it has fewer than 30 frames that are not silent: there pystoi
    warns and returns 1e-5, or fails outright below two of its frames."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Not enough STFT frames", RuntimeWarning)  # handled below
        long_enough = len(clean) * STOI_RATE >= 2 * STOI_FRAME * sample_rate
        value = float(stoi(clean, estimate, sample_rate, extended=False)) if long_enough else 1e-5
    if value == 1e-5:
        log.info("STOI skipped one file: fewer than 30 frames that are not silent")
        return math.nan
    return value


def average(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over rows, ignoring NaN (files where a metric is undefined); NaN where
    no row has it."""
    rows = list(rows)
    averages = {}
    for metric in METRICS:
        defined = [r[metric] for r in rows if not math.isnan(r[metric])]
        averages[metric] = float(np.mean(defined)) if defined else math.nan
    return averages


def compare(clean_list, noisy_list, denoised_list, sample_rate: int) -> dict[str, dict[str, float]]:
    """Average metrics of the noisy input and the denoised output over paired [N] arrays (each
    metric over the pairs where it is defined for both)."""
    scores = []
    for clean, noisy, denoised in zip(clean_list, noisy_list, denoised_list, strict=True):
        scores.append(_defined_for_all({"noisy": speech_metrics(clean, noisy, sample_rate),
                                        "denoised": speech_metrics(clean, denoised, sample_rate)}))
    return {signal: average(s[signal] for s in scores) for signal in ("noisy", "denoised")}


def _defined_for_all(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """{signal: metrics} of one pair, with a metric undefined for one signal (say PESQ of a silent
    output) made undefined for all: so every average, and every gain, covers the same pairs."""
    for metric in METRICS:
        if any(math.isnan(s[metric]) for s in scores.values()):
            for s in scores.values():
                s[metric] = math.nan
    return scores


def format_table(summary: dict[str, dict[str, float]]) -> str:
    """Plain-text table: one row per signal, one column per metric, plus the gain row."""
    header = f"{'signal':<10}" + "".join(f"{m:>10}" for m in METRICS)
    lines = [header, "-" * len(header)]
    for name, values in summary.items():
        lines.append(f"{name:<10}" + "".join(f"{values[m]:>10.3f}" for m in METRICS))
    if {"noisy", "denoised"} <= summary.keys():
        lines.append(f"{'gain':<10}" + "".join(
            f"{summary['denoised'][m] - summary['noisy'][m]:>+10.3f}" for m in METRICS))
    return "\n".join(lines)


# --- baselines: what a user would otherwise pick (libraries, not re-implementations) -----------

def noisereduce_baseline(noisy: np.ndarray, sample_rate: int) -> np.ndarray:
    """Spectral gating (the `noisereduce` package, non-stationary mode)."""
    import noisereduce  # noqa: PLC0415

    return noisereduce.reduce_noise(y=noisy, sr=sample_rate, stationary=False).astype(np.float32)


def spectral_subtraction_baseline(noisy: np.ndarray, sample_rate: int) -> np.ndarray:
    """Classic spectral subtraction with a minimum-statistics noise estimate (pyroomacoustics)."""
    from pyroomacoustics.denoise import apply_spectral_sub  # noqa: PLC0415

    nfft = 256
    out = apply_spectral_sub(noisy, nfft=nfft, db_reduc=25, lookback=12, beta=30, alpha=1)
    out = out[nfft // 2:]  # its streaming STFT delays the output by half a frame
    return np.pad(out, (0, max(0, len(noisy) - len(out))))[: len(noisy)].astype(np.float32)


def evaluate_methods(items, methods: dict, sample_rate: int) -> list[dict]:
    """Rows {"file", "snr_db", "method", pesq_nb, stoi, si_sdr} for every item and method.

    items: iterable of (name, snr_db or None, clean [N], noisy [N]); methods: name -> fn(noisy, rate).
    """
    rows = []
    for name, snr_db, clean, noisy in items:
        scores = _defined_for_all({method: speech_metrics(clean, fn(noisy, sample_rate), sample_rate)
                                   for method, fn in methods.items()})
        rows += [{"file": name, "snr_db": snr_db, "method": method, **s} for method, s in scores.items()]
    return rows


def summarize(rows: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """{group: {method: averages}} with group "all" and one per SNR ("5 dB", ...)."""
    groups: dict[str, dict[str, list]] = {}
    for row in rows:
        keys = ["all"] + ([f"{row['snr_db']:g} dB"] if row["snr_db"] is not None else [])
        for key in keys:
            groups.setdefault(key, {}).setdefault(row["method"], []).append(row)
    return {group: {method: average(r) for method, r in by_method.items()} for group, by_method in groups.items()}


def format_comparison(summary: dict) -> str:
    """One block per group: a row per method, a column per metric, gains over the noisy input."""
    blocks = []
    for group, by_method in summary.items():
        header = f"{group:<22}" + "".join(f"{m:>10}" for m in METRICS) + "".join(f"{'Δ' + m:>11}" for m in METRICS)
        lines = [header, "-" * len(header)]
        base = by_method.get("noisy")
        for method, values in by_method.items():
            gains = "".join(f"{values[m] - base[m]:>+11.3f}" for m in METRICS) if base else ""
            lines.append(f"{method:<22}" + "".join(f"{values[m]:>10.3f}" for m in METRICS) + gains)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
