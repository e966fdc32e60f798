"""Mixing and real-world simulation in TF ops (run inside tf.data, on [N] float32 waveforms).

Every random choice takes an explicit stateless `seed` ([2] int), so an example is a pure
function of (config seed, example index) whatever the parallelism.
"""

from __future__ import annotations

import math

import tensorflow as tf

_TINY = 1e-10


def power(x):
    """Mean square of a waveform [..., N] -> [...]."""
    return tf.reduce_mean(tf.square(x), axis=-1)


def mix_at_snr(clean, noise, snr_db):
    """clean + noise scaled so that 10 log10(P_clean / P_noise) = snr_db. Returns (noisy, scaled noise).

    A silent clean clip gets no noise (scale 0), a silent noise clip adds nothing: never NaN.
    """
    clean_power, noise_power = power(clean), power(noise)
    scale = tf.sqrt(clean_power / (tf.maximum(noise_power, _TINY) * 10.0 ** (snr_db / 10.0)))
    scale = tf.where(noise_power > _TINY, scale, 0.0)
    scaled = noise * scale[..., tf.newaxis]
    return clean + scaled, scaled


def fft_convolve(x, h):
    """Linear convolution of x [N] with h [L], truncated to N samples (FFT based)."""
    n = tf.shape(x)[0]
    total = n + tf.shape(h)[0] - 1
    size = tf.cast(2 ** tf.math.ceil(tf.math.log(tf.cast(total, tf.float32)) / math.log(2.0)), tf.int32)
    spectrum = tf.signal.rfft(x, [size]) * tf.signal.rfft(h, [size])
    return tf.signal.irfft(spectrum, [size])[:n]


def simulated_room_impulse_response(seed, sample_rate: int, rt60_range):
    """Exponentially decaying Gaussian noise with a direct path: a diffuse room with random RT60.

    Returns [L] float32 with unit peak at t=0, L = RT60 * sample_rate samples.
    """
    rt60 = tf.random.stateless_uniform([], seed, rt60_range[0], rt60_range[1])
    length = int(rt60_range[1] * sample_rate)
    t = tf.range(length, dtype=tf.float32) / sample_rate
    tail = tf.random.stateless_normal([length], seed + 1) * tf.exp(-6.9078 * t / rt60)  # -60 dB at rt60
    direct = tf.one_hot(0, length)
    return direct + 0.3 * tail * tf.cast(t > 0.0025, tf.float32)


def reverberate(clean, impulse_response):
    """Convolve speech [N] with a room impulse response, keeping the clean RMS."""
    wet = fft_convolve(clean, impulse_response)
    return wet * tf.sqrt((power(clean) + _TINY) / (power(wet) + _TINY))


def bandpass(x, low_hz, high_hz, sample_rate: int, order: int = 2):
    """Zero-phase Butterworth-shaped band-pass of [..., N] (a microphone/telephone channel)."""
    n = tf.shape(x)[-1]
    size = 2 * n
    spectrum = tf.signal.rfft(x, [size])
    freqs = tf.linspace(0.0, sample_rate / 2.0, size // 2 + 1)
    f = tf.maximum(freqs, 1e-3)
    response = 1.0 / tf.sqrt((1.0 + (low_hz / f) ** (2 * order)) * (1.0 + (f / high_hz) ** (2 * order)))
    return tf.signal.irfft(spectrum * tf.complex(response, 0.0), [size])[..., :n]


def db_to_gain(db):
    return 10.0 ** (db / 20.0)
