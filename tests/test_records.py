"""`datasets prepare`: sharded TFRecords of resampled PCM, resumable, bad files listed; training reads them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from audio_dl import audio_io
from audio_dl.config import DenoiserConfig, make_config
from audio_dl.data import records, speech
from audio_dl.errors import UsageError


@pytest.fixture
def source(tmp_path, broken_files):
    """3 speakers x 4 WAVs at 16 kHz (different lengths) + 2 undecodable files."""
    rng = np.random.default_rng(0)
    root = tmp_path / "src"
    for speaker in ("ann", "bob", "cy"):
        for i in range(4):
            path = root / speaker / f"u{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, (0.2 * rng.standard_normal(4000 + 1000 * i)).astype(np.float32), 16000)
    (root / "bob" / "garbage.wav").write_bytes(broken_files["garbage"].read_bytes())
    (root / "cy" / "empty.wav").write_bytes(b"")
    return root


def test_prepare_writes_resampled_shards_and_lists_bad_files(source, tmp_path):
    out = tmp_path / "out"
    manifest = records.prepare(source, out, sample_rate=8000, files_per_shard=5, workers=2)
    assert manifest["files"] == 12 and manifest["skipped"] == 2 and manifest["shards"] == 3
    assert {name: s["files"] for name, s in manifest["speakers"].items()} == {"ann": 4, "bob": 4, "cy": 4}
    assert records.is_prepared(out) and len(records.shard_paths(out)) == 3
    skipped = (out / records.SKIPPED).read_text().splitlines()
    assert skipped[0] == "path\treason" and sorted(line.split("\t")[0] for line in skipped[1:]) == [
        "bob/garbage.wav", "cy/empty.wav"]

    got = {r["path"].numpy().decode(): r for r in records.read_shards(records.shard_paths(out))}
    assert len(got) == 12
    expected = audio_io.read_audio(source / "bob" / "u2.wav", 8000)
    # int16 both ways at one scale: only the rounding to 16 bits is lost
    np.testing.assert_allclose(got["bob/u2.wav"]["audio"].numpy(), expected, atol=0.5 / audio_io.PCM16_SCALE + 1e-7)
    assert got["bob/u2.wav"]["speaker"].numpy() == b"bob"


def test_a_source_of_only_undecodable_files_says_where_to_read_why(tmp_path):
    (tmp_path / "src" / "ann").mkdir(parents=True)
    (tmp_path / "src" / "ann" / "garbage.wav").write_bytes(b"not audio")
    out = tmp_path / "out"
    why = re.escape(f"(why: {out / records.SKIPPED})")
    with pytest.raises(UsageError, match=f"no decodable audio files in .*src {why}"):
        records.prepare(tmp_path / "src", out, workers=1)
    assert (out / records.SKIPPED).read_text().splitlines()[1].startswith("ann/garbage.wav\t")


def test_prepare_walks_the_files_that_training_from_the_folder_reads(source):
    """A link to a file or folder the walk reaches by its own path is that file or folder once (else
    one recording could land in training and validation, or under two speakers); a link to a hidden
    file is its only way in; hidden files (macOS `._` twins) are left out, as reading the folder does."""
    (source / "aa").mkdir()
    (source / "aa" / "link.wav").symlink_to(source / "ann" / "u0.wav")  # sorted before the file itself
    (source / ".stash").mkdir()
    (source / ".stash" / "kept.wav").write_bytes((source / "ann" / "u3.wav").read_bytes())
    (source / "bob" / "stashed.wav").symlink_to(source / ".stash" / "kept.wav")  # its only way in
    (source / "a_link").symlink_to(source / "cy", target_is_directory=True)  # cy, by another name
    (source / "ann" / "._u1.wav").write_bytes(b"\0" * 100)
    (source / ".hidden").mkdir()
    (source / ".hidden" / "u9.wav").write_bytes((source / "ann" / "u2.wav").read_bytes())
    walked = sorted(str(path) for path in records.walk_audio_files(source))
    assert walked == sorted(str(path) for path in audio_io.find_audio_files([source]))
    assert str(source / "aa" / "link.wav") not in walked and str(source / "bob" / "stashed.wav") in walked
    assert not any("a_link" in path for path in walked)


def test_audio_above_full_scale_reads_back_from_records_at_its_level_not_clipped(source, tmp_path):
    """A float file above full scale, and a clipped 16-bit one whose resampling overshoots full
    scale: stored scaled down with their gain, they read back at the level training from the files
    gives them (per crop, or preloaded), not quieter."""
    hot = 2.5 * np.sin(2 * np.pi * 200 * np.arange(8000) / 8000).astype(np.float32)
    soundfile.write(source / "ann" / "hot.wav", hot, 8000, subtype="FLOAT")
    clipped = np.clip(0.75 * np.random.default_rng(1).standard_normal(16000), -1, 1)
    soundfile.write(source / "bob" / "clipped.wav", clipped, 16000, subtype="PCM_16")
    records.prepare(source, tmp_path / "out", sample_rate=8000, files_per_shard=50, workers=1)
    stored = {r["path"].numpy().decode(): r for r in records.read_shards(records.shard_paths(tmp_path / "out"))}
    for name in ("ann/hot.wav", "bob/clipped.wav"):
        from_file = audio_io.read_audio(source / name, 8000)
        peak = float(np.abs(from_file).max())
        assert peak > 1.2  # 2.5; about 1.4 for the clipped noise resampled to 8 kHz
        np.testing.assert_allclose(stored[name]["audio"].numpy(), from_file, atol=0.5 * peak / audio_io.PCM16_SCALE + 1e-6)
    # a shard of the first format (no gain) reads as before: in [-1, 1]
    example = tf.train.Example(features=tf.train.Features(feature={
        "audio": tf.train.Feature(bytes_list=tf.train.BytesList(value=[np.array([32767, -16384], "<i2").tobytes()])),
        "speaker": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"ann"])),
        "path": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"ann/old.wav"])),
        "sample_rate": tf.train.Feature(int64_list=tf.train.Int64List(value=[8000]))}))
    np.testing.assert_allclose(records.parse_example(example.SerializeToString())["audio"].numpy(), [1.0, -16384 / 32767])


def test_prepare_writes_shards_of_an_earlier_record_format_again(source, tmp_path, monkeypatch, caplog):
    out = tmp_path / "out"
    monkeypatch.setattr(records, "RECORD_FORMAT", 1)  # shards as prepared before records held their gain
    records.prepare(source, out, sample_rate=8000, files_per_shard=5, workers=1)
    monkeypatch.undo()
    manifest = json.loads((out / records.MANIFEST).read_text())
    (out / records.MANIFEST).write_text(json.dumps({k: v for k, v in manifest.items() if k != "record_format"}))
    speech._record_speakers([str(out)], make_config(DenoiserConfig, "tiny"))  # training from them is told
    assert f"{out} was prepared before records kept each file's gain" in caplog.text
    assert records.prepare(source, out, sample_rate=8000, files_per_shard=5, workers=1)["resumed_shards"] == 0
    caplog.clear()
    speech._record_speakers([str(out)], make_config(DenoiserConfig, "tiny"))  # this format: no warning
    assert "prepared before records kept" not in caplog.text
    assert records.prepare(source, out, sample_rate=8000, files_per_shard=5, workers=1)["resumed_shards"] == 3


def test_an_interrupted_prepare_removes_the_shards_its_workers_left_half_written(source, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    half = out / ".shard-00000.tfrecord.partial"

    def interrupted(*args):
        half.write_bytes(b"half a shard")  # as a worker that Ctrl-C or `timeout` stopped mid-write
        raise KeyboardInterrupt

    monkeypatch.setattr(records, "_chunk_digest", interrupted)
    with pytest.raises(KeyboardInterrupt):
        records.prepare(source, out, sample_rate=8000, files_per_shard=5, workers=1)
    assert not half.exists()


def test_prepare_resumes_keeps_finished_shards_and_rewrites_changed_ones(source, tmp_path):
    out = tmp_path / "out"
    records.prepare(source, out, sample_rate=8000, files_per_shard=5, workers=1)
    first = {p: (out / p).stat().st_mtime_ns for p in ("shard-00000.tfrecord", "shard-00002.tfrecord")}
    (out / "shard-00001.tfrecord").unlink()  # as if interrupted while writing shard 1
    (out / records.MANIFEST).unlink()
    manifest = records.prepare(source, out, sample_rate=8000, files_per_shard=5, workers=1)
    assert manifest["resumed_shards"] == 2 and manifest["files"] == 12
    assert {p: (out / p).stat().st_mtime_ns for p in first} == first

    manifest = records.prepare(source, out, sample_rate=16000, files_per_shard=5, workers=1)
    assert manifest["resumed_shards"] == 0 and manifest["sample_rate"] == 16000  # another rate: all rewritten

    (source / "ann" / "u0.wav").unlink()  # the first shard's file list changes; the source shrinks
    for speaker in ("bob", "cy"):
        for i in range(4):
            (source / speaker / f"u{i}.wav").unlink()
    manifest = records.prepare(source, out, sample_rate=8000, files_per_shard=5, workers=1)
    assert manifest["files"] == 3 and manifest["shards"] == 1 and manifest["resumed_shards"] == 0
    assert sorted(p.name for p in out.iterdir()) == [records.MANIFEST, "shard-00000.json", "shard-00000.tfrecord",
                                                    records.SKIPPED]


def test_odd_file_names_are_skipped_or_listed_without_breaking_the_list(source, tmp_path):
    wav = (source / "ann" / "u0.wav").read_bytes()
    (source / "ann" / os.fsdecode(b"caf\xe9.wav")).write_bytes(wav)  # a Latin-1 name on a UTF-8 system
    (source / "bob" / "tab\there.wav").write_bytes(b"not audio")
    soundfile.write(source / "cy" / "nan.wav", np.full(800, np.nan, np.float32), 8000, subtype="FLOAT")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "shard-abc.json").write_text("{}")  # not one of its shards: left alone
    manifest = records.prepare(source, tmp_path / "out", sample_rate=8000, files_per_shard=50, workers=1)
    assert manifest["files"] == 12 and manifest["skipped"] == 5 and (tmp_path / "out" / "shard-abc.json").exists()
    rows = (tmp_path / "out" / records.SKIPPED).read_text().splitlines()[1:]
    assert len(rows) == 5 and all(len(row.split("\t")) == 2 for row in rows)
    assert any(r.startswith("cy/nan.wav\t") and "holds samples that are not finite" in r for r in rows)
    assert "ann/caf\\xe9.wav\tthe file name is not valid UTF-8" in rows and any(r.startswith("bob/tab\\there.wav\t") for r in rows)


@pytest.mark.parametrize("make_source, message, extra", [
    (lambda tmp: tmp / "missing", "not a folder", []),
    (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "no audio files", []),
    (lambda tmp: "", "an empty path was given", []),
    (lambda tmp: tmp, "--sample-rate must be in [1000, 384000]", ["--sample-rate", "99999999999999"]),
])
def test_prepare_misuse_is_one_line_exit_2_and_leaves_the_output_as_it_was(make_source, message, extra, tmp_path):
    source = str(make_source(tmp_path))
    (tmp_path / "prepared").mkdir()  # an earlier prepare's output
    (tmp_path / "prepared" / records.MANIFEST).write_text("{}")
    for out in ("new", "prepared"):
        result = subprocess.run([sys.executable, "-m", "audio_dl.datasets", "prepare", source, str(tmp_path / out),
                                 *extra], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()
    assert [p.name for p in (tmp_path / "prepared").iterdir()] == [records.MANIFEST]


@pytest.mark.slow
def test_training_reads_prepared_shards_with_the_corpus_split(tiny_corpus, tmp_path):
    out = tmp_path / "prepared"
    records.prepare(tiny_corpus / "speech", out, sample_rate=8000, files_per_shard=2, workers=2)
    assert json.loads((out / "splits.json").read_text())["val_speakers"] == ["armelle"]
    cfg = make_config(DenoiserConfig, "tiny", overrides=[f"speech={out}", f"noise={tiny_corpus / 'noise'}"])
    corpus = speech.load_corpus(cfg)
    assert corpus.val.record_speakers == ("armelle",) and "armelle" not in corpus.train.record_speakers
    assert corpus.train.speech_files == 9 and not corpus.train.speech  # nothing read from the audio files

    noisy, targets = next(iter(speech.training_dataset(corpus.train, cfg)))
    assert noisy.shape == (cfg.batch_size, cfg.crop_samples) and np.isfinite(noisy.numpy()).all()
    val = [x.numpy() for x, _ in speech.validation_dataset(corpus.val, cfg)]
    again = [x.numpy() for x, _ in speech.validation_dataset(corpus.val, cfg)]
    assert sum(len(x) for x in val) == cfg.val_examples
    np.testing.assert_array_equal(np.concatenate(val), np.concatenate(again))  # the same mixtures each time

    mixed = make_config(DenoiserConfig, "tiny", overrides=[f"speech={out},{tiny_corpus / 'speech'}",
                                                           f"noise={tiny_corpus / 'noise'}"])
    with pytest.raises(Exception, match="either prepared TFRecord folders or audio folders"):
        speech.load_corpus(mixed)


def test_a_prepared_folder_whose_own_name_is_not_utf8_is_written_and_trained_from(tiny_corpus, tmp_path):
    out = tmp_path / os.fsdecode(b"pr\xe9pared")  # Latin-1, as an old archive's folder names are
    manifest = records.prepare(tiny_corpus / "speech", out, sample_rate=8000, files_per_shard=4, workers=1)
    assert manifest["files"] == 12 and len(records.shard_paths(out)) == 3
    assert len(list(records.read_shards(records.shard_paths(out)))) == 12
    cfg = make_config(DenoiserConfig, "tiny", overrides=[f"speech={out}", f"noise={tiny_corpus / 'noise'}"])
    noisy, _ = next(iter(speech.training_dataset(speech.load_corpus(cfg).train, cfg)))
    assert noisy.shape == (cfg.batch_size, cfg.crop_samples)


@pytest.mark.parametrize("files_per_shard", [100, 8])  # all in one shard; a shard per speaker, interleaved
def test_validation_from_shards_spans_every_held_out_speaker(tiny_corpus, tmp_path, files_per_shard):
    source = tmp_path / "src"
    tones = {"ann": 300, "bob": 700, "cy": 1100, "dan": 1500, "eve": 1900}  # a tone per speaker tells them apart
    for speaker, hz in tones.items():
        for i in range(8):
            path = source / speaker / f"u{i:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, (0.3 * np.sin(2 * np.pi * hz * np.arange(4000) / 8000)).astype(np.float32), 8000)
    out = tmp_path / "prepared"
    records.prepare(source, out, sample_rate=8000, files_per_shard=files_per_shard, workers=1)
    cfg = make_config(DenoiserConfig, "tiny", overrides=[f"speech={out}", f"noise={tiny_corpus / 'noise'}",
                                                         "val_speakers=ann,bob,cy,dan", "val_examples=8"])
    corpus = speech.load_corpus(cfg)
    clean = np.concatenate([targets["denoised"].numpy() for _, targets in speech.validation_dataset(corpus.val, cfg)])
    found = [int(np.argmax(np.abs(np.fft.rfft(crop))) * 8000 / crop.size) for crop in clean]
    assert len(found) == 8 and sorted(set(found)) == [300, 700, 1100, 1500]  # every held-out voice, not the first


def test_a_resumed_run_is_told_when_its_validation_mixtures_from_records_changed(tmp_path, caplog):
    """A run records a digest of its validation mixtures; resumed against others (here the folder
    was prepared again with more files, so every k-th record is another one) it is warned."""
    from audio_dl import training

    source, out, run, noise = tmp_path / "src", tmp_path / "prepared", tmp_path / "run", tmp_path / "noise"
    noise.mkdir()
    for name in ("hiss", "hum"):
        soundfile.write(noise / f"{name}.wav", 0.1 * np.random.default_rng(len(name)).standard_normal(8000), 8000)
    for i in range(12):  # a tone per file tells the crops apart
        for speaker in ("ann", "bob"):
            path = source / speaker / f"u{i:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, (0.3 * np.sin(2 * np.pi * (300 + 50 * i) * np.arange(4000) / 8000)).astype(np.float32),
                            8000)
        if i == 7:
            records.prepare(source, out, sample_rate=8000, files_per_shard=100, workers=1)
    cfg = make_config(DenoiserConfig, "tiny", overrides=[f"speech={out}", f"noise={noise}", "val_speakers=ann",
                                                         "val_examples=4"])

    def digest():
        return training.validation_digest(speech.validation_dataset(speech.load_corpus(cfg).val, cfg))[0]

    run.mkdir()
    first = digest()
    training.check_validation_set(run, first)  # a new run records its mixtures
    (run / training.EpochClock.FILE).write_text(json.dumps({"train_seconds": 1.0, "epochs": 2}))
    assert digest() == first
    training.check_validation_set(run, first)
    assert "another validation set" not in caplog.text
    records.prepare(source, out, sample_rate=8000, files_per_shard=100, workers=1)  # 12 files of ann, not 8
    training.check_validation_set(run, digest())
    assert f"epochs 1..2 of {run} were scored on another validation set than this one" in caplog.text
