"""File denoising: chunked == whole-file, formats/rates/channels, strength, CLI errors and skips."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from audio_dl import cli, denoise, inference
from audio_dl.config import DenoiserConfig
from audio_dl.errors import UsageError
from conftest import sine


def _speechlike(seconds, rate=8000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
            + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("export, model_file, batch_chunks", [
    ("tiny_export", "", 1), ("tiny_export", "", 3), ("tiny_export", "denoiser.tflite", 1),
    ("tiny_dilated_export", "", 3), ("tiny_dilated_export", "denoiser.tflite", 1),
    ("tiny_dilated_export", "denoiser_streaming.tflite", 3)])
def test_chunked_output_equals_whole_file_output(request, export, model_file, batch_chunks):
    folder = request.getfixturevalue(export)
    denoiser = inference.load_denoiser(folder / model_file if model_file else folder)
    x = _speechlike(7.3)
    chunked = inference.denoise_array(denoiser, x, chunk_seconds=1.0, batch_chunks=batch_chunks)
    whole = inference.load_denoiser(folder).run(x[np.newaxis])[0]
    assert chunked.shape == x.shape
    np.testing.assert_allclose(chunked, whole, atol=1e-5)


@pytest.mark.parametrize("model_file", ["", "denoiser.tflite"])
def test_chunked_output_of_a_gru_lookahead_model_equals_whole_file_output(tiny_gru_lookahead_export, model_file):
    """The GRU state is rebuilt from recurrent_warmup_seconds of audio before each chunk, and
    each chunk reads its lookahead frames past its end."""
    denoiser = inference.load_denoiser(tiny_gru_lookahead_export / model_file if model_file else tiny_gru_lookahead_export)
    x = _speechlike(9.1)
    chunked = inference.denoise_array(denoiser, x, chunk_seconds=1.0)
    whole = inference.load_denoiser(tiny_gru_lookahead_export).run(x[np.newaxis])[0]
    np.testing.assert_allclose(chunked, whole, atol=1e-4)


def test_base_path_loads_the_highest_version(tiny_export):
    assert inference.load_denoiser(tiny_export.parent).path == tiny_export


def test_saved_model_pb_stands_for_its_folder(tiny_export):
    assert inference.load_denoiser(tiny_export / "saved_model.pb").path == tiny_export


@pytest.mark.parametrize("fmt, subtype, ext, out_subtype", [
    ("WAV", "PCM_16", ".wav", "PCM_16"), ("MP3", "MPEG_LAYER_III", ".mp3", "PCM_16"),
    ("FLAC", "PCM_24", ".flac", "PCM_24"), ("WAV", "FLOAT", ".wav", "FLOAT")])
def test_any_rate_and_channels_in_wav_at_the_input_rate_out(tiny_export, tmp_path, fmt, subtype, ext,
                                                              out_subtype):
    stereo = np.stack([sine(300, 2.0, 44100), sine(500, 2.0, 44100, 0.2)], axis=1)
    source = tmp_path / f"in{ext}"
    soundfile.write(source, stereo, 44100, format=fmt, subtype=subtype)
    target = tmp_path / "out" / "in.wav"
    inference.denoise_file(inference.load_denoiser(tiny_export), source, target)
    out, rate = soundfile.read(target)
    assert rate == 44100 and out.shape[1] == 2
    assert len(out) == soundfile.info(source).frames
    assert soundfile.info(target).subtype == out_subtype  # the input's resolution, as WAV


def test_strength_zero_db_keeps_the_input(tiny_export, tmp_path):
    x = sine(300, 2.0, 16000, 0.4) + sine(1200, 2.0, 16000, 0.2)  # below the model's 4 kHz band
    soundfile.write(tmp_path / "in.wav", x, 16000, subtype="FLOAT")
    inference.denoise_file(inference.load_denoiser(tiny_export), tmp_path / "in.wav", tmp_path / "out.wav",
                           strength_db=0.0)
    out, _ = soundfile.read(tmp_path / "out.wav", dtype="float32")
    np.testing.assert_allclose(out[2000:-2000], x[2000:-2000], atol=2e-3)  # resampled there and back


def _fake_denoiser(run) -> inference.Denoiser:
    """A Denoiser at 8 kHz whose model is `run` ([1, n] -> [1, n])."""
    return inference.Denoiser(DenoiserConfig(), run, None, Path("fake"))


@pytest.mark.parametrize("strength_db, samples", [(0.0, 88200), (6.0, 88200), (6.0, 12345)])
def test_the_strength_limit_keeps_the_band_above_the_model_rate(tmp_path, strength_db, samples):
    """The noisy side of out = noisy*lim + denoised*(1-lim) is the input itself, at its own rate:
    a model that removes everything still leaves lim of the 6 kHz tone of a 44.1 kHz file, up to
    its last sample (12,345 samples come back from 8 kHz a few short)."""
    x = (sine(1000, 2.0, 44100, 0.3) + sine(6000, 2.0, 44100, 0.3))[:samples]
    soundfile.write(tmp_path / "in.wav", x, 44100, subtype="FLOAT")
    inference.denoise_file(_fake_denoiser(np.zeros_like), tmp_path / "in.wav", tmp_path / "out.wav",
                           strength_db=strength_db)
    out, _ = soundfile.read(tmp_path / "out.wav", dtype="float32")
    np.testing.assert_allclose(out, inference.strength_to_limit(strength_db) * x, atol=1e-6)


def test_with_no_limit_no_input_is_held_back_for_the_mix():
    """The default (no --strength) outputs the denoised side alone: memory stays one chunk's worth
    at the model rate, not the input's rate."""
    stream = inference._ChannelStream(_fake_denoiser(lambda x: x), 48000, 0.0, chunk_seconds=30.0)
    stream.push(np.zeros(96000, np.float32))
    assert stream.pending_noisy.size == 0


def test_the_strength_mix_lines_the_input_up_with_the_denoised_side(tmp_path):
    """With a model that returns its input, the denoised side is the input below 4 kHz: out is the
    1 kHz tone whole and lim of the 6 kHz one, sample for sample (a shift would leave a residue)."""
    low, high = sine(1000, 2.0, 44100, 0.3), sine(6000, 2.0, 44100, 0.3)
    soundfile.write(tmp_path / "in.wav", low + high, 44100, subtype="FLOAT")
    inference.denoise_file(_fake_denoiser(lambda x: x), tmp_path / "in.wav", tmp_path / "out.wav", strength_db=6.0)
    out, _ = soundfile.read(tmp_path / "out.wav", dtype="float32")
    np.testing.assert_allclose(out[4000:-4000], (low + inference.strength_to_limit(6.0) * high)[4000:-4000], atol=2e-3)


def test_output_resolution_follows_the_source():
    expected = {"FLOAT": "FLOAT", "DOUBLE": "FLOAT", "PCM_32": "PCM_24", "ALAC_24": "PCM_24", "ALAC_20": "PCM_24",
                "PCM_16": "PCM_16", "PCM_U8": "PCM_16", "ULAW": "PCM_16", "VORBIS": "PCM_16", "MPEG_LAYER_III": "PCM_16"}
    assert {source: inference.wav_subtype(source) for source in expected} == expected


def test_float_input_over_full_scale_is_not_clipped(tiny_export, tmp_path):
    x = 4.0 * (sine(300, 2.0, 16000, 0.4) + sine(1200, 2.0, 16000, 0.2))  # peaks 2.4
    soundfile.write(tmp_path / "in.wav", x, 16000, subtype="FLOAT")
    inference.denoise_file(inference.load_denoiser(tiny_export), tmp_path / "in.wav", tmp_path / "out.wav",
                           strength_db=0.0)
    out, _ = soundfile.read(tmp_path / "out.wav", dtype="float32")
    np.testing.assert_allclose(out[2000:-2000], x[2000:-2000], atol=1e-2)


def test_a_file_that_is_not_a_denoiser_is_a_usage_error(tmp_path):
    bogus = tmp_path / "model.tflite"
    bogus.write_bytes(b"not a flatbuffer")
    with pytest.raises(UsageError, match="not a denoiser"):
        inference.load_denoiser(bogus)
    with pytest.raises(UsageError, match="no model in"):
        inference.load_denoiser(tmp_path)


def _damaged_copy(folder: Path, model_file: str, operator: str, fill: float, target: Path) -> Path:
    """`model_file` of an export, copied to `target` (with its config) after the constant second
    input of its first `operator` (GATHER: frame indices; MUL: the analysis window) is set to `fill`:
    a flatbuffer that loads and has the right signature but fails, or computes NaN, when run."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(folder / model_file))
    graph, code = model.subgraphs[0], getattr(schema.BuiltinOperator, operator)
    op = next(op for op in graph.operators if model.operatorCodes[op.opcodeIndex].builtinCode == code
              and model.buffers[graph.tensors[op.inputs[1]].buffer].data is not None)
    buffer = model.buffers[graph.tensors[op.inputs[1]].buffer]
    dtype = np.int32 if operator == "GATHER" else np.float32
    buffer.data = np.full(len(buffer.data) // 4, fill, dtype).view(np.uint8)
    target.mkdir()
    flatbuffer_utils.write_model(model, str(target / model_file))
    (target / "config.json").write_bytes((folder / "config.json").read_bytes())
    return target / model_file


@pytest.mark.parametrize("model_file, operator, fill, message", [
    ("denoiser.tflite", "GATHER", 10**6, "fails on a test signal: .*gather"),
    ("denoiser.tflite", "MUL", np.nan, "gives samples that are not finite"),
    ("denoiser_streaming.tflite", "MUL", np.nan, "gives samples that are not finite")])
def test_a_damaged_model_that_loads_is_refused_before_any_file(tiny_export, tmp_path, model_file, operator, fill,
                                                               message):
    damaged = _damaged_copy(tiny_export, model_file, operator, fill, tmp_path / "damaged")
    with pytest.raises(UsageError, match=f"{damaged} is not a working denoiser: it {message}"):
        inference.load_denoiser(damaged)
    soundfile.write(tmp_path / "in.wav", _speechlike(1.0), 8000)
    result = subprocess.run([sys.executable, "-m", "audio_dl.denoise", str(tmp_path / "in.wav"), "-o",
                             str(tmp_path / "out"), "--model", str(damaged)], capture_output=True, text=True)
    assert result.returncode == 2 and not (tmp_path / "out").exists()
    assert result.stderr.count("\n") == 1 and "is not a working denoiser" in result.stderr


def test_a_model_in_a_folder_whose_name_is_not_utf8_loads_or_says_why(tiny_export, tmp_path):
    import shutil

    copy = tmp_path / os.fsdecode(b"mod\xe8les") / "1"  # Latin-1
    shutil.copytree(tiny_export, copy)
    for model_file in ("denoiser.tflite", "denoiser_streaming.tflite"):  # LiteRT is given the bytes
        assert inference.load_denoiser(copy / model_file).run(np.zeros((1, 12000), np.float32)).shape == (1, 12000)
    with pytest.raises(UsageError, match=re.escape(f"{tmp_path}/mod\\xe8les/1: TensorFlow loads a SavedModel only "
                                                   "from a UTF-8 path; move it, or give one of its .tflite files")):
        inference.load_denoiser(copy.parent)


@pytest.mark.parametrize("waveform, message", [
    (np.zeros(800, np.int16), "holds int16 samples; pass floats in \\[-1, 1\\] \\(for int16 PCM: x / 32768\\)"),
    (np.zeros((800, 2), np.float32), r"has shape \(800, 2\); pass one channel, float \[n\] \(denoise_file takes"),
    (np.zeros((1, 800), np.float32), r"has shape \(1, 800\)"),
    (np.array([0.1, np.nan] * 400, np.float32), "not finite"),
])
def test_denoise_array_refuses_what_it_would_garble(tiny_export, waveform, message):
    with pytest.raises(ValueError, match=message):
        inference.denoise_array(inference.load_denoiser(tiny_export), waveform)


def test_denoise_array_takes_lists_and_float64_and_returns_float32_of_the_same_length(tiny_export):
    denoiser = inference.load_denoiser(tiny_export)
    for waveform in ([0.0] * 300, np.zeros(1, np.float64), np.zeros(0, np.float32)):
        out = inference.denoise_array(denoiser, waveform)
        assert out.dtype == np.float32 and out.shape == (len(waveform),)


def test_denoiser_run_says_which_shape_it_takes(tiny_export):
    with pytest.raises(ValueError, match=r"takes \[batch, n\] samples, not shape \(800,\)"):
        inference.load_denoiser(tiny_export).run(np.zeros(800, np.float32))
    tflite = inference.load_denoiser(tiny_export / "denoiser.tflite")
    with pytest.raises(ValueError, match=rf"takes \[1, {tflite.fixed_length}\] samples, not shape \(1, 100\)"):
        tflite.run(np.zeros((1, 100), np.float32))


@pytest.mark.parametrize("strength", [-6.0, float("nan")])
def test_strength_must_be_a_limit_of_zero_db_or_more(strength):
    with pytest.raises(UsageError, match="must be >= 0 dB"):
        inference.strength_to_limit(strength)


def test_an_infinite_strength_is_no_limit_as_the_formula_says():
    assert inference.strength_to_limit(float("inf")) == inference.strength_to_limit(None) == 0.0
    assert inference.strength_to_limit(0.0) == 1.0 and inference.strength_to_limit(20.0) == pytest.approx(0.1)


@pytest.mark.parametrize("settings", [dict(chunk_seconds=float("nan")), dict(block_seconds=float("inf")),
                                      dict(block_seconds=0.0)])
def test_seconds_must_be_finite_and_positive(tiny_export, tmp_path, settings):
    soundfile.write(tmp_path / "in.wav", _speechlike(0.5), 8000)
    with pytest.raises(UsageError, match=f"{next(iter(settings))} must be a number of seconds > 0"):
        inference.denoise_file(inference.load_denoiser(tiny_export), tmp_path / "in.wav", tmp_path / "out.wav",
                               **settings)
    assert not (tmp_path / "out.wav").exists()


def test_denoise_file_takes_string_paths_and_names_a_missing_file(tiny_export, tmp_path):
    denoiser = inference.load_denoiser(tiny_export)
    soundfile.write(tmp_path / "in.wav", _speechlike(0.5), 8000)
    assert inference.denoise_file(denoiser, str(tmp_path / "in.wav"), str(tmp_path / "out.wav")) == 0.5
    assert soundfile.info(tmp_path / "out.wav").frames == 4000
    with pytest.raises(FileNotFoundError, match="no such file: .*missing.wav"):
        inference.denoise_file(denoiser, tmp_path / "missing.wav", tmp_path / "out2.wav")
    assert not (tmp_path / "out2.wav").exists()


def _cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "audio_dl.denoise", *args], capture_output=True, text=True,
                          errors="replace", timeout=300, cwd=cwd, env=env)  # a file name need not be UTF-8


def test_cli_denoises_a_folder_skipping_bad_files_and_plots(tiny_export, tmp_path, broken_files):
    folder = tmp_path / "in"
    folder.mkdir()
    soundfile.write(folder / "a.flac", _speechlike(1.5), 8000)
    (folder / "sub").mkdir()
    soundfile.write(folder / "sub" / "b.wav", _speechlike(1.0, 16000), 16000)
    (folder / "garbage.wav").write_bytes(broken_files["garbage"].read_bytes())
    result = _cli(str(folder), "-o", str(tmp_path / "out"), "--model", str(tiny_export), "--plot")
    assert result.returncode == 0, result.stderr[-1500:]
    assert "skipped 1 unreadable" in result.stdout
    assert (tmp_path / "out" / "a.wav").is_file() and (tmp_path / "out" / "sub" / "b.wav").is_file()
    assert (tmp_path / "out" / "a.png").stat().st_size > 10_000


def test_plot_title_says_when_the_figure_shows_only_the_start():
    assert denoise.plot_title("short.wav", 1.0) == "short.wav"
    assert (denoise.plot_title("long.flac", denoise.PLOT_SECONDS + 12)
            == f"long.flac (first {denoise.PLOT_SECONDS:g} s of {denoise.PLOT_SECONDS + 12:.0f} s)")
    assert denoise.plot_title("cut.wav", 1.96, shown=1.1) == "cut.wav (first 1.1 s of 1.96 s)"  # a shorter --clean
    assert denoise.plot_title("just_over.wav", 30.3) == "just_over.wav (first 30.0 s of 30.3 s)"  # never "30 s of 30 s"


@pytest.mark.parametrize("make_args, message", [
    (lambda tmp, model, broken: [str(broken["garbage"]), "--model", str(model)], "cannot decode"),
    (lambda tmp, model, broken: [str(_not_mp3(tmp)), "--model", str(model)], "format not recognised"),
    (lambda tmp, model, broken: [str(tmp / "missing.wav"), "--model", str(model)], "does not exist"),
    (lambda tmp, model, broken: [str(tmp), "--model", str(model)], "no audio files"),
    (lambda tmp, model, broken: [str(_a_wav(tmp)), "--model", str(broken["garbage"])], "not a denoiser"),
    (lambda tmp, model, broken: [str(broken["garbage"]), "--model", str(model), "--strength", "-3"], "strength"),
    (lambda tmp, model, broken: [str(broken["garbage"]), "--model", str(model), "--strength", "nan"], "strength"),
    (lambda tmp, model, broken: [str(broken["garbage"]), "--model", str(model), "--chunk-seconds", "nan"],
     "chunk-seconds"),
    (lambda tmp, model, broken: [*map(str, _same_stem(tmp)), "--model", str(model)], "both be written"),
    (lambda tmp, model, broken: [str(_a_wav(tmp)), "-o", str(tmp / "out.flac"), "--model", str(model)],
     "the output is WAV"),
    (lambda tmp, model, broken: [str(_a_wav(tmp)), "--clean", str(_a_wav(tmp)), "--model", str(model)],
     "use it with --plot"),
    (lambda tmp, model, broken: [str(_a_wav(tmp)), "-o", str(tmp / ("x" * 300 + ".wav")), "--model", str(model)],
     "the name " + "x" * 300 + ".wav is too long for the file system; give a shorter name"),
    (lambda tmp, model, broken: [str(_a_name_too_long_as_wav(tmp)), "-o", str(tmp / "out"), "--model", str(model)],
     "is too long for the file system"),
    (lambda tmp, model, broken: [str(tmp.parent / "nest"), "--plot", "--clean", str(_nested_takes(tmp)), "-o",
                                 str(tmp / "out"), "--model", str(model)], "clean reference not found"),
    (lambda tmp, model, broken: [str(_a_wav(tmp)), "--plot", "--clean", str(broken["garbage"]), "--model",
                                 str(model)], "--clean reference: cannot decode"),
    (lambda tmp, model, broken: [str(_a_wav(tmp)), "-o", str(tmp.parent), "--model", str(model)],
     "would overwrite an input"),
    (lambda tmp, model, broken: [str(_noisy_and_clean(tmp) / "noisy"), "-o", str(tmp.parent / "clean"), "--plot",
                                 "--clean", str(tmp.parent / "clean"), "--model", str(model)],
     "would overwrite an input or a --clean reference"),
    (lambda tmp, model, broken: [str(_noisy_and_clean(tmp) / "noisy" / "a.wav"), "-o",
                                 str(tmp.parent / "clean" / "a.wav"), "--plot", "--clean",
                                 str(tmp.parent / "clean" / "a.wav"), "--model", str(model)],
     "would overwrite an input or a --clean reference"),
    (lambda tmp, model, broken: [str(tmp.parent / "nest"), "--plot", "--clean",
                                 str(_nested_takes(tmp) / "x" / "take.wav"), "-o", str(tmp / "out"),
                                 "--model", str(model)], "the reference of one input but there are 2"),
])
def test_cli_bad_input_is_one_line_exit_2(tiny_export, tmp_path, broken_files, make_args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _cli(*make_args(empty, tiny_export, broken_files), cwd=empty)  # the default -o: empty/denoised
    assert result.returncode == 2, result.stderr[-1500:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("python -m audio_dl.denoise: error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.stderr
    assert "Note:" not in result.stderr  # libsndfile's mpg123 chatter is silenced
    assert not (empty / "out").exists() and not (empty / "denoised").exists()  # refused before any work


def test_cli_takes_any_name_the_file_system_holds(tiny_export, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    names = [os.fsdecode(b"caf\xe9.wav"),  # Latin-1, not UTF-8: from an old archive
             "録音" * 40 + ".flac",  # 245 bytes: a legal name, too long for a staging name built on all of it
             "Money $$ talks.wav"]  # not math text in the plot's title
    for name in names:
        soundfile.write(os.fsencode(folder / name), _speechlike(0.5), 8000)
    result = _cli(str(folder), "-o", str(tmp_path / "out"), "--plot", "--model", str(tiny_export),
                  env=dict(os.environ, PYTHONIOENCODING="utf-8:strict"))  # stdout as a UTF-8 locale sets it
    assert result.returncode == 0, result.stderr[-2000:]
    assert "warning" not in result.stderr.lower() and "denoised 3 file(s)" in result.stdout
    assert "caf\\udce9.wav ->" in result.stdout  # the name's byte, escaped
    for name in names:
        assert soundfile.info(os.fsencode(tmp_path / "out" / Path(name).with_suffix(".wav"))).frames == 4000
        assert (tmp_path / "out" / Path(name).with_suffix(".png")).stat().st_size > 1000


def _a_wav(folder: Path) -> Path:
    """A recording beside `folder`: `-o folder.parent` would write its output over it."""
    take = folder.parent / "take.wav"
    soundfile.write(take, sine(300, 0.5, 8000), 8000)
    return take


def _a_name_too_long_as_wav(folder: Path) -> Path:
    """A folder beside `folder` with a.wav and a 255-byte x...x.au, whose .wav would be 256 bytes."""
    takes = folder.parent / "takes"
    takes.mkdir()
    for name in ("a.wav", "x" * 252 + ".au"):
        soundfile.write(takes / name, sine(300, 0.5, 8000), 8000)
    return takes


def _noisy_and_clean(folder: Path) -> Path:
    """noisy/a.wav and its reference clean/a.wav beside `folder`; returns their parent."""
    for kind in ("noisy", "clean"):
        (folder.parent / kind).mkdir()
        soundfile.write(folder.parent / kind / "a.wav", sine(300, 0.5, 8000), 8000)
    return folder.parent


def _same_stem(folder: Path) -> list[Path]:
    """take.wav and take.flac in two folders beside `folder`: both would become take.wav."""
    takes = [folder.parent / "x" / "take.wav", folder.parent / "y" / "take.flac"]
    for take in takes:
        take.parent.mkdir()
        soundfile.write(take, sine(300, 0.5, 8000), 8000)
    return takes


def _nested_takes(folder: Path) -> Path:
    """nest/{x,y}/take.wav beside `folder`, and a clean folder that has x/take.wav only: the clean
    reference is looked up by the path inside the input folder, and checked before any work."""
    for sub in ("x", "y"):
        (folder.parent / "nest" / sub).mkdir(parents=True)
        soundfile.write(folder.parent / "nest" / sub / "take.wav", sine(300, 0.5, 8000), 8000)
    (folder.parent / "clean" / "x").mkdir(parents=True)
    soundfile.write(folder.parent / "clean" / "x" / "take.wav", sine(300, 0.5, 8000), 8000)
    return folder.parent / "clean"


def _not_mp3(folder: Path) -> Path:
    """Text named .mp3: libsndfile hands it to mpg123, which prints 'Note: ...' lines to stderr."""
    fake = folder.parent / "readme.mp3"
    fake.write_text("not audio\n")
    return fake


def test_a_tflite_of_any_input_length_denoises_whole_chunks(tiny_export, tmp_path):
    """A denoiser TFLite whose waveform input is [1, -1] (not this package's exports) takes each
    chunk at its own length, one row at a time."""
    import keras

    from audio_dl import export

    waveform = keras.Input((None,), batch_size=1, name="waveform")
    halving = keras.Model(waveform, {"denoised": keras.layers.Rescaling(0.5)(waveform)})
    (tmp_path / "denoiser.tflite").write_bytes(export.convert_tflite(halving))
    (tmp_path / "config.json").write_bytes((tiny_export / "config.json").read_bytes())
    denoiser = inference.load_denoiser(tmp_path / "denoiser.tflite")
    x = _speechlike(3.0)
    assert denoiser.fixed_length is None
    np.testing.assert_allclose(inference.denoise_array(denoiser, x, chunk_seconds=1.0), 0.5 * x, atol=1e-6)


def test_a_tflite_without_its_config_is_a_usage_error(tiny_export, tmp_path):
    lonely = tmp_path / "denoiser.tflite"
    lonely.write_bytes((tiny_export / "denoiser.tflite").read_bytes())
    with pytest.raises(UsageError, match="config.json"):
        inference.load_denoiser(lonely)


@pytest.mark.parametrize("rate, frames", [(16000, 1001), (22050, 1), (96000, 28807)])
def test_the_output_has_as_many_samples_as_the_input(tiny_export, tmp_path, rate, frames):
    soundfile.write(tmp_path / "in.wav", _speechlike(frames / rate + 0.01, rate)[:frames], rate)
    inference.denoise_file(inference.load_denoiser(tiny_export), tmp_path / "in.wav", tmp_path / "out.wav")
    assert soundfile.info(tmp_path / "out.wav").frames == frames


@pytest.mark.parametrize("block_seconds", [1.0, 10.0])
def test_a_cut_off_mp3_gives_the_audio_it_holds_and_no_more(tmp_path, caplog, block_seconds):
    """An MP3 cut short (a partial download) announces more frames than it decodes: the output is
    the decoded audio, sample for sample, with a warning, not a tail of stale buffer memory."""
    soundfile.write(tmp_path / "full.mp3", _speechlike(4.0), 8000, format="MP3")
    whole = (tmp_path / "full.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(whole[:len(whole) // 3])
    decoded, _ = soundfile.read(tmp_path / "cut.mp3", dtype="float32")
    assert len(decoded) < soundfile.info(tmp_path / "cut.mp3").frames
    seconds = inference.denoise_file(_fake_denoiser(lambda x: x), tmp_path / "cut.mp3", tmp_path / "out.wav",
                                     block_seconds=block_seconds)
    out, _ = soundfile.read(tmp_path / "out.wav", dtype="float32")
    np.testing.assert_allclose(out, decoded, atol=1e-4)  # the 16-bit output's rounding
    assert seconds == len(decoded) / 8000
    assert f"decoded {len(decoded)} of the" in caplog.text and "cut short?" in caplog.text
    caplog.clear()
    inference.denoise_file(_fake_denoiser(lambda x: x), tmp_path / "full.mp3", tmp_path / "whole.wav",
                           block_seconds=block_seconds)
    assert "cut short?" not in caplog.text  # an intact file decodes what its header announces


def test_a_file_whose_announced_frames_do_not_decode_is_refused_without_an_output(tmp_path, monkeypatch, caplog):
    """A header that announces frames none of which decode: refused like an empty file, in one
    line (no "cut short?" warning above it), not an empty WAV."""
    soundfile.write(tmp_path / "in.wav", _speechlike(0.5), 8000)
    real_open = inference.open_source

    def nothing_decodes(source):
        src = real_open(source)
        src.read = lambda *args, **kwargs: np.zeros((0, src.channels), np.float32)
        return src

    monkeypatch.setattr(inference, "open_source", nothing_decodes)
    with pytest.raises(ValueError, match="holds no audio samples .*4000 frames; none decode"):
        inference.denoise_file(_fake_denoiser(lambda x: x), tmp_path / "in.wav", tmp_path / "out.wav")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"] and not caplog.records


def test_a_nan_sample_is_refused_not_spread_through_the_output(tiny_export, tmp_path):
    x = _speechlike(2.0)
    x[5000] = np.nan
    soundfile.write(tmp_path / "in.wav", x, 8000, subtype="FLOAT")
    with pytest.raises(ValueError, match="not finite"):
        inference.denoise_file(inference.load_denoiser(tiny_export), tmp_path / "in.wav", tmp_path / "out.wav")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]  # no output, no staging file


def test_a_failed_write_is_an_os_error_about_the_output_not_an_undecodable_input(tiny_export, tmp_path, monkeypatch):
    soundfile.write(tmp_path / "in.wav", _speechlike(0.5), 8000)
    opened = soundfile.SoundFile

    def full_disk(path, mode="r", *args, **kwargs):
        if mode == "w":
            raise soundfile.LibsndfileError(2, "Error opening: ")  # libsndfile's "System error."
        return opened(path, mode, *args, **kwargs)

    monkeypatch.setattr(inference.soundfile, "SoundFile", full_disk)
    with pytest.raises(OSError, match="cannot write it") as raised:
        inference.denoise_file(inference.load_denoiser(tiny_export), tmp_path / "in.wav", tmp_path / "out.wav")
    assert not isinstance(raised.value, ValueError) and raised.value.filename == str(tmp_path / "out.wav")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_cli_reruns_on_a_folder_that_holds_its_own_output(tiny_export, tmp_path):
    soundfile.write(tmp_path / "take.wav", _speechlike(0.5), 8000)
    for _ in range(2):  # the second run must not take denoised/take.wav for an input
        result = _cli(str(tmp_path), "-o", str(tmp_path / "denoised"), "--model", str(tiny_export))
        assert result.returncode == 0 and "denoised 1 file(s)" in result.stdout, result.stderr[-1500:]


def test_cli_skips_a_file_with_nan_in_a_folder_and_fails_when_nothing_is_left(tiny_export, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    x = _speechlike(1.0)
    soundfile.write(folder / "good.wav", x, 8000)
    x[100] = np.nan
    soundfile.write(folder / "nan.wav", x, 8000, subtype="FLOAT")
    result = _cli(str(folder), "-o", str(tmp_path / "out"), "--model", str(tiny_export))
    assert result.returncode == 0 and "denoised 1 file(s)" in result.stdout and "skipped 1 unreadable" in result.stdout
    (folder / "good.wav").unlink()
    result = _cli(str(folder), "-o", str(tmp_path / "out2"), "--model", str(tiny_export))
    errors = [line for line in result.stderr.splitlines() if line.startswith("python -m audio_dl.denoise: error:")]
    assert result.returncode == 2 and len(errors) == 1 and "no file could be denoised" in errors[0]


def test_clipping_a_pcm_output_is_counted_in_a_warning(tmp_path, caplog):
    square = np.sign(np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)  # full scale
    louder = _fake_denoiser(lambda x: 2.0 * x)
    soundfile.write(tmp_path / "hot.wav", 0.999 * square, 16000, subtype="PCM_16")
    inference.denoise_file(louder, tmp_path / "hot.wav", tmp_path / "out.wav")
    assert any("over full scale were clipped" in r.getMessage() for r in caplog.records)
    caplog.clear()
    soundfile.write(tmp_path / "hot.wav", 0.999 * square, 16000, subtype="FLOAT")  # float output keeps them
    inference.denoise_file(louder, tmp_path / "hot.wav", tmp_path / "out.wav")
    assert not any("clipped" in r.getMessage() for r in caplog.records)


def test_jobs_count_a_file_once_and_find_clean_references_by_their_path_in_the_folder(tmp_path):
    clean = _nested_takes(tmp_path / "unused")  # tmp/nest/{x,y}/take.wav, tmp/clean/x/take.wav
    (clean / "y").mkdir()
    soundfile.write(clean / "y" / "take.wav", sine(300, 0.5, 8000), 8000)
    take = tmp_path / "nest" / "x" / "take.wav"
    jobs = denoise._jobs([str(tmp_path / "nest"), str(take)], tmp_path / "out", clean)  # x/take.wav twice
    assert [(j.source, j.target, j.clean) for j in jobs] == [
        (take, tmp_path / "out" / "x" / "take.wav", clean / "x" / "take.wav"),
        (tmp_path / "nest" / "y" / "take.wav", tmp_path / "out" / "y" / "take.wav", clean / "y" / "take.wav")]


def test_an_input_folder_inside_the_output_folder_is_still_read(tmp_path):
    (tmp_path / "data" / "noisy").mkdir(parents=True)
    soundfile.write(tmp_path / "data" / "noisy" / "take.wav", sine(300, 0.5, 8000), 8000)
    jobs = denoise._jobs([str(tmp_path / "data" / "noisy")], tmp_path / "data", None)
    assert [j.target for j in jobs] == [tmp_path / "data" / "take.wav"]


def test_the_default_model_is_the_shipped_one_from_any_folder(tmp_path):
    soundfile.write(tmp_path / "recording.wav", _speechlike(1.0), 8000)
    result = _cli("recording.wav", "-o", "denoised.wav", cwd=tmp_path)  # not the repository: no saved_models/ here
    assert result.returncode == 0, result.stderr[-1500:]
    assert soundfile.info(tmp_path / "denoised.wav").frames == 8000


def test_a_clean_reference_of_another_length_is_named_and_the_title_says_what_is_shown(tiny_export, tmp_path,
                                                                                      monkeypatch, caplog):
    from audio_dl import cli, plots

    soundfile.write(tmp_path / "noisy.wav", _speechlike(2.0), 8000)
    soundfile.write(tmp_path / "clean.wav", _speechlike(1.0), 8000)
    titles = []
    monkeypatch.setattr(plots, "waveform_and_spectrogram", lambda *args, title: titles.append(title))
    assert cli.run_main(denoise.main, [str(tmp_path / "noisy.wav"), "-o", str(tmp_path / "out.wav"), "--plot",
                                       "--clean", str(tmp_path / "clean.wav"), "--model", str(tiny_export)]) == 0
    assert "the clean reference" in caplog.text and "1.00 s long, the input 2.00 s" in caplog.text
    assert titles == ["noisy.wav (first 1 s of 2 s)"]


def test_a_clean_reference_with_nan_samples_leaves_its_panel_out_with_a_warning(tiny_export, tmp_path,
                                                                                 monkeypatch, caplog):
    from audio_dl import cli, plots

    soundfile.write(tmp_path / "noisy.wav", _speechlike(1.0), 8000)
    clean = _speechlike(1.0)
    clean[100] = np.nan
    soundfile.write(tmp_path / "clean.wav", clean, 8000, subtype="FLOAT")
    panels = []
    monkeypatch.setattr(plots, "waveform_and_spectrogram", lambda signals, *args, title: panels.append(list(signals)))
    assert cli.run_main(denoise.main, [str(tmp_path / "noisy.wav"), "-o", str(tmp_path / "out.wav"), "--plot",
                                       "--clean", str(tmp_path / "clean.wav"), "--model", str(tiny_export)]) == 0
    assert panels == [["noisy", "denoised"]] and "clean.wav" in caplog.text and "not finite" in caplog.text


def test_an_empty_file_is_refused_alone_and_skipped_in_a_folder_without_leaving_its_output_folder(
        tiny_export, tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    soundfile.write(folder / "good.wav", _speechlike(0.5), 8000)
    soundfile.write(folder / "sub" / "empty.wav", np.zeros(0, np.float32), 8000)
    result = _cli(str(folder / "sub" / "empty.wav"), "-o", str(tmp_path / "alone"), "--model", str(tiny_export))
    errors = [line for line in result.stderr.splitlines() if line.startswith("python -m audio_dl.denoise: error:")]
    assert result.returncode == 2 and len(errors) == 1 and "holds no audio samples" in errors[0], result.stderr
    result = _cli(str(folder), "-o", str(tmp_path / "out"), "--model", str(tiny_export))
    assert result.returncode == 0 and "denoised 1 file(s)" in result.stdout and "skipped 1" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]  # no empty "alone" folder
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.wav"]  # nor an empty "sub"


def test_an_output_that_is_a_file_is_refused_before_the_model_loads(tmp_path):
    soundfile.write(tmp_path / "take.wav", _speechlike(0.5), 8000)
    (tmp_path / "notes.txt").write_text("not a folder")
    result = _cli(str(tmp_path / "take.wav"), "-o", str(tmp_path / "notes.txt"), "--model", str(tmp_path / "none"))
    assert result.returncode == 2 and "notes.txt is a file, not a folder" in result.stderr, result.stderr


def test_an_interrupted_run_leaves_no_output_folder_it_made(tmp_path, monkeypatch):
    soundfile.write(tmp_path / "take.wav", _speechlike(0.5), 8000)

    def interrupted(denoiser, source, target, *args, **kwargs):
        Path(target).parent.mkdir(parents=True, exist_ok=True)  # what the staged output does first
        raise KeyboardInterrupt

    stub = inference.Denoiser(DenoiserConfig(), run=None, fixed_length=None, path=Path("stub"))
    monkeypatch.setattr(inference, "load_denoiser", lambda path: stub)
    monkeypatch.setattr(inference, "denoise_file", interrupted)
    output = tmp_path / "new" / "denoised"
    assert cli.run_main(denoise.main, [str(tmp_path / "take.wav"), "-o", str(output)]) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.wav"]


@pytest.mark.parametrize("content, message", [(None, "holds no audio samples"),
                                              (b"not audio at all", "cannot decode")])
def test_a_named_file_that_cannot_be_denoised_is_refused_before_the_model_loads(tmp_path, capsys, content,
                                                                                message):
    take = tmp_path / "take.wav"
    if content is None:
        soundfile.write(take, np.zeros(0, np.float32), 8000)
    else:
        take.write_bytes(content)
    assert cli.run_main(denoise.main, [str(take), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "none")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and message in errors[0] and "model not found" not in errors[0], errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.wav"]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/stdin").exists(), reason="no /dev/stdin on this system")
def test_a_pipe_named_on_the_command_line_is_read_once(tiny_export, tmp_path):
    """/dev/stdin (or <(...), a FIFO) holds its bytes once: opened to check it and again to denoise
    it, the second read began after the header ('cannot decode' a valid WAV; a FIFO whose writer
    is done waited forever)."""
    soundfile.write(tmp_path / "take.wav", _speechlike(0.5), 8000)

    def cli_on_stdin(data, *args):
        return subprocess.run([sys.executable, "-m", "audio_dl.denoise", "/dev/stdin", *args], input=data,
                              capture_output=True, timeout=300)

    result = cli_on_stdin((tmp_path / "take.wav").read_bytes(), "-o", str(tmp_path / "out.wav"),
                          "--model", str(tiny_export))
    assert result.returncode == 0, result.stderr[-1500:]
    assert soundfile.info(tmp_path / "out.wav").frames == 4000
    result = cli_on_stdin(b"not audio at all", "-o", str(tmp_path / "bad.wav"), "--model", str(tiny_export))
    errors = [line for line in result.stderr.decode().splitlines() if line.startswith("python -m audio_dl.denoise:")]
    assert result.returncode == 2 and len(errors) == 1 and "cannot decode /dev/stdin" in errors[0], result.stderr
    flac = tmp_path / "take.flac"
    soundfile.write(flac, _speechlike(0.5), 8000)
    result = cli_on_stdin(flac.read_bytes(), "-o", str(tmp_path / "flac.wav"), "--model", str(tiny_export))
    errors = [line for line in result.stderr.decode().splitlines() if line.startswith("python -m audio_dl.denoise:")]
    assert result.returncode == 2 and len(errors) == 1 and "FLAC only from a file" in errors[0], result.stderr
    result = cli_on_stdin((tmp_path / "take.wav").read_bytes(), "-o", str(tmp_path / "plot.wav"), "--plot",
                          "--model", str(tmp_path / "none"))  # refused before the model loads
    errors = [line for line in result.stderr.decode().splitlines() if line.startswith("python -m audio_dl.denoise:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert "is not a regular file (a pipe or a device)" in errors[0]
    assert not (tmp_path / "bad.wav").exists() and not (tmp_path / "plot.wav").exists()
