import shutil

import numpy as np
import pytest

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


def test_config_split_overrides_splits_json(tiny_corpus):
    corpus = speech.load_corpus(_cfg(tiny_corpus, "val_speakers=codec2", "val_noises=water"))
    assert set(corpus.val.speakers) == {"codec2"}


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


def test_validation_set_is_fixed_and_sized(tiny_corpus):
    cfg = _cfg(tiny_corpus)
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
    with pytest.raises(UsageError, match="validation split has no"):
        speech.load_corpus(_cfg(tiny_corpus, "val_speakers=nobody"))


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

