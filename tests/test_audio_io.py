import os
import threading

import numpy as np
import pytest
import soundfile
import soxr

from audio_dl import audio_io
from audio_dl.errors import UsageError
from conftest import sine


@pytest.mark.parametrize("fmt, subtype, ext", [("WAV", "PCM_16", ".wav"), ("FLAC", "PCM_16", ".flac"),
                                               ("OGG", "VORBIS", ".ogg"), ("MP3", "MPEG_LAYER_III", ".mp3")])
def test_formats_rates_and_channels_become_mono_at_model_rate(tmp_path, fmt, subtype, ext):
    stereo = np.stack([sine(440, 1.0, 44100), sine(440, 1.0, 44100)], axis=1)
    path = tmp_path / f"x{ext}"
    soundfile.write(path, stereo, 44100, format=fmt, subtype=subtype)
    audio = audio_io.read_audio(path, 8000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 8000) <= 1200  # MP3 adds encoder padding
    spectrum = np.abs(np.fft.rfft(audio[1000:7000]))
    assert abs(np.argmax(spectrum) * 8000 / 6000 - 440) < 5


def test_read_segment(tmp_path):
    path = tmp_path / "ramp.wav"
    soundfile.write(path, np.linspace(-1, 1, 16000).astype(np.float32), 16000, subtype="FLOAT")
    segment = audio_io.read_audio(path, 16000, start_seconds=0.5, duration_seconds=0.25)
    assert len(segment) == 4000 and segment[0] == pytest.approx(0.0, abs=1e-3)
    for start, duration in ((-1.0, None), (0.0, -1.0), (float("nan"), None)):
        with pytest.raises(ValueError, match="must be >= 0"):
            audio_io.read_audio(path, 16000, start_seconds=start, duration_seconds=duration)


@pytest.mark.parametrize("rate", [11025, 16000, 44100])
@pytest.mark.parametrize("level", [0.0, 0.2, -0.5])  # digital silence, DC offsets
def test_samples_all_equal_stay_so_at_any_rate(tmp_path, rate, level):
    """soxr rings at the edges of a constant; the silence checks of noise would take that for sound."""
    soundfile.write(tmp_path / "dc.wav", np.full(2 * rate, level, np.float32), rate, subtype="FLOAT")
    for start, seconds in ((0.0, None), (0.5, 1.0)):  # the whole file, and a crop
        audio = audio_io.read_audio(tmp_path / "dc.wav", 8000, start, seconds)
        assert len(audio) == (16000 if seconds is None else 8000)
        np.testing.assert_array_equal(audio, np.full(len(audio), level, np.float32))
        assert audio_io.is_silent(audio)  # float32: its mean is not exactly 0.2
    tone = sine(440, 2.0, rate) + level  # a DC offset under sound is resampled as before
    soundfile.write(tmp_path / "tone.wav", tone, rate, subtype="FLOAT")
    np.testing.assert_array_equal(audio_io.read_audio(tmp_path / "tone.wav", 8000),
                                  soxr.resample(tone, rate, 8000, quality="HQ"))


def test_a_pipe_a_device_or_a_link_to_a_pipe_is_a_stream_a_file_or_a_link_to_one_is_not(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "to_fifo").symlink_to(tmp_path / "fifo")
    (tmp_path / "file.wav").write_bytes(b"")
    (tmp_path / "to_file").symlink_to(tmp_path / "file.wav")
    assert [audio_io.is_stream(tmp_path / name) for name in ("fifo", "to_fifo", "file.wav", "to_file")] == \
        [True, True, False, False]
    assert audio_io.is_stream("/dev/null")


def test_find_audio_files(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.wav", "a/b/y.flac", "a/readme.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in audio_io.find_audio_files([tmp_path / "a"])] == ["y.flac", "x.wav"]
    assert len(audio_io.find_audio_files([str(tmp_path / "a" / "**" / "*.flac")])) == 1
    listing = tmp_path / "list.txt"
    listing.write_text("a/x.wav\n# comment\n")
    assert audio_io.find_audio_files([listing]) == [tmp_path / "a" / "x.wav"]
    for one in (tmp_path / "a", str(tmp_path / "a")):  # one path, not a list of them
        assert [p.name for p in audio_io.find_audio_files(one)] == ["y.flac", "x.wav"]
    # hidden files and folders: another run's partial output, macOS resource forks, .git
    (tmp_path / "a" / ".cache").mkdir()
    for name in ("a/.x.wav-partial-1234.wav", "a/._x.wav", "a/.cache/z.wav"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in audio_io.find_audio_files(tmp_path / "a")] == ["y.flac", "x.wav"]


def test_symlinked_folders_are_followed_and_a_link_cycle_ends(tmp_path):
    (tmp_path / "elsewhere" / "june").mkdir(parents=True)
    (tmp_path / "elsewhere" / "june" / "a.wav").write_bytes(b"")
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "june").symlink_to(tmp_path / "elsewhere" / "june")  # a speaker linked in
    (tmp_path / "elsewhere" / "june" / "loop").symlink_to(tmp_path / "corpus")  # and a cycle back
    found = [tmp_path / "corpus" / "june" / "a.wav"]
    assert audio_io.find_audio_files(str(tmp_path / "corpus" / "**" / "*.wav")) == found  # glob: one path a file
    (tmp_path / "corpus" / "june" / "up").symlink_to(tmp_path)  # a link above the corpus is not followed
    (tmp_path / "beside.wav").write_bytes(b"")
    assert audio_io.find_audio_files(tmp_path / "corpus") == found


def test_a_glob_that_matches_only_folders_says_so(tmp_path):
    (tmp_path / "corpus" / "ann").mkdir(parents=True)
    (tmp_path / "corpus" / "ann" / "a.wav").write_bytes(b"")
    with pytest.raises(UsageError, match=r"matches folders, not files: give the folder that holds them"):
        audio_io.find_audio_files(str(tmp_path / "corpus" / "*"))
    with pytest.raises(UsageError, match=r"a glob of files such as .*/\*\*/\*\.kar"):  # MIDI: no .wav
        audio_io.find_files(str(tmp_path / "corpus" / "*"), (".mid", ".kar"), "MIDI")


def test_missing_path_and_empty_folder_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        audio_io.find_audio_files([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no audio files"):
        audio_io.find_audio_files([tmp_path / "empty"])


def test_broken_files_probe_as_none_and_are_counted(broken_files, tmp_path, caplog):
    good = tmp_path / "good.wav"
    soundfile.write(good, sine(300, 0.5, 8000), 8000)
    infos, skipped = audio_io.probe_all([good, *broken_files.values()])
    assert [i.path for i in infos] == [str(good)] and len(skipped) == 3
    assert f"skipped 3 of 4 audio files (unreadable, corrupt or empty), e.g. {skipped[0]}: " in caplog.text
    assert [audio_io.probe_or_reason(broken_files[name]) for name in ("garbage", "zero")] == [
        "Format not recognised.", "no samples"]


def test_a_missing_file_is_named_as_such(tmp_path):
    with pytest.raises(ValueError, match="missing.wav: no such file"):
        audio_io.read_audio(tmp_path / "missing.wav", 8000)


def test_mono_samples_takes_float_lists_and_refuses_pcm_channels_and_nan():
    assert audio_io.mono_samples([0.5, -0.5]).dtype == np.float32
    for bad, message in ((np.zeros(4, np.int16), r"int16 samples; pass floats in \[-1, 1\] \(for int16 PCM: x / 32768\)"),
                         ([0, 1], r"int64 samples; pass floats in \[-1, 1\]$"), (np.zeros((4, 2)), "shape"),
                         ([True, False], "bool samples"), (np.array([np.inf]), "not finite"),
                         (np.array([1e39, 0.0]), "not finite in float32")):
        with pytest.raises(ValueError, match=message):
            audio_io.mono_samples(bad)


def test_a_file_in_an_unknown_format_is_named_as_such(tmp_path):
    fake = tmp_path / "readme.mp3"
    fake.write_text("not audio\n")
    with pytest.raises(ValueError, match="readme.mp3: format not recognised"):
        audio_io.read_audio(fake, 8000)


def test_parallel_decoding_leaves_stderr_where_it_was(tmp_path):
    """tf.data opens files from several threads; overlapping stderr redirects used to leave the
    process's stderr on /dev/null for good (errors then vanished without a line)."""
    path = tmp_path / "a.wav"
    soundfile.write(path, sine(440, 0.1, 8000), 8000)
    before = os.fstat(2)

    def open_many():
        for _ in range(200):
            audio_io.open_audio(path).close()

    threads = [threading.Thread(target=open_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)


def test_a_broken_link_in_a_folder_is_left_out_with_a_warning(tmp_path, caplog):
    soundfile.write(tmp_path / "good.wav", sine(300, 0.5, 8000), 8000)
    (tmp_path / "gone.wav").symlink_to(tmp_path / "moved" / "gone.wav")
    (tmp_path / "gone.txt").symlink_to(tmp_path / "moved" / "gone.txt")  # not audio: nothing to say
    assert audio_io.find_audio_files(tmp_path) == [tmp_path / "good.wav"]
    assert f"left out 1 broken link(s) in {tmp_path}, e.g. gone.wav -> {tmp_path / 'moved' / 'gone.wav'}" in caplog.text


def test_printable_names_are_utf8_text_one_per_name():
    latin1, backslashed = os.fsdecode(b"caf\xe9.wav"), "caf\\xe9.wav"  # two names a file system can hold
    assert audio_io.printable_name(latin1) == "caf\\xe9.wav"
    assert audio_io.printable_name(backslashed) == "caf\\\\xe9.wav"
    assert not audio_io.is_utf8_name(latin1) and audio_io.is_utf8_name(backslashed)
