"""DSP layers against independent references (librosa, numpy) and save/load round trips."""

import keras
import librosa
import numpy as np
import pytest
import tensorflow as tf

from audio_dl import layers as L
from audio_dl.config import DenoiserConfig

CFG = DenoiserConfig()


def _noise(shape, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


@pytest.mark.parametrize("length", [256, 1000, 8000, 8063])
@pytest.mark.parametrize("tflite", [False, True])
def test_stft_magnitude_matches_librosa(length, tflite):
    x = _noise((1, length))
    pad, stft, magnitude = L.spectral_front_end(CFG, tflite=tflite)
    ours = magnitude(stft(pad(x))).numpy()[0, :, :, 0]
    front, back = L.framing_pads(length, 256, 64)
    reference = np.abs(librosa.stft(np.pad(x[0], (front, back)), n_fft=256, hop_length=64,
                                    window="hamming", center=False)).T  # scipy hamming(256, sym=False)
    assert ours.shape == reference.shape == (1 + (length + front + back - 256) // 64, 129)
    np.testing.assert_allclose(ours, reference, atol=5e-5 * reference.max())


@pytest.mark.parametrize("length", [300, 8000, 8063])
@pytest.mark.parametrize("tflite", [False, True])
def test_stft_then_inverse_reconstructs_the_input(length, tflite):
    x = _noise((1, length), seed=1)
    pad, stft, _ = L.spectral_front_end(CFG, tflite=tflite)
    resynthesised = L.inverse_stft(CFG, tflite=tflite)(stft(pad(x)))
    y = L.TrimToInput(256, 64)([resynthesised, x]).numpy()
    np.testing.assert_allclose(y, x, atol=1e-5)


def test_tflite_inverse_equals_kapre_inverse():
    x = _noise((1, 4000), seed=2)
    pad, stft, _ = L.spectral_front_end(CFG)
    spectrum = stft(pad(x))
    split = tf.stack([tf.math.real(spectrum), tf.math.imag(spectrum)], axis=-1)
    np.testing.assert_allclose(L.inverse_stft(CFG, tflite=True)(split).numpy(),
                               L.inverse_stft(CFG)(spectrum).numpy(), atol=1e-6)


def _explicit_context(spectrogram, frames):
    """[B, T, F, C] -> [B, T, frames, F, C]: the 8 shifted copies the layers avoid building."""
    padded = np.pad(spectrogram, ((0, 0), (frames - 1, 0), (0, 0), (0, 0)))
    return np.stack([padded[:, k:k + spectrogram.shape[1]] for k in range(frames)], axis=2)


def test_causal_context_conv_equals_the_explicit_8_frame_stack():
    spectrogram = _noise((2, 20, 129, 1), seed=3)
    layer = L.CausalContextConv(18, 8, 9)
    ours = layer(spectrogram).numpy()
    kernel, bias = (w.numpy() for w in layer.weights)  # kernel [8, 9, 1, 18]
    stack = np.pad(_explicit_context(spectrogram, 8), ((0, 0), (0, 0), (0, 0), (4, 4), (0, 0)))
    expected = np.zeros_like(ours)
    for f in range(129):
        window = stack[:, :, :, f:f + 9, :]  # [B, T, 8, 9, 1]
        expected[:, :, f, :] = np.einsum("btkfc,kfco->bto", window, kernel) + bias
    np.testing.assert_allclose(ours, expected, atol=1e-4)


def test_mask_context_layer_equals_the_explicit_8_frame_stack():
    from audio_dl.models.denoiser import build_denoiser

    model = build_denoiser(DenoiserConfig(hidden_units=16))
    context = model.get_layer("context")  # causal Conv1D over [B, T, E] frame embeddings
    frames = _noise((2, 20, context.input.shape[-1]), seed=4)
    ours = context(frames).numpy()
    stack = _explicit_context(frames[..., None], 8)[..., 0]  # [B, T, 8, E]
    kernel, bias = (w.numpy() for w in context.weights)  # [8, E, H]
    expected = np.maximum(np.einsum("btkf,kfh->bth", stack, kernel) + bias, 0.0)
    np.testing.assert_allclose(ours, expected, atol=1e-4)


def test_level_norm_removes_the_recording_gain():
    magnitude = np.abs(_noise((1, 50, 129, 1), seed=5)) + 1e-2
    layer = L.CausalLevelNorm(8)
    a = layer(np.log(magnitude)).numpy()
    b = layer(np.log(magnitude * 37.0)).numpy()
    np.testing.assert_allclose(a[:, 7:], b[:, 7:], atol=1e-4)  # once 8 real frames are in the window


def test_causal_moving_average_matches_numpy():
    x = _noise((1, 30, 3, 2), seed=6)
    ours = L.CausalMovingAverage(4)(x).numpy()
    padded = np.pad(x, ((0, 0), (3, 0), (0, 0), (0, 0)))
    expected = np.stack([padded[:, t:t + 4].mean(axis=1) for t in range(30)], axis=1)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_causal_moving_minimum_matches_numpy_with_a_shorter_window_at_the_start():
    x = _noise((1, 30, 3, 2), seed=9)
    ours = L.CausalMovingMinimum(4)(x).numpy()
    expected = np.stack([x[:, max(t - 3, 0):t + 1].min(axis=1) for t in range(30)], axis=1)
    np.testing.assert_array_equal(ours, expected)


def test_causal_moving_average_does_not_drift_on_an_hour_of_frames():
    frames = 8000 * 3600 // 64  # one hour at 8 kHz, hop 64
    x = (np.random.default_rng(7).standard_normal((1, frames)) - 9.0).astype(np.float32)  # log-magnitude-like
    ours = L.causal_moving_average(tf.constant(x), 64).numpy()[0, -1000:]
    expected = np.convolve(x[0].astype(np.float64), np.ones(64) / 64)[frames - 1000:frames]
    np.testing.assert_allclose(ours, expected, atol=1e-4)


@pytest.mark.parametrize("layer, inputs", [
    (L.PadForSTFT(256, 64), [_noise((1, 1000))]),
    (L.LogCompress(1e-4), [np.abs(_noise((1, 5, 129, 1)))]),
    (L.CausalLevelNorm(8), [_noise((1, 12, 129, 2))]),
    (L.CausalMovingAverage(16), [_noise((1, 12, 129, 1))]),
    (L.CausalMovingMinimum(16), [_noise((1, 12, 129, 1))]),
    (L.PrependSilence(5), [_noise((1, 12, 129, 1))]),
    (L.AppendSilence(3), [_noise((1, 12, 129, 1))]),
    (L.DropFrames(5), [_noise((1, 12, 129, 1))]),
    (L.SilenceOffset(16), [_noise((1, 12, 16))]),
    (L.CausalContextConv(4, 8, 9), [_noise((1, 12, 129, 1))]),
    (L.GainFromMagnitude(), [np.abs(_noise((1, 5, 129, 1))), np.abs(_noise((1, 5, 129, 1), 1))]),
    (L.InverseSTFTTflite(256, 64, "hamming_window"), [_noise((1, 5, 129, 1, 2))]),
])
def test_custom_layers_survive_a_save_load_round_trip(tmp_path, layer, inputs):
    keras_inputs = [keras.Input(shape=x.shape[1:], batch_size=1) for x in inputs]
    model = keras.Model(keras_inputs, layer(keras_inputs if len(inputs) > 1 else keras_inputs[0]))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    loaded_layer = loaded.layers[-1]
    assert loaded_layer.get_config() == model.layers[-1].get_config()
    np.testing.assert_allclose(loaded(inputs).numpy(), model(inputs).numpy(), atol=1e-6)


def test_silence_offset_adds_and_subtracts_its_stored_silence(tmp_path):
    state = keras.Input((3, 4), batch_size=1)
    offset = L.SilenceOffset(4)
    model = keras.Model(state, [offset(state), offset(state, subtract=True)])
    offset.set_weights([np.arange(4, dtype=np.float32)])
    model.save(tmp_path / "m.keras")
    added, subtracted = keras.models.load_model(tmp_path / "m.keras")(np.ones((1, 3, 4), np.float32))
    np.testing.assert_allclose(added.numpy()[0], np.ones((3, 4)) + np.arange(4))
    np.testing.assert_allclose(subtracted.numpy()[0], np.ones((3, 4)) - np.arange(4))
