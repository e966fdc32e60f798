"""Metrics and the comparison CLI (model vs noisy, noisereduce, spectral subtraction)."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from audio_dl import evaluate, evaluate_denoiser


def test_si_sdr_of_known_mixtures():
    rng = np.random.default_rng(0)
    clean = rng.standard_normal(8000)
    noise = rng.standard_normal(8000)
    assert evaluate.si_sdr(clean, 3.0 * clean) > 100  # scale-invariant
    assert evaluate.si_sdr(clean, clean + noise) == pytest.approx(0.0, abs=0.2)
    assert evaluate.si_sdr(clean, clean + 0.1 * noise) == pytest.approx(20.0, abs=0.3)


def test_metrics_prefer_the_clean_signal(tiny_corpus):
    clean_path = sorted((tiny_corpus / "speech" / "armelle").glob("*.flac"))[0]
    clean, rate = soundfile.read(clean_path, dtype="float32")
    noisy = clean + 0.05 * np.random.default_rng(1).standard_normal(len(clean)).astype(np.float32)
    better, worse = evaluate.speech_metrics(clean, clean, rate), evaluate.speech_metrics(clean, noisy, rate)
    assert all(better[m] > worse[m] for m in evaluate.METRICS)


def test_mixtures_are_deterministic(tiny_corpus):
    clean = sorted((tiny_corpus / "speech" / "armelle").glob("*.flac"))[:2]
    noise = [str(p) for p in sorted((tiny_corpus / "noise").glob("*.flac"))]
    a = list(evaluate_denoiser.mixtures(clean, noise, [0.0, 5.0], 3, 8000))
    b = list(evaluate_denoiser.mixtures(clean, noise, [0.0, 5.0], 3, 8000))
    assert [x[0] for x in a] == [x[0] for x in b] and len(a) == 4
    for (_, snr, c, n), (_, _, _, n2) in zip(a, b):
        np.testing.assert_array_equal(n, n2)
        assert 10 * np.log10(np.mean(c**2) / np.mean((n - c) ** 2)) == pytest.approx(snr, abs=0.1)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "audio_dl.evaluate_denoiser", *args], capture_output=True,
                          text=True, timeout=600)


def test_cli_compares_methods_per_snr_and_writes_csv_and_json(tiny_export, tiny_corpus, tmp_path):
    result = _cli("--clean", str(tiny_corpus / "speech" / "armelle"), "--noise", str(tiny_corpus / "noise" / "birds.flac"),
                  "--snr", "0", "5", "--limit", "1", "--model", str(tiny_export), "-o", str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr[-2000:]
    for method in ("noisy", "model", "noisereduce", "spectral_subtraction"):
        assert method in result.stdout
    with open(tmp_path / "eval" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 * 2 * 4
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())["summary"]
    assert set(summary) == {"all", "0 dB", "5 dB"}


def test_cli_pairs_clean_and_noisy_folders(tiny_export, tmp_path):
    rate = 8000
    t = np.arange(rate) / rate
    clean = (0.3 * np.sin(2 * np.pi * 200 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    for folder, signal in (("clean", clean), ("noisy", clean + 0.05 * np.sin(2 * np.pi * 1500 * t))):
        (tmp_path / folder).mkdir()
        soundfile.write(tmp_path / folder / "a.wav", signal, rate)
    result = _cli("--clean", str(tmp_path / "clean"), "--noisy", str(tmp_path / "noisy"), "--model", str(tiny_export),
                  "-o", str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert Path(tmp_path / "eval" / "summary.json").is_file()


def test_cli_missing_input_is_one_line_exit_2(tiny_export, tmp_path):
    result = _cli("--clean", str(tmp_path / "nope"), "--noise", str(tmp_path), "--model", str(tiny_export))
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr
