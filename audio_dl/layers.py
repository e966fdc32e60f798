"""DSP inside the graph: kapre STFT front ends, causal context, masks, inverse STFT.

Shapes use B = batch, N = samples, T = frames, F = frame_length // 2 + 1 bins. Every custom layer
is registered for serialisation and has a complete `get_config`.

Framing convention (shared by every model, the losses and the streaming code): the waveform is
padded with `frame_length - hop` zeros in front (so frame t ends at sample t*hop + hop - 1: the
context is causal) and enough at the end that every input sample is covered by all overlapping
frames; the inverse STFT output is trimmed back to exactly N samples.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from kapre import STFT, InverseSTFT, Magnitude
from kapre.time_frequency_tflite import MagnitudeTflite, STFTTflite

_PACKAGE = "audio_dl"


def framing_pads(num_samples, frame_length: int, hop_length: int):
    """(front, back) zero padding of an N-sample waveform under the framing convention."""
    front = frame_length - hop_length
    back = front + (-num_samples) % hop_length
    return front, back


class _FramingLayer(keras.layers.Layer):
    """Base of the layers that apply the framing convention for (frame_length, hop_length)."""

    def __init__(self, frame_length: int, hop_length: int, **kwargs):
        super().__init__(**kwargs)
        self.frame_length = frame_length
        self.hop_length = hop_length

    def get_config(self):
        return {**super().get_config(), "frame_length": self.frame_length, "hop_length": self.hop_length}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PadForSTFT(_FramingLayer):
    """[B, N] waveform -> [B, N + front + back, 1], zero-padded per the framing convention."""

    def call(self, waveform):
        length = waveform.shape[1] if waveform.shape[1] is not None else tf.shape(waveform)[1]
        front, back = framing_pads(length, self.frame_length, self.hop_length)
        return tf.pad(waveform, [[0, 0], [front, back]])[:, :, tf.newaxis]

    def compute_output_shape(self, input_shape):
        if input_shape[1] is None:
            return (input_shape[0], None, 1)
        return (input_shape[0], input_shape[1] + sum(framing_pads(input_shape[1], self.frame_length,
                                                                  self.hop_length)), 1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TrimToInput(_FramingLayer):
    """([B, M, 1] resynthesised, [B, N] input) -> [B, N]: drops the framing pads."""

    def call(self, inputs):
        resynthesised, reference = inputs
        front = self.frame_length - self.hop_length
        return resynthesised[:, front:front + tf.shape(reference)[1], 0]

    def compute_output_shape(self, input_shapes):
        return input_shapes[1]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LogCompress(keras.layers.Layer):
    """Magnitude [..] -> log(magnitude + floor), elementwise."""

    def __init__(self, floor: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.floor = floor

    def call(self, magnitude):
        return tf.math.log(magnitude + self.floor)

    def get_config(self):
        return {**super().get_config(), "floor": self.floor}


class _FramesLayer(keras.layers.Layer):
    """Base of the layers configured by a number of frames."""

    def __init__(self, frames: int, **kwargs):
        super().__init__(**kwargs)
        self.frames = frames

    def get_config(self):
        return {**super().get_config(), "frames": self.frames}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PrependSilence(_FramesLayer):
    """Magnitude [B, T, F, C] -> [B, frames + T, F, C] with `frames` all-zero frames in front.

    Every causal layer after it then sees a full history of silence instead of a shorter window
    at the start, which is exactly what a streaming model whose state starts at zero sees: offline
    and streaming outputs agree from the first sample.
    """

    def call(self, magnitude):
        return tf.pad(magnitude, [[0, 0], [self.frames, 0], [0, 0], [0, 0]])

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] + self.frames
        return (input_shape[0], length, *input_shape[2:])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AppendSilence(_FramesLayer):
    """Magnitude [B, T, F, C] -> [B, T + frames, F, C] with `frames` all-zero frames at the end:
    what a streaming model with lookahead sees when the recording is flushed with silence."""

    def call(self, magnitude):
        return tf.pad(magnitude, [[0, 0], [0, self.frames], [0, 0], [0, 0]])

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] + self.frames
        return (input_shape[0], length, *input_shape[2:])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SilenceOffset(keras.layers.Layer):
    """x [..., units] -> x + silence, or x - silence with subtract=True; silence [units] is a
    non-trainable weight: what a streaming step's layer outputs for silence, computed from the
    trained weights once (`models.denoiser.build_streaming_denoiser(cfg, weights_from=...)`), so
    all-zero states mean silence and no hop spends work recomputing it."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.silence = self.add_weight(shape=(self.units,), initializer="zeros", trainable=False, name="silence")

    def call(self, x, subtract=False):
        return x - self.silence if subtract else x + self.silence

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DropFrames(_FramesLayer):
    """[B, frames + T, ...] -> [B, T, ...]: removes what PrependSilence added."""


    def call(self, x):
        return x[:, self.frames:]

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] - self.frames
        return (input_shape[0], length, *input_shape[2:])


def _per_element_over_frames(x, window):
    """Applies window([B, T, C] -> [B, T, C]) to [B, T, ...] with the trailing axes flattened to C."""
    shape = tf.shape(x)
    return tf.reshape(window(tf.reshape(x, [shape[0], shape[1], math.prod(x.shape[2:])])), shape)


def causal_moving_average(x, frames: int):
    """[B, T, ...] -> mean over frames t-frames+1..t (zeros before the start), per element.

    A windowed sum (average pooling over causally padded input), so the error does not grow with
    the length of the recording as a difference of running sums would.
    """
    return _per_element_over_frames(x, lambda flat: tf.nn.avg_pool1d(
        tf.pad(flat, [[0, 0], [frames - 1, 0], [0, 0]]), ksize=frames, strides=1, padding="VALID"))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CausalLevelNorm(_FramesLayer):
    """Log-magnitude features [B, T, F, C] minus their mean over all bins and channels of the last
    `frames` frames.

    A gain g on the recording adds log(g) to every log-magnitude (up to LogCompress's 1e-5 floor)
    and is removed, so the model's input does not depend on the recording level. Causal: frame t
    sees frames t-frames+1..t.
    """

    def call(self, log_magnitude):
        frame_mean = tf.reduce_mean(log_magnitude, axis=[2, 3])  # [B, T]
        context_mean = causal_moving_average(frame_mean, self.frames)
        return log_magnitude - context_mean[:, :, tf.newaxis, tf.newaxis]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CausalMovingAverage(_FramesLayer):
    """[B, T, ...] -> mean over the last `frames` frames (zeros before the start), per element.

    The long-term spectrum of the recent past: a cheap noise-floor cue for the mask model.
    """

    def call(self, x):
        return causal_moving_average(x, self.frames)


def causal_moving_minimum(x, frames: int):
    """[B, T, ...] -> minimum over frames max(t-frames+1, 0)..t, per element (the window is shorter
    at the start). Minimum statistics: in speech pauses each bin falls to the noise floor."""
    return _per_element_over_frames(x, lambda flat: -tf.nn.max_pool1d(
        tf.pad(-flat, [[0, 0], [frames - 1, 0], [0, 0]], constant_values=-1e9),  # padding: never the maximum
        ksize=frames, strides=1, padding="VALID"))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CausalMovingMinimum(_FramesLayer):
    """[B, T, ...] -> minimum over the last `frames` frames, per element: with log magnitudes, the
    noise floor of the recent past, which speech does not raise as it raises the average."""

    def call(self, x):
        return causal_moving_minimum(x, self.frames)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CausalContextConv(keras.layers.Conv2D):
    """Conv2D over [B, T, F, C] whose time kernel spans the current and `context_frames - 1` past
    frames (causal zero padding in time), 'same' padding in frequency.

    This is the demo's "8 consecutive noisy frames predict the current clean frame" computed as
    one convolution: the 8 shifted copies of the spectrogram are never materialised.
    Output: [B, T, F, filters].
    """

    def __init__(self, filters: int, context_frames: int, freq_kernel: int, **kwargs):
        kwargs.pop("kernel_size", None)
        kwargs.pop("padding", None)
        super().__init__(filters, kernel_size=(context_frames, freq_kernel), padding="valid", **kwargs)
        self.context_frames = context_frames
        self.freq_kernel = freq_kernel

    def _pads(self):
        freq = self.freq_kernel - 1  # 'same' in frequency
        return [[0, 0], [self.context_frames - 1, 0], [freq // 2, freq - freq // 2], [0, 0]]

    def call(self, inputs):
        return super().call(tf.pad(inputs, self._pads()))

    def compute_output_shape(self, input_shape):
        pads = self._pads()
        padded = (input_shape[0], None if input_shape[1] is None else input_shape[1] + pads[1][0],
                  input_shape[2] + sum(pads[2]), input_shape[3])
        return super().compute_output_shape(padded)

    def get_config(self):
        config = super().get_config()
        config.pop("kernel_size", None)
        config.pop("padding", None)
        return {**config, "context_frames": self.context_frames, "freq_kernel": self.freq_kernel}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ApplyMask(keras.layers.Layer):
    """(STFT, real gain [B, T, F, 1]) -> masked STFT.

    The STFT is complex [B, T, F, 1] (kapre STFT) or real/imaginary [B, T, F, 1, 2] (kapre
    STFTTflite); the gain multiplies both parts, so the noisy phase is kept and no complex op is
    needed in the TFLite graph.
    """

    def call(self, inputs):
        stft, gain = inputs
        gain = tf.cast(gain, tf.float32)
        if stft.dtype.is_complex:
            return stft * tf.complex(gain, tf.zeros_like(gain))
        return stft * gain[..., tf.newaxis]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GainFromMagnitude(keras.layers.Layer):
    """(predicted magnitude, noisy magnitude) [B, T, F, 1] -> gain max(pred, 0) / (noisy + floor)."""

    def __init__(self, floor: float = 1e-7, **kwargs):
        super().__init__(**kwargs)
        self.floor = floor

    def call(self, inputs):
        predicted, noisy = inputs
        return tf.nn.relu(tf.cast(predicted, tf.float32)) / (noisy + self.floor)

    def get_config(self):
        return {**super().get_config(), "floor": self.floor}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class InverseSTFTTflite(_FramingLayer):
    """Real/imaginary STFT [B, T, F, 1, 2] -> waveform [B, (T - 1) * hop + frame_length, 1].

    Inverse real DFT as two matrix products with fixed cos/sin matrices, the synthesis window of
    `tf.signal.inverse_stft_window_fn`, and `tf.signal.overlap_and_add` (pads, reshapes and a
    sum): builtin TFLite ops only. Equals kapre `InverseSTFT` (tf.signal.inverse_stft).
    """

    def __init__(self, frame_length: int, hop_length: int, forward_window_name: str, **kwargs):
        super().__init__(frame_length, hop_length, **kwargs)
        self.forward_window_name = forward_window_name
        n = np.arange(frame_length)
        k = np.arange(frame_length // 2 + 1)[:, None]
        weight = np.where((k == 0) | (k == frame_length // 2), 1.0, 2.0) / frame_length
        window_fn = getattr(tf.signal, forward_window_name)
        synthesis = tf.signal.inverse_stft_window_fn(hop_length, window_fn)(frame_length, tf.float64).numpy()
        self._cos = (weight * np.cos(2 * np.pi * k * n / frame_length) * synthesis).astype(np.float32)
        self._sin = (-weight * np.sin(2 * np.pi * k * n / frame_length) * synthesis).astype(np.float32)

    def call(self, stft):
        real, imag = stft[:, :, :, 0, 0], stft[:, :, :, 0, 1]  # [B, T, F]
        frames = tf.matmul(real, self._cos) + tf.matmul(imag, self._sin)  # [B, T, frame_length]
        return tf.signal.overlap_and_add(frames, self.hop_length)[:, :, tf.newaxis]

    def get_config(self):
        return {**super().get_config(), "forward_window_name": self.forward_window_name}


def spectral_front_end(cfg, tflite: bool = False):
    """(PadForSTFT, STFT, Magnitude) layers for cfg's window/hop; kapre's TFLite variants on request.

    STFT output: complex [B, T, F, 1], or real [B, T, F, 1, 2] when tflite=True.
    """
    stft_cls, magnitude_cls = (STFTTflite, MagnitudeTflite) if tflite else (STFT, Magnitude)
    pad = PadForSTFT(cfg.frame_length, cfg.hop_length, name="pad_for_stft")
    stft = stft_cls(n_fft=cfg.frame_length, win_length=cfg.frame_length, hop_length=cfg.hop_length,
                    window_name=cfg.window, input_data_format="channels_last",
                    output_data_format="channels_last", dtype="float32", name="stft")
    magnitude = magnitude_cls(dtype="float32", name="noisy_magnitude")
    return pad, stft, magnitude


def inverse_stft(cfg, tflite: bool = False):
    """Inverse STFT layer (kapre InverseSTFT, or InverseSTFTTflite) -> [B, M, 1]."""
    if tflite:
        return InverseSTFTTflite(cfg.frame_length, cfg.hop_length, cfg.window, dtype="float32",
                                 name="inverse_stft")
    return InverseSTFT(n_fft=cfg.frame_length, win_length=cfg.frame_length, hop_length=cfg.hop_length,
                       forward_window_name=cfg.window, input_data_format="channels_last",
                       output_data_format="channels_last", dtype="float32", name="inverse_stft")


def stft_magnitude(waveform, cfg):
    """[B, N] waveform -> [B, T, F] magnitude under the framing convention (used by the losses)."""
    pad, stft, magnitude = spectral_front_end(cfg)
    return magnitude(stft(pad(waveform)))[..., 0]
