import errno
import os
import shutil

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from audio_dl.config import DenoiserConfig, make_config
from audio_dl.data import speech
from audio_dl.errors import UsageError


def _cfg(corpus, *overrides):
    return make_config(DenoiserConfig, "tiny", overrides=[f"speech={corpus / 'speech'}",
                                                          f"noise={corpus / 'noise'}", *overrides])


def test_split_is_by_speaker_and_noise_file(tiny_corpus):
    corpus = speech.load_corpus(_cfg(tiny_corpus))
    assert set(corpus.val.speakers) == {"armelle"}
    assert "armelle" not in set(corpus.train.speakers)
    assert [i.path.endswith("birds.flac") for i in corpus.val.noise] == [True]
    assert not any(i.path.endswith("birds.flac") for i in corpus.train.noise)


def test_a_symlinked_speaker_folder_is_that_speaker(tiny_corpus, tmp_path):
    linked = tmp_path / "c"
    (linked / "speech").mkdir(parents=True)
    for speaker in (tiny_corpus / "speech").iterdir():
        (linked / "speech" / speaker.name).symlink_to(speaker)
    (linked / "noise").symlink_to(tiny_corpus / "noise")
    shutil.copy(tiny_corpus / "splits.json", linked)
    corpus = speech.load_corpus(_cfg(linked))
    assert set(corpus.train.speakers) == {"allison", "menardi", "codec2"} and set(corpus.val.speakers) == {"armelle"}


def test_a_corpus_under_a_quoted_home_folder_keeps_its_splits_json(tiny_corpus, monkeypatch):
    monkeypatch.setenv("HOME", str(tiny_corpus.parent))
    home = f"~/{tiny_corpus.name}"
    corpus = speech.load_corpus(make_config(DenoiserConfig, "tiny", overrides=[f"speech={home}/speech",
                                                                               f"noise={home}/noise"]))
    assert set(corpus.val.speakers) == {"armelle"} and [i.path.endswith("birds.flac") for i in corpus.val.noise] == [True]


def test_config_split_overrides_splits_json(tiny_corpus):
    corpus = speech.load_corpus(_cfg(tiny_corpus, "val_speakers=codec2", "val_noises=water"))
    assert set(corpus.val.speakers) == {"codec2"}


@pytest.mark.parametrize("content", ['{"train_fraction": 0.8}', '["armelle"]', '{"val_speakers": "armelle"}',
                                     '{"val_speakers": [1]}', "not json", b"\xff\xfe"])
def test_a_splits_json_of_another_shape_is_one_error_naming_it(tiny_corpus, tmp_path, content):
    corpus = shutil.copytree(tiny_corpus, tmp_path / "corpus")
    (corpus / "splits.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(UsageError, match=f"{corpus / 'splits.json'} is not a splits file"):
        speech.load_corpus(_cfg(corpus))


def test_batches_have_the_configured_shape_and_are_finite(tiny_corpus):
    cfg = _cfg(tiny_corpus, "augment=true", "reverb_probability=1", "bandpass_probability=1")
    noisy, targets = next(iter(speech.training_dataset(speech.load_corpus(cfg).train, cfg)))
    assert noisy.shape == (cfg.batch_size, cfg.crop_samples)
    assert targets["denoised"].shape == noisy.shape
    assert np.all(np.isfinite(noisy.numpy())) and np.all(np.isfinite(targets["denoised"].numpy()))


def test_default_mixtures_are_at_0_db(tiny_corpus):
    cfg = _cfg(tiny_corpus, "batch_size=8")
    noisy, targets = next(iter(speech.training_dataset(speech.load_corpus(cfg).train, cfg)))
    clean = targets["denoised"].numpy()
    noise = noisy.numpy() - clean
    snr = 10 * np.log10(np.mean(clean**2, axis=1) / np.mean(noise**2, axis=1))
    np.testing.assert_allclose(snr, 0.0, atol=0.1)


def test_examples_are_reproducible_from_the_seed(tiny_corpus):
    cfg = _cfg(tiny_corpus, "augment=true")
    train = speech.load_corpus(cfg).train
    first = next(iter(speech.training_dataset(train, cfg)))[0].numpy()
    again = next(iter(speech.training_dataset(train, cfg)))[0].numpy()
    np.testing.assert_array_equal(first, again)


def test_a_stream_started_later_continues_the_stream(tiny_corpus):
    cfg = _cfg(tiny_corpus, "augment=true")
    train, context = speech.load_corpus(cfg).train, tf.distribute.InputContext()
    whole = [e["noisy"].numpy() for e in speech._training_examples(train, cfg, context).take(7)]
    resumed = [e["noisy"].numpy() for e in speech._training_examples(train, cfg, context, first_example=4).take(3)]
    np.testing.assert_array_equal(np.stack(whole[4:]), np.stack(resumed))


@pytest.mark.parametrize("seed", [0, 2**32 - 1])  # the largest seed a config takes
def test_validation_set_is_fixed_and_sized(tiny_corpus, seed):
    cfg = _cfg(tiny_corpus, f"seed={seed}")
    val = speech.load_corpus(cfg).val
    batches = [x.numpy() for x, _ in speech.validation_dataset(val, cfg)]
    assert sum(len(b) for b in batches) == cfg.val_examples
    np.testing.assert_array_equal(batches[0], next(iter(speech.validation_dataset(val, cfg)))[0].numpy())


def test_bad_files_inside_a_corpus_are_skipped_and_counted(tiny_corpus, broken_files, tmp_path, caplog):
    corpus_copy = tmp_path / "c"
    shutil.copytree(tiny_corpus, corpus_copy)
    for path in broken_files.values():
        shutil.copy(path, corpus_copy / "speech" / "allison" / path.name)
    corpus = speech.load_corpus(_cfg(corpus_copy))
    assert corpus.skipped == 3
    assert "skipped 3 of" in caplog.text


def test_missing_or_empty_inputs_are_usage_errors(tiny_corpus, tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        speech.load_corpus(_cfg(tiny_corpus, f"speech={tmp_path / 'missing'}"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no audio files"):
        speech.load_corpus(_cfg(tiny_corpus, f"noise={tmp_path / 'empty'}"))
    with pytest.raises(UsageError, match="val_speakers: nobody not in the corpus"):
        speech.load_corpus(_cfg(tiny_corpus, "val_speakers=nobody"))
    with pytest.raises(UsageError, match="val_noises: hum, rain not in the corpus"):
        speech.load_corpus(_cfg(tiny_corpus, "val_noises=rain,birds,hum"))


def test_a_split_without_loud_enough_speech_is_one_usage_error_not_an_endless_wait(tiny_corpus, tmp_path):
    speech.require_examples(speech.load_corpus(_cfg(tiny_corpus)), _cfg(tiny_corpus))
    cfg = _cfg(tiny_corpus, "min_speech_dbfs=0")  # louder than any speech: the training stream never yields
    with pytest.raises(UsageError, match="no training mixture has speech louder than min_speech_dbfs=0 dBFS"):
        speech.require_examples(speech.load_corpus(cfg), cfg)
    silent = tmp_path / "c"
    shutil.copytree(tiny_corpus, silent)
    for path in (silent / "speech" / "armelle").iterdir():  # the validation voice, digitally silent
        soundfile.write(path, np.zeros(8000, np.float32), 8000)
    with pytest.raises(UsageError, match="no validation mixture has speech louder than"):
        speech.require_examples(speech.load_corpus(_cfg(silent, "preload_mb=0")), _cfg(silent, "preload_mb=0"))
    with pytest.raises(UsageError, match=r"none of .* decodes to usable audio \(undecodable, not finite or digitally silent\)"):
        speech.require_examples(speech.load_corpus(_cfg(silent)), _cfg(silent))


def test_a_noise_split_whose_only_file_is_not_finite_is_one_usage_error(tiny_corpus, tmp_path):
    corpus_copy = tmp_path / "c"
    shutil.copytree(tiny_corpus, corpus_copy)
    (corpus_copy / "noise" / "birds.flac").unlink()  # the validation noise: NaN samples only
    soundfile.write(corpus_copy / "noise" / "birds.wav", np.full(8000, np.nan, np.float32), 8000, subtype="FLOAT")
    cfg = _cfg(corpus_copy)
    with pytest.raises(UsageError, match="none of birds.wav decodes to usable audio"):
        speech.require_examples(speech.load_corpus(cfg), cfg)


def test_a_single_speaker_corpus_is_split_by_file(tiny_corpus):
    corpus = speech.load_corpus(_cfg(tiny_corpus, f"speech={tiny_corpus / 'speech' / 'allison'}",
                                     "val_fraction=0.34"))
    assert len(corpus.val.speech) == 1 and len(corpus.train.speech) == 2
    assert not set(corpus.val.speakers) & set(corpus.train.speakers)


def _catalogue_entry(description: bytes, payload: bytes) -> bytes:
    return bytes([len(description)]) + description + payload


def test_openttd_sound_catalogue_is_split_into_wavs_with_their_credits(tmp_path):
    import io

    import soundfile

    from audio_dl.data import corpora

    tone = np.sin(np.arange(4410) * 0.05).astype(np.float32)
    wav = io.BytesIO()
    soundfile.write(wav, tone, 44100, format="WAV", subtype="PCM_16")
    entries = [_catalogue_entry(b'"Wind". By someone. License: CC0.\0', wav.getvalue()),
               _catalogue_entry(b'"Unused". Empty.', b""),  # the set's empty placeholder
               _catalogue_entry(b'"Wind again".', wav.getvalue())]
    table_size = 8 * len(entries)
    table, body, offset = b"", b"", table_size
    for entry in entries:  # offsets carry OpenTTD's flag bit, as in opensfx.cat
        table += (offset | 0x80000000).to_bytes(4, "little") + len(entry).to_bytes(4, "little")
        body += entry
        offset += len(entry)
    catalogue = tmp_path / "set.cat"
    catalogue.write_bytes(table + body)

    assert corpora.split_sound_catalogue(catalogue, tmp_path / "out") == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00.txt", "00.wav", "02.txt", "02.wav"]
    audio, rate = soundfile.read(tmp_path / "out" / "02.wav", dtype="float32")
    assert rate == 44100 and np.allclose(audio, tone, atol=1e-4)
    assert (tmp_path / "out" / "00.txt").read_text() == '"Wind". By someone. License: CC0.\n'


def test_held_out_noise_and_speech_sources_are_disjoint_from_training():
    from audio_dl.data import corpora

    for kind in ("speech", "noise"):
        sides = {split: {s.name.split("/")[0] for s in corpora.SOURCES if s.kind == kind and s.split == split}
                 for split in ("train", "val")}
        assert sides["train"] and sides["val"] and not sides["train"] & sides["val"]
    recordings = [entry for entries in corpora.OPENSFX_NOISES.values() for entry in entries]
    assert len(recordings) == len(set(recordings))
    noise_files = [s.name for s in corpora.SOURCES if s.kind == "noise"]  # one corpus file each
    assert len(noise_files) == len(set(noise_files))



@pytest.mark.parametrize("kind", ["speech", "noise"])
def test_crops_from_memory_match_crops_decoded_from_files(tiny_corpus, kind):
    """Same draws and positions; the two differ only by int16 rounding and soxr's edge effects
    where a file crop starts mid-file."""
    cfg = _cfg(tiny_corpus)
    infos = getattr(speech.load_corpus(cfg).train, kind)
    from_files, from_memory = speech._FileTable(infos), speech._MemoryTable(infos, cfg.sample_rate)
    for k in range(6):
        seed = tf.constant([k, 3], tf.int64)
        index = from_files.draw(seed)
        assert int(index) == int(from_memory.draw(seed))
        args = (index, 0.5, tf.constant(k / 5, tf.float32), cfg.sample_rate, kind == "noise")
        a, b = (tf.function(table.read, reduce_retracing=False)(*args).numpy() for table in (from_files, from_memory))
        assert a.shape == b.shape == (4000,)
        np.testing.assert_allclose(a[200:-200], b[200:-200], atol=2e-3)


def test_a_file_whose_name_is_not_utf8_is_read_per_crop(tiny_corpus, tmp_path):
    speech_file = sorted((tiny_corpus / "speech" / "allison").iterdir())[0]
    latin1 = os.fsencode(tmp_path) + b"/caf\xe9.flac"  # a name from an old archive
    shutil.copy(speech_file, latin1)
    infos = [speech.audio_io.probe(os.fsdecode(latin1))]
    table = speech._FileTable(infos)
    crop = tf.function(table.read)(tf.constant(0), 0.5, tf.constant(0.5), 8000, False).numpy()
    assert crop.shape == (4000,) and np.abs(crop).max() > 0.01


def test_corpus_files_whose_names_are_not_utf8_are_skipped_and_counted(tiny_corpus, tmp_path, caplog):
    corpus_copy = tmp_path / os.fsdecode(b"J\xfcrgen") / "c"  # a folder above the corpus may be called anything
    shutil.copytree(tiny_corpus, corpus_copy)
    latin1 = [os.fsdecode(os.fsencode(corpus_copy / folder) + name) for folder, name in
              (("noise", b"/caf\xe9.flac"), ("speech", b"/jos\xe9"))]  # from an old archive
    shutil.copy(corpus_copy / "noise" / "water.flac", latin1[0])
    shutil.copytree(corpus_copy / "speech" / "codec2", latin1[1])
    corpus = speech.load_corpus(_cfg(corpus_copy))
    assert corpus.skipped == 3 + 1 and "jos" not in "".join(corpus.train.speakers + corpus.val.speakers)
    assert "skipped 3 speech file(s) whose name is not valid UTF-8 (rename them), e.g. " in caplog.text
    assert "skipped 1 noise file(s) whose name is not valid UTF-8 (rename them), e.g. " in caplog.text
    assert "caf\\xe9.flac" in caplog.text


def test_a_corpus_larger_than_preload_mb_is_read_per_crop(tiny_corpus):
    cfg = _cfg(tiny_corpus, "preload_mb=0")
    assert isinstance(speech._table(speech.load_corpus(cfg).train.speech, cfg), speech._FileTable)
    assert isinstance(speech._table(speech.load_corpus(cfg).train.speech, _cfg(tiny_corpus)), speech._MemoryTable)


def test_a_file_that_fails_to_decode_when_preloaded_is_counted_and_never_drawn(tiny_corpus, monkeypatch):
    cfg = _cfg(tiny_corpus)
    infos = speech.load_corpus(cfg).train.speech
    bad = infos[0].path
    real_read = speech.audio_io.read_audio

    def flaky_read(path, *args, **kwargs):
        if str(path) == bad:
            raise ValueError(f"cannot decode {path}")
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(speech.audio_io, "read_audio", flaky_read)
    for _ in range(2):  # a second run in the process (decoded once, cached) counts it again
        speech.reset_read_failures()
        table = speech._MemoryTable(infos, cfg.sample_rate + 1)  # a rate no other test cached
        assert speech.read_failures() == 1
    assert all(int(table.draw(tf.constant([k, 0], tf.int64))) != 0 for k in range(50))


@pytest.mark.parametrize("name, level", [("silence.wav", 0.0), ("dc.wav", 0.2)])  # digital silence, a constant
@pytest.mark.parametrize("rate", [8000, 44100])  # the model's rate, and one resampled (soxr rings at the edges)
def test_a_silent_noise_file_is_counted_and_never_drawn(tiny_corpus, tmp_path, name, level, rate):
    corpus_copy = tmp_path / "c"
    shutil.copytree(tiny_corpus, corpus_copy)
    soundfile.write(corpus_copy / "noise" / name, np.full(10 * rate, level, np.float32), rate)  # the longest
    cfg = _cfg(corpus_copy)  # 8 kHz
    infos = speech.load_corpus(cfg).train.noise
    silent = [i for i, info in enumerate(infos) if info.path.endswith(name)]
    for _ in range(2):  # a second run in the process (decoded once, cached) counts it again
        speech.reset_read_failures()
        table = speech._MemoryTable(infos, cfg.sample_rate)
        assert speech.read_failures() == 1
    assert all(int(table.draw(tf.constant([k, 0], tf.int64))) not in silent for k in range(50))


@pytest.mark.parametrize("level", [0.0, 0.2])  # digital silence, a constant
@pytest.mark.parametrize("rate", [8000, 44100])  # the model's rate, and one resampled crop by crop
def test_noise_read_per_crop_that_is_silent_mixes_no_example(tiny_corpus, tmp_path, level, rate):
    corpus_copy = tmp_path / "c"
    shutil.copytree(tiny_corpus, corpus_copy)
    for path in (corpus_copy / "noise").iterdir():
        soundfile.write(path.with_suffix(".wav"), np.full(5 * rate, level, np.float32), rate)
        path.unlink()
    cfg = _cfg(corpus_copy, "preload_mb=0")  # per crop: a silent file cannot be known before it is read
    corpus = speech.load_corpus(cfg)
    examples = speech._training_examples(corpus.train, cfg, tf.distribute.InputContext()).take(8)
    assert [bool(e["ok"]) for e in examples] == [False] * 8  # not the clean speech "mixed" with nothing
    with pytest.raises(UsageError, match=r"no training mixture has speech louder than .* or its noise is silent\)$"):
        speech.require_examples(corpus, cfg)


@pytest.fixture
def one_source_corpus(tmp_path, monkeypatch):
    """corpora.SOURCES cut to one speaker and one noise, 'downloaded' from a local folder."""
    import soundfile

    from audio_dl.data import corpora

    package = tmp_path / "package"
    for name in ("level1/cs/hello", "level1/cs/world", "level2/cs/hello"):  # a name reused per level
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(package / f"{name}.wav", 0.3 * np.sin(np.arange(8000) * 0.07), 8000)
    soundfile.write(package / "hum.wav", 0.1 * np.sin(np.arange(16000) * 0.02), 8000)
    monkeypatch.setattr(corpora, "SOURCES", (
        corpora.Source("speech", "ann", "debian:fake", ("*/cs/*.wav",), "CC0", "val"),
        corpora.Source("noise", "hum", "debian:fake", ("hum.wav",), "CC0")))
    monkeypatch.setattr(corpora, "_fetch", lambda package_name, cache: package)
    return corpora


def test_the_denoiser_corpus_appears_whole_or_not_at_all(one_source_corpus, tmp_path, monkeypatch):
    corpora, out = one_source_corpus, tmp_path / "corpus"
    counts = corpora.build_denoiser_corpus(out, cache_dir=tmp_path / "cache")
    assert counts["speech_files"] == 3 and counts["noise_files"] == 1
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == {  # none overwritten
        "speech/ann/hello.flac", "speech/ann/world.flac", "speech/ann/cs_hello.flac", "noise/hum.flac",
        "SOURCES.md", "splits.json"}
    assert corpora.build_denoiser_corpus(out, cache_dir=tmp_path / "cache") == counts  # a rebuild replaces it

    written = []

    def write_then_fail(path, *args, **kwargs):  # interrupted after the first file
        if written:
            raise KeyboardInterrupt
        written.append(path)

    monkeypatch.setattr(corpora.soundfile, "write", write_then_fail)
    with pytest.raises(KeyboardInterrupt):
        corpora.build_denoiser_corpus(tmp_path / "half", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "half").exists() and not list(tmp_path.glob(".half*"))


def test_the_denoiser_corpus_is_not_built_over_other_files(one_source_corpus, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("\\documentclass{article}\n")
    with pytest.raises(UsageError, match="holds other files"):
        one_source_corpus.build_denoiser_corpus(tmp_path / "mine", cache_dir=tmp_path / "cache")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["thesis.tex"]
    prepared = tmp_path / "prepared"  # `datasets prepare` output: splits.json beside its shards
    prepared.mkdir()
    for name in ("splits.json", "manifest.json", "shard-00000.tfrecord"):
        (prepared / name).write_text("{}")
    with pytest.raises(UsageError, match="holds other files"):
        one_source_corpus.build_denoiser_corpus(prepared, cache_dir=tmp_path / "cache")
    assert len(list(prepared.iterdir())) == 3


@pytest.mark.parametrize("failing", ["download", "catalogue"])
def test_a_full_package_cache_is_named_as_the_cache_not_the_corpus(failing, tmp_path, monkeypatch):
    from audio_dl.data import corpora

    def disk_full(*args, **kwargs):  # a write's OSError carries no file name
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    cache = tmp_path / "cache"
    monkeypatch.setattr(corpora, "SOURCES", (corpora.Source("noise", "hum", "debian:fake", ("*.wav",), "CC0",
                                                            catalogue="sounds.cat"),))
    if failing == "download":
        monkeypatch.setattr(corpora, "_run", disk_full)
    else:  # the package is in the cache; splitting its sound catalogue fills the disk
        monkeypatch.setattr(corpora, "_fetch", lambda package, cache: cache / "fake")
        monkeypatch.setattr(corpora, "split_sound_catalogue", disk_full)
    with pytest.raises(OSError) as raised:
        corpora.build_denoiser_corpus(tmp_path / "corpus", cache_dir=cache)
    named = cache if failing == "download" else cache / "fake" / "sounds.cat.d"
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(named)
    assert not (tmp_path / "corpus").exists() and not list(tmp_path.glob(".corpus*"))


def _speech_of(corpus) -> list[tuple[str, str]]:
    """(path, speaker) of every speech file of both splits, sorted."""
    return sorted((info.path, speaker) for part in (corpus.train, corpus.val)
                  for info, speaker in zip(part.speech, part.speakers))


def test_overlapping_speech_specs_list_each_file_once_with_the_first_specs_speaker(tiny_corpus):
    root = tiny_corpus / "speech"
    once = _speech_of(speech.load_corpus(_cfg(tiny_corpus)))
    assert _speech_of(speech.load_corpus(_cfg(tiny_corpus, f"speech={root},{root}"))) == once
    assert _speech_of(speech.load_corpus(_cfg(tiny_corpus, f"speech={root},{root / 'allison'}"))) == once


def test_a_single_noise_file_is_one_usage_error_saying_two_are_needed(tiny_corpus):
    with pytest.raises(UsageError, match=r"^at least two readable noise files are needed \(one is held out for "
                                         r"validation\); found 1 in .*water.flac$"):
        speech.load_corpus(_cfg(tiny_corpus, f"noise={tiny_corpus / 'noise' / 'water.flac'}"))


def test_impulse_responses_that_do_not_decode_or_are_silent_are_skipped_named_and_counted(
        tiny_corpus, broken_files, tmp_path, caplog):
    folder = tmp_path / "rooms"
    folder.mkdir()
    response = (np.exp(-np.arange(800) / 100.0) * np.random.default_rng(0).standard_normal(800)).astype(np.float32)
    soundfile.write(folder / "room.wav", response, 8000, subtype="FLOAT")
    soundfile.write(folder / "nan.wav", np.where(np.arange(800) % 50, response, np.nan), 8000, subtype="FLOAT")
    soundfile.write(folder / "zeros.wav", np.zeros(800, np.float32), 8000)
    soundfile.write(folder / "offset.wav", np.full(800, 0.3, np.float32), 8000)
    shutil.copy(broken_files["garbage"], folder / "garbage.wav")
    cfg = _cfg(tiny_corpus, f"impulse_responses={folder}", "augment=true", "reverb_probability=0.5")
    speech.reset_read_failures()
    responses = speech._load_impulse_responses(cfg).numpy()
    assert responses.shape[0] == 1 and np.abs(responses).max() == pytest.approx(1.0)
    assert speech.read_failures() == 4
    for name in ("nan.wav", "zeros.wav", "offset.wav", "garbage.wav"):
        warnings = [r.getMessage() for r in caplog.records if name in r.getMessage()]
        assert warnings and all("impulse response" in w for w in warnings), name
    (folder / "room.wav").unlink()
    with pytest.raises(UsageError, match=f"^no readable impulse responses in {folder}$"):
        speech._load_impulse_responses(cfg)


def test_float_audio_above_full_scale_is_not_clipped_whether_preloaded_or_read_per_crop(tmp_path):
    loud = tmp_path / "loud.wav"
    soundfile.write(loud, 2.5 * np.sin(np.arange(8000) * 0.05).astype(np.float32), 8000, subtype="FLOAT")
    infos = [speech.audio_io.probe(loud)]
    args = (tf.constant(0), 0.5, tf.constant(0.3), 8000, False)
    from_files, from_memory = (tf.function(table.read, reduce_retracing=False)(*args).numpy()
                               for table in (speech._FileTable(infos), speech._MemoryTable(infos, 8000)))
    assert np.abs(from_files).max() == pytest.approx(2.5, rel=1e-3)
    np.testing.assert_allclose(from_memory, from_files, atol=2.5 / 32767)


def test_preloaded_audio_within_full_scale_reads_back_as_its_int16_over_32767(tmp_path):
    """Bit for bit what the memory table read before files over full scale kept their level: the
    int16 samples / 32767 in a graph (where TF divides by a constant as a multiplication)."""
    quiet = tmp_path / "quiet.wav"
    x = np.random.default_rng(0).uniform(-0.9, 0.9, 4000).astype(np.float32)
    soundfile.write(quiet, x, 8000, subtype="FLOAT")
    table = speech._MemoryTable([speech.audio_io.probe(quiet)], 8000)
    crop = tf.function(table.read)(tf.constant(0), 0.5, tf.constant(0.0), 8000, False).numpy()
    as_before = tf.function(lambda pcm: tf.cast(pcm, tf.float32) / speech.audio_io.PCM16_SCALE)
    np.testing.assert_array_equal(crop, as_before(tf.constant(np.round(x * 32767).astype(np.int16))).numpy())


def test_a_file_read_per_crop_that_fails_at_every_crop_is_counted_once(tmp_path, caplog):
    bad = []
    for name in ("a", "b", "c"):
        samples = np.where(np.arange(8000) % 500, 0.1, np.nan).astype(np.float32)
        bad.append(tmp_path / f"{name}.wav")
        soundfile.write(bad[-1], samples, 8000, subtype="FLOAT")
    speech.reset_read_failures()
    for position in (0.0, 0.3, 0.6, 0.9):
        for path in bad:
            assert speech._read_crop(str(path).encode(), 0.1, 1.0, position, 8000, True).size == 0
    assert speech.read_failures() == 3
    assert sum("skipped an undecodable file" in r.getMessage() for r in caplog.records) == 3
