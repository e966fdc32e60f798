"""Metrics and the comparison CLI (model vs noisy, noisereduce, spectral subtraction)."""

import csv
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile

from audio_dl import evaluate, evaluate_denoiser
from audio_dl.config import json_text
from audio_dl.errors import UsageError


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


def test_compare_averages_noisy_and_denoised_over_the_same_pairs():
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 8000
    clean = [(0.3 * np.sin(2 * np.pi * f * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32) for f in (200, 300)]
    noisy = [c + level * rng.standard_normal(c.size).astype(np.float32) for c, level in zip(clean, (0.3, 0.01))]
    denoised = [np.zeros_like(clean[0]), clean[1] + 0.001 * rng.standard_normal(16000).astype(np.float32)]
    summary = evaluate.compare(clean, noisy, denoised, 8000)  # a silent output: its PESQ and SI-SDR are undefined
    for metric in ("pesq_nb", "si_sdr"):
        assert summary["noisy"][metric] == evaluate.speech_metrics(clean[1], noisy[1], 8000)[metric]  # pair 2 alone


def test_metrics_undefined_for_the_reference_are_nan_not_errors():
    rng = np.random.default_rng(2)
    silent = evaluate.speech_metrics(np.zeros(8000), rng.standard_normal(8000), 8000)
    assert all(np.isnan(silent[m]) for m in evaluate.METRICS)
    tiny = rng.standard_normal(100)
    assert np.isnan(evaluate.speech_metrics(tiny, tiny, 8000)["stoi"])  # under one STOI frame: pystoi would raise
    mostly_silent = np.zeros(8000)
    mostly_silent[:800] = rng.standard_normal(800)  # 0.1 s of sound: pystoi would warn and return 1e-5
    metrics = evaluate.speech_metrics(mostly_silent, mostly_silent, 8000)
    assert np.isnan(metrics["stoi"]) and metrics["si_sdr"] > 100


def test_a_silent_estimate_has_no_si_sdr_and_lengths_must_match():
    clean = np.random.default_rng(4).standard_normal(8000)
    assert np.isnan(evaluate.si_sdr(clean, np.zeros(8000)))  # 0/0, not the 0 dB a silent output would "gain"
    for estimate in (clean[:-100], np.stack([clean, clean], 1)):
        with pytest.raises(ValueError, match=r"the reference has shape \(8000,\), the estimate"):
            evaluate.speech_metrics(clean, estimate, 8000)
        with pytest.raises(ValueError, match="equal length"):
            evaluate.si_sdr(clean, estimate)


def test_a_metric_undefined_for_one_method_is_left_out_for_all(tiny_corpus):
    clean, rate = soundfile.read(sorted((tiny_corpus / "speech" / "armelle").glob("*.flac"))[0], dtype="float32")
    methods = {"noisy": lambda x, sr: x, "silent": lambda x, sr: np.zeros_like(x)}  # PESQ fails on silence
    rows = evaluate.evaluate_methods([("a", 0.0, clean, clean + 0.01)], methods, rate)
    assert all(np.isnan(row["pesq_nb"]) for row in rows) and all(np.isfinite(row["stoi"]) for row in rows)


def test_an_average_no_file_defines_is_null_in_strict_json():
    rows = [{"pesq_nb": np.nan, "stoi": 0.5, "si_sdr": 3.0}, {"pesq_nb": np.nan, "stoi": 0.7, "si_sdr": np.nan}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "Mean of empty slice" would print on stderr
        averages = evaluate.average(rows)
    assert np.isnan(averages["pesq_nb"]) and averages["stoi"] == pytest.approx(0.6) and averages["si_sdr"] == 3.0
    text = json_text({"summary": {"all": {"model": averages}}, "files": [np.int64(1), np.nan, np.float32(np.inf)]})
    assert json.loads(text) == {"summary": {"all": {"model": {"pesq_nb": None, "stoi": pytest.approx(0.6),
                                                              "si_sdr": 3.0}}}, "files": [1, None, None]}


def test_mixtures_are_deterministic(tiny_corpus):
    clean = sorted((tiny_corpus / "speech" / "armelle").glob("*.flac"))[:2]
    noise = [str(p) for p in sorted((tiny_corpus / "noise").glob("*.flac"))]
    noises = evaluate_denoiser.load_noises(noise, 8000, skipped := [])
    a = list(evaluate_denoiser.mixtures(clean, noises, [0.0, 5.0], 3, 8000, skipped))
    b = list(evaluate_denoiser.mixtures(clean, noises, [0.0, 5.0], 3, 8000, skipped))
    assert [x[0] for x in a] == [x[0] for x in b] and len(a) == 4 and skipped == []
    for (_, snr, c, n), (_, _, _, n2) in zip(a, b):
        np.testing.assert_array_equal(n, n2)
        assert 10 * np.log10(np.mean(c**2) / np.mean((n - c) ** 2)) == pytest.approx(snr, abs=0.1)


def test_a_noise_with_long_silent_stretches_is_mixed_where_it_sounds(tiny_corpus, tmp_path):
    """A crop of digital silence (or a constant) would leave the speech "mixed" at no SNR."""
    clean = sorted((tiny_corpus / "speech" / "armelle").glob("*.flac"))[:3]
    gaps = np.zeros(480000, np.float32)  # 60 s: silence, then a constant, each beside a 0.5 s burst
    gaps[200000:204000] = 0.1 * np.random.default_rng(0).standard_normal(4000)
    gaps[240000:] = 0.25
    soundfile.write(tmp_path / "gaps.wav", gaps, 8000, subtype="FLOAT")
    noises = evaluate_denoiser.load_noises([tmp_path / "gaps.wav"], 8000, skipped := [])
    made = list(evaluate_denoiser.mixtures(clean, noises, [0.0, 5.0, 10.0], 0, 8000, skipped))
    assert len(made) == 9 and skipped == []
    for _, snr, c, n in made:
        assert 10 * np.log10(np.mean(c**2) / np.mean((n - c) ** 2)) == pytest.approx(snr, abs=0.1)
        assert np.var(n - c) > 1e-6  # not a constant offset either
    faint = 1e-6 * np.random.default_rng(1).standard_normal(80000).astype(np.float32)  # below mix_at_snr's silence
    soundfile.write(tmp_path / "faint.wav", faint, 8000, subtype="FLOAT")
    assert evaluate_denoiser.load_noises([tmp_path / "faint.wav"], 8000, skipped) == [] and len(skipped) == 1
    with pytest.raises(UsageError, match="1000 crops of 7.3 s from the noise files were all silence or a constant"):
        next(evaluate_denoiser.mixtures(clean, [("faint", faint)], [0.0], 0, 8000, []))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "audio_dl.evaluate_denoiser", *args], capture_output=True,
                          text=True, errors="replace", timeout=600)  # a file name need not be UTF-8


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


def test_a_clean_file_whose_name_is_not_utf8_is_scored_and_named_in_the_csv(tiny_export, tiny_corpus, tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    speech, rate = soundfile.read(sorted((tiny_corpus / "speech" / "armelle").iterdir())[0], dtype="float32")
    soundfile.write(os.fsencode(clean) + b"/caf\xe9.wav", speech, rate)  # Latin-1: from an old archive
    result = _cli("--clean", str(clean), "--noise", str(tiny_corpus / "noise" / "birds.flac"), "--snr", "0",
                  "--model", str(tiny_export), "-o", str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr[-2000:]
    rows = (tmp_path / "eval" / "metrics.csv").read_bytes().splitlines()[1:]
    assert len(rows) == 4 and all(row.startswith(b"clean/caf\\xe9.wav+birds,0.0,") for row in rows)  # escaped


def test_without_snr_the_mixtures_are_made_at_the_default_snrs(tiny_export, tiny_corpus, tmp_path):
    result = _cli("--clean", str(tiny_corpus / "speech" / "armelle"), "--noise", str(tiny_corpus / "noise" / "birds.flac"),
                  "--limit", "1", "--model", str(tiny_export), "-o", str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert set(summary["summary"]) == {"all", "-5 dB", "0 dB", "5 dB", "10 dB"} and summary["pairs"] == 4


@pytest.mark.parametrize("rate", [8000, 44100])  # the model's rate, and one resampled (soxr rings at the edges)
def test_a_dc_noise_file_at_any_rate_is_skipped_as_silent(tmp_path, rate):
    soundfile.write(tmp_path / "dc.wav", np.full(2 * rate, 0.2, np.float32), rate)
    skipped = []
    assert evaluate_denoiser.load_noises([tmp_path / "dc.wav"], 8000, skipped) == []
    assert skipped == [tmp_path / "dc.wav"]


def test_a_noisy_partner_has_the_clean_files_own_stem(tmp_path):
    for folder, extension in (("clean", "wav"), ("noisy", "flac")):
        (tmp_path / folder).mkdir()
        for stem in ("take", "take.1"):
            soundfile.write(tmp_path / folder / f"{stem}.{extension}", np.zeros(800, np.float32), 8000)
    clean_files = sorted((tmp_path / "clean").iterdir())
    paired = evaluate_denoiser.noisy_pairs(clean_files, tmp_path / "clean", tmp_path / "noisy", [])
    assert [(c.name, n.name) for c, _, n in paired] == [("take.1.wav", "take.1.flac"), ("take.wav", "take.flac")]
    assert evaluate_denoiser.unpaired_noisy_files(tmp_path / "clean", tmp_path / "noisy") == []


def _samples_do_not_decode(path: Path) -> Path:
    """A FLAC file whose header reads (probe keeps it) but whose frames are noise (decoding fails)."""
    soundfile.write(path, _voice(), 8000)
    header = path.read_bytes()[:200]
    path.write_bytes(header + np.random.default_rng(0).bytes(8000))
    return path


def test_an_unpaired_clean_file_that_does_not_decode_is_a_skip_not_a_missing_partner(tmp_path, monkeypatch):
    for folder in ("clean", "noisy"):
        (tmp_path / folder).mkdir()
    for folder in ("clean", "noisy"):
        soundfile.write(tmp_path / folder / "a.wav", _voice(), 8000)
    _samples_do_not_decode(tmp_path / "clean" / "b.flac")
    nan = _voice()
    nan[10] = np.nan
    soundfile.write(tmp_path / "clean" / "c.wav", nan, 8000, subtype="FLOAT")  # a header, samples not finite
    clean_files = sorted((tmp_path / "clean").iterdir())
    assert all(evaluate_denoiser.audio_io.probe(path) for path in clean_files)  # all kept by probe_all
    skipped = []
    paired = evaluate_denoiser.noisy_pairs(clean_files, tmp_path / "clean", tmp_path / "noisy", skipped)
    assert [c.name for c, _, _ in paired] == ["a.wav"]
    assert skipped == [tmp_path / "clean" / "b.flac", tmp_path / "clean" / "c.wav"]
    soundfile.write(tmp_path / "clean" / "d.wav", _voice(), 8000)  # decodes, no partner: still a usage error
    with pytest.raises(UsageError, match="no noisy file for 3 of 4 clean files .*e.g. d.wav"):
        evaluate_denoiser.noisy_pairs(sorted((tmp_path / "clean").iterdir()), tmp_path / "clean",
                                      tmp_path / "noisy", [])
    # a mistyped --noisy: no clean file has a partner, refused before any file is decoded
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.setattr(evaluate_denoiser.audio_io, "read_audio", lambda *args: pytest.fail("decoded"))
    with pytest.raises(UsageError, match="no noisy file for 4 of 4 clean files .*e.g. a.wav"):
        evaluate_denoiser.noisy_pairs(sorted((tmp_path / "clean").iterdir()), tmp_path / "clean",
                                      tmp_path / "elsewhere", [])


def test_cli_pairs_clean_and_noisy_folders_also_given_with_a_tilde(tiny_export, tmp_path, monkeypatch):
    rate = 8000
    t = np.arange(rate) / rate
    clean = (0.3 * np.sin(2 * np.pi * 200 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    for folder, signal in (("clean", clean), ("noisy", clean + 0.05 * np.sin(2 * np.pi * 1500 * t))):
        (tmp_path / folder).mkdir()
        soundfile.write(tmp_path / folder / "a.wav", signal, rate)
        soundfile.write(tmp_path / folder / "b.wav", np.zeros(rate // 4, np.float32), rate)  # silent reference
        (tmp_path / folder / "sub").mkdir()  # a speaker's subfolder: paired by its path below --clean
        soundfile.write(tmp_path / folder / "sub" / "c.wav", signal, rate)
    (tmp_path / "noisy" / "later").mkdir()
    soundfile.write(tmp_path / "noisy" / "later" / "a.wav", clean, rate)  # no clean later/a.wav
    soundfile.write(tmp_path / "noisy" / "b.flac", clean, rate)  # b.wav is b's noisy file
    assert evaluate_denoiser.unpaired_noisy_files(tmp_path / "clean", tmp_path / "noisy") == [
        tmp_path / "noisy" / "b.flac", tmp_path / "noisy" / "later" / "a.wav"]
    monkeypatch.setenv("HOME", str(tmp_path))  # "~/clean": a quoted path the shell did not expand
    result = _cli("--clean", "~/clean", "--noisy", "~/noisy", "--model", str(tiny_export), "-o", str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 noisy file(s) in " in result.stderr and "are not scored, e.g. b.flac" in result.stderr
    assert "1 of 3 clean/noisy pairs have a metric that is undefined" in result.stdout  # b.wav
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())["summary"]["all"]
    assert all(np.isfinite(summary["noisy"][m]) for m in evaluate.METRICS)  # from a.wav and sub/c.wav


@pytest.mark.parametrize("make_args, message", [
    (lambda tmp: ["--clean", str(tmp / "nope"), "--noise", str(tmp)], "does not exist"),
    (lambda tmp: ["--clean", str(tmp), "--noise", str(tmp), "-o", str(_a_file(tmp))], "is a file"),
    (lambda tmp: ["--clean", str(tmp), "--noise", str(tmp), "--snr", "0", "nan"], "--snr takes dB in [-100, 100]"),
    (lambda tmp: ["--clean", str(tmp), "--noise", str(tmp), "--snr", "-400"], "--snr takes dB in [-100, 100]"),
    (lambda tmp: ["--clean", str(_speech(tmp)), "--noisy", str(tmp / "noisy_half"), "--snr", "5"],
     "--noisy files are scored as they are"),
    (lambda tmp: ["--clean", str(tmp), "--noise", str(tmp), "--seed", "-1"], "--seed must be >= 0"),
    (lambda tmp: ["--clean", str(_speech(tmp)), "--noise", str(_silent_noise(tmp))], "no usable noise"),
    (lambda tmp: ["--clean", str(_speech(tmp)), "--noisy", str(tmp / "noisy_half")], "no noisy file for 1 of 2"),
    (lambda tmp: ["--clean", str(_speech(tmp)), "--noisy", str(tmp / "no_such")], "path does not exist: "),
    (lambda tmp: ["--clean", str(tmp), "--noisy", str(_a_file(tmp))], "is a file, not a folder of noisy files"),
    (lambda tmp: ["--clean", str(_speech(tmp)), str(tmp / "noisy_half"), "--noisy", str(tmp / "noisy_half")],
     "--noisy takes one folder, paired with exactly one --clean folder"),
    (lambda tmp: ["--clean", str(_speech(tmp) / "a.wav"), "--noisy", str(_garbage_noisy(tmp))], "nothing to evaluate"),
    (lambda tmp: ["--clean", str(_speech(tmp)), "--noise", str(tmp / "clean"), "--snr", "5", "0", "5"],
     "--snr repeats 5 dB"),
    (lambda tmp: ["--clean", str(_speech(tmp)), "--noisy", str(tmp / "noisy_half"), "--fcn16", str(tmp / "clean")],
     "--fcn16: no model in"),
])
def test_cli_bad_input_is_one_line_exit_2(tiny_export, tmp_path, make_args, message):
    output = tmp_path / "out"  # a make_args -o comes later and wins
    result = _cli("-o", str(output), *make_args(tmp_path), "--model", str(tiny_export))
    errors = [line for line in result.stderr.splitlines()
              if line.startswith("python -m audio_dl.evaluate_denoiser: error:")]
    assert result.returncode == 2 and len(errors) == 1 and message in errors[0], result.stderr[-1500:]
    assert "Traceback" not in result.stderr and not output.exists()  # no empty output folder left


def _a_file(folder: Path) -> Path:
    (folder / "notes.txt").write_text("not a folder\n")
    return folder / "notes.txt"


def _speech(folder: Path) -> Path:
    """clean/{a,b}.wav in `folder`, and noisy_half/ with a noisy version of a.wav only."""
    for name in ("clean", "noisy_half"):
        (folder / name).mkdir()
    for name in ("a.wav", "b.wav"):
        soundfile.write(folder / "clean" / name, _voice(), 8000)
    soundfile.write(folder / "noisy_half" / "a.wav", _voice() + 0.01, 8000)
    return folder / "clean"


def _garbage_noisy(folder: Path) -> Path:
    (folder / "garbage").mkdir()
    (folder / "garbage" / "a.wav").write_bytes(b"RIFF, not really")
    return folder / "garbage"


def _silent_noise(folder: Path) -> Path:
    soundfile.write(folder / "silence.wav", np.zeros(8000, np.float32), 8000)
    return folder / "silence.wav"


def _voice(seconds: float = 1.0, rate: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 200 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)


def test_cli_skips_and_counts_noisy_files_it_cannot_use_and_pairs_names_with_brackets(tiny_export, tmp_path,
                                                                                      broken_files):
    for folder in ("clean", "noisy"):
        (tmp_path / folder).mkdir()
    for name in ("take[1]", "b", "c", "d"):  # [1] would be a glob pattern
        soundfile.write(tmp_path / "clean" / f"{name}.wav", _voice(), 8000)
    soundfile.write(tmp_path / "noisy" / "take[1].flac", _voice() + 0.01 * np.sin(np.arange(8000)), 8000)
    (tmp_path / "noisy" / "b.wav").write_bytes(broken_files["garbage"].read_bytes())  # unreadable
    nan = _voice()
    nan[10] = np.nan
    soundfile.write(tmp_path / "noisy" / "c.wav", nan, 8000, subtype="FLOAT")  # not finite
    soundfile.write(tmp_path / "noisy" / "d.wav", np.zeros(0, np.float32), 8000)  # a header, no samples
    _samples_do_not_decode(tmp_path / "clean" / "e.flac")  # no noisy partner, and it would be skipped anyway
    result = _cli("--clean", str(tmp_path / "clean"), "--noisy", str(tmp_path / "noisy"), "--model", str(tiny_export),
                  "-o", str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "skipped 4 unreadable, empty or silent file(s)" in result.stdout and "Traceback" not in result.stderr
    with open(tmp_path / "eval" / "metrics.csv") as f:
        assert {row["file"] for row in csv.DictReader(f)} == {"take[1].wav"}
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert (summary["pairs"], summary["skipped"]) == (1, 4)  # pairs scored, not clean files found
