"""Mixing and real-world simulation in TF ops (run inside tf.data, on [N] float32 waveforms; speed
perturbation calls soxr), plus the room impulse responses they use (simulated once with pyroomacoustics).

Every random choice takes an explicit stateless `seed` ([2] int), so an example is a pure
function of (config seed, example index) whatever the parallelism.
"""

from __future__ import annotations

import math

import numpy as np
import soxr
import tensorflow as tf

_TINY = 1e-10


def power(x):
    """Mean square of a waveform [..., N] -> [...]."""
    return tf.reduce_mean(tf.square(x), axis=-1)


def audible(x):
    """[..., N] -> bool [...]: more than digital silence or a constant offset (power about the
    mean above the level mix_at_snr takes for silence)."""
    return power(x - tf.reduce_mean(x, axis=-1, keepdims=True)) > _TINY


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
    # the power of two >= total; float64: float32 rounds log2(2^21 + 1) down to 21 (a wrapped tail)
    size = tf.cast(2.0 ** tf.math.ceil(tf.math.log(tf.cast(total, tf.float64)) / math.log(2.0)), tf.int32)
    size = tf.where(size // 2 >= total, size // 2, size)  # log2 of an exact power a hair over it
    spectrum = tf.signal.rfft(x, [size]) * tf.signal.rfft(h, [size])
    return tf.signal.irfft(spectrum, [size])[:n]


def simulated_impulse_responses(count: int, sample_rate: int, rt60_range, seed: int) -> list[np.ndarray]:
    """Room impulse responses of random shoebox rooms (pyroomacoustics image-source method).

    Each room is 3-10 x 3-8 x 2.4-4 m with wall absorption set for an RT60 drawn from
    `rt60_range` (Sabine), source and microphone at random places; numpy, made once per pipeline.
    Returns `count` arrays, each starting at the direct path with unit peak.
    """
    import pyroomacoustics as pra  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    responses = []
    while len(responses) < count:
        dims = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 4.0])
        try:
            absorption, max_order = pra.inverse_sabine(rng.uniform(*rt60_range), dims)
        except ValueError:  # that RT60 is impossible in that room
            continue
        room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption), max_order=min(max_order, 17))
        room.add_source(rng.uniform(0.5, dims - 0.5))
        room.add_microphone(rng.uniform(0.5, dims - 0.5))
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], np.float32)
        rir = rir[max(0, int(np.argmax(np.abs(rir))) - 8):]  # drop the propagation delay
        responses.append(rir / np.abs(rir).max())
    return responses


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


def change_speed(x, factor):
    """Speed perturbation of [N] (factor < 1: slower and lower-pitched, a longer vocal tract),
    resampled with soxr and cut or zero-padded back to N samples."""

    def resample(audio, ratio):
        out = soxr.resample(audio, 1000.0 * float(ratio), 1000.0)[: audio.size]
        return np.pad(out, (0, audio.size - out.size)).astype(np.float32)

    out = tf.numpy_function(resample, [x, tf.cast(factor, tf.float32)], tf.float32, stateful=False)
    return tf.ensure_shape(out, x.shape)


def db_to_gain(db):
    return 10.0 ** (db / 20.0)


def spectral_tilt(x, tilt_db, sample_rate: int):
    """Linear-in-frequency EQ: -tilt/2 dB at 0 Hz to +tilt/2 dB at Nyquist (zero phase), x [N]."""
    n = tf.shape(x)[-1]
    spectrum = tf.signal.rfft(x, [2 * n])
    position = tf.linspace(-0.5, 0.5, n + 1)
    response = db_to_gain(tilt_db * position)
    return tf.signal.irfft(spectrum * tf.complex(response, 0.0), [2 * n])[..., :n]


def unit_rms(x):
    """[..., N] scaled to unit RMS (a silent clip stays silent)."""
    return x / tf.sqrt(power(x) + _TINY)


def colored_noise(seed, length: int, exponent):
    """Gaussian noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown), unit RMS."""
    white = tf.random.stateless_normal([length], seed)
    bins = length // 2 + 1
    f = tf.maximum(tf.range(bins, dtype=tf.float32), 1.0)
    shaped = tf.signal.irfft(tf.signal.rfft(white) * tf.complex(f ** (-exponent / 2.0), 0.0), [length])
    return unit_rms(shaped)


def harmonic_hum(seed, length: int, sample_rate: int, fundamental_range=(45.0, 420.0), harmonics: int = 12):
    """Mains hum or a motor: random fundamental, decaying random harmonics, slow amplitude
    modulation, a little broadband noise. Unit RMS [length]."""
    f0 = tf.random.stateless_uniform([], seed, *fundamental_range)
    t = tf.range(length, dtype=tf.float32) / sample_rate
    k = tf.range(1, harmonics + 1, dtype=tf.float32)
    amplitude = tf.random.stateless_uniform([harmonics], seed + 1, 0.0, 1.0) / k
    amplitude *= tf.cast(k * f0 < sample_rate / 2, tf.float32)
    phase = tf.random.stateless_uniform([harmonics], seed + 2, 0.0, 2 * math.pi)
    tone = tf.reduce_sum(amplitude[:, None] * tf.sin(2 * math.pi * f0 * k[:, None] * t + phase[:, None]), 0)
    rate = tf.random.stateless_uniform([], seed + 3, 0.2, 8.0)
    depth = tf.random.stateless_uniform([], seed + 4, 0.0, 0.6)
    tone *= 1.0 + depth * tf.sin(2 * math.pi * rate * t)
    return unit_rms(tone) + 0.1 * colored_noise(seed + 5, length, 1.0)


def modulated_noise(seed, length: int, sample_rate: int):
    """Rotor or engine: colored noise under a periodic envelope |sin|^p at 2-30 Hz. Unit RMS [length]."""
    t = tf.range(length, dtype=tf.float32) / sample_rate
    rate = tf.random.stateless_uniform([], seed, 2.0, 30.0)
    sharpness = tf.random.stateless_uniform([], seed + 1, 1.0, 6.0)
    depth = tf.random.stateless_uniform([], seed + 2, 0.3, 1.0)
    envelope = 1.0 - depth + depth * tf.abs(tf.sin(math.pi * rate * t)) ** sharpness
    exponent = tf.random.stateless_uniform([], seed + 3, 0.0, 2.0)
    return unit_rms(envelope * colored_noise(seed + 4, length, exponent))


def impulsive_noise(seed, length: int, sample_rate: int):
    """Clapping, clicks, footsteps, a printer's steps: short decaying noise bursts at random times
    (2-80 per second, random levels), over a faint noise floor. Unit RMS [length]."""
    rate = tf.random.stateless_uniform([], seed, 2.0, 80.0)
    onsets = tf.cast(tf.random.stateless_uniform([length], seed + 1) < rate / sample_rate, tf.float32)
    levels = tf.exp(tf.random.stateless_normal([length], seed + 2))
    decay = tf.random.stateless_uniform([], seed + 3, 0.002, 0.04) * sample_rate  # samples
    taps = tf.cast(tf.round(5.0 * decay), tf.int32)
    burst = tf.random.stateless_normal([taps], seed + 4) * tf.exp(-tf.range(taps, dtype=tf.float32) / decay)
    return _over_noise_floor(fft_convolve(onsets * levels, burst), seed + 5, length)


def chirps(seed, length: int, sample_rate: int, events: int = 12):
    """Birdsong, squeaks, whistles: up to `events` tones, each 40-400 ms long, gliding between two
    random frequencies with a little vibrato, under a Hann envelope, over a faint noise floor.
    Unit RMS [length]."""
    t = tf.range(length, dtype=tf.float32) / sample_rate
    seconds = length / sample_rate
    active = tf.cast(tf.range(events) < tf.random.stateless_uniform([], seed, 1, events + 1, tf.int32), tf.float32)
    start = tf.random.stateless_uniform([events, 1], seed + 1, 0.0, seconds)
    duration = tf.random.stateless_uniform([events, 1], seed + 2, 0.04, 0.4)
    glide = tf.random.stateless_uniform([events, 2], seed + 3, 400.0, 0.95 * sample_rate / 2)
    vibrato = tf.random.stateless_uniform([events, 2], seed + 4, [0.0, 5.0], [0.05, 40.0])
    progress = tf.clip_by_value((t - start) / duration, 0.0, 1.0)  # [events, length]
    frequency = glide[:, :1] + (glide[:, 1:] - glide[:, :1]) * progress
    frequency *= 1.0 + vibrato[:, :1] * tf.sin(2 * math.pi * vibrato[:, 1:] * t)
    phase = 2 * math.pi * tf.cumsum(frequency, axis=1) / sample_rate
    envelope = tf.sin(math.pi * progress) ** 2  # 0 before the start and after the end
    tones = tf.reduce_sum(active[:, None] * envelope * tf.sin(phase), axis=0)
    return _over_noise_floor(tones, seed + 5, length)


def _over_noise_floor(events, seed, length: int):
    """Sparse events [length] at unit RMS plus pink noise 26 dB below them, unit RMS."""
    return unit_rms(unit_rms(events) + 0.05 * colored_noise(seed, length, 1.0))


def synthetic_noise(seed, length: int, sample_rate: int, families=("colored", "hum")):
    """One of `families`, equally likely: "colored" noise (white..brown), "hum" (mains, motors),
    "rotor" (modulated noise), "bursts" (impulsive), "chirps" (tonal glides). Training-only
    augmentation: results are never reported on synthetic noise. Unit RMS [length]."""
    makers = {
        "colored": lambda: colored_noise(seed + 2, length, tf.random.stateless_uniform([], seed + 1, 0.0, 2.0)),
        "hum": lambda: harmonic_hum(seed + 3, length, sample_rate),
        "rotor": lambda: modulated_noise(seed + 4, length, sample_rate),
        "bursts": lambda: impulsive_noise(seed + 5, length, sample_rate),
        "chirps": lambda: chirps(seed + 6, length, sample_rate),
    }
    choice = tf.random.stateless_uniform([], seed, 0, len(families), tf.int32)
    return tf.switch_case(choice, [makers[name] for name in families])
