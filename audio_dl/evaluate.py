"""Speech quality metrics: narrowband PESQ (`pesq`), STOI (`pystoi`) and SI-SDR, per file and averaged.

PESQ runs at 8 kHz narrowband (audio at other rates is resampled to 8 kHz first); never compare
these figures with wideband PESQ.
"""

from __future__ import annotations

import logging
import math
from typing import Iterable

import numpy as np
import soxr
from pesq import pesq
from pystoi import stoi

log = logging.getLogger(__name__)

METRICS = ("pesq_nb", "stoi", "si_sdr")


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB of one [N] estimate."""
    reference = reference - reference.mean()
    estimate = estimate - estimate.mean()
    scale = np.dot(reference, estimate) / max(np.dot(reference, reference), 1e-12)
    target = scale * reference
    return float(10 * np.log10(max(np.sum(target**2), 1e-12) / max(np.sum((estimate - target) ** 2), 1e-12)))


def speech_metrics(clean: np.ndarray, estimate: np.ndarray, sample_rate: int) -> dict[str, float]:
    """{"pesq_nb", "stoi", "si_sdr"} of one [N] estimate against its clean reference.

    PESQ is NaN (and logged) when it finds no utterance in the reference.
    """
    clean = np.asarray(clean, np.float64)
    estimate = np.asarray(estimate, np.float64)
    if sample_rate == 8000:
        clean_nb, estimate_nb = clean, estimate
    else:
        clean_nb, estimate_nb = (soxr.resample(x, sample_rate, 8000) for x in (clean, estimate))
    try:
        pesq_nb = float(pesq(8000, clean_nb, estimate_nb, "nb"))
    except Exception as error:  # noqa: BLE001 - pesq raises its own error types for silent input
        log.info("PESQ skipped one file: %s", error)
        pesq_nb = math.nan
    return {"pesq_nb": pesq_nb, "stoi": float(stoi(clean, estimate, sample_rate, extended=False)),
            "si_sdr": si_sdr(clean, estimate)}


def average(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over rows, ignoring NaN (files where a metric is undefined)."""
    rows = list(rows)
    return {m: float(np.nanmean([r[m] for r in rows])) if rows else math.nan for m in METRICS}


def compare(clean_list, noisy_list, denoised_list, sample_rate: int) -> dict[str, dict[str, float]]:
    """Average metrics of the noisy input and the denoised output over paired [N] arrays."""
    noisy = [speech_metrics(c, n, sample_rate) for c, n in zip(clean_list, noisy_list)]
    denoised = [speech_metrics(c, d, sample_rate) for c, d in zip(clean_list, denoised_list)]
    return {"noisy": average(noisy), "denoised": average(denoised)}


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
