import numpy as np
import pytest
import tensorflow as tf

from audio_dl.config import SYNTHETIC_NOISES
from audio_dl.data import augment
from conftest import sine


def _snr(clean, noise):
    return 10 * np.log10(np.mean(clean**2) / np.mean(noise**2))


@pytest.mark.parametrize("target", [-10.0, -5.0, 0.0, 7.5, 20.0])
def test_mixture_snr_within_a_tenth_of_a_db(target):
    rng = np.random.default_rng(1)
    clean = (0.3 * rng.standard_normal(16000)).astype(np.float32)
    noise = (0.01 * rng.standard_normal(16000)).astype(np.float32)
    noisy, scaled = augment.mix_at_snr(tf.constant(clean), tf.constant(noise), tf.constant(target))
    assert abs(_snr(clean, scaled.numpy()) - target) < 0.1
    assert np.allclose(noisy.numpy(), clean + scaled.numpy())


def test_silent_clips_do_not_produce_nan():
    zeros = tf.zeros([8000])
    noise = tf.random.stateless_normal([8000], [1, 2])
    for clean, n in ((zeros, noise), (noise, zeros), (zeros, zeros)):
        noisy, scaled = augment.mix_at_snr(clean, n, 0.0)
        assert np.all(np.isfinite(noisy.numpy())) and np.all(np.isfinite(scaled.numpy()))


def test_bandpass_attenuates_outside_the_band():
    rate = 8000
    low_tone, mid_tone = tf.constant(sine(40, 1, rate)), tf.constant(sine(1000, 1, rate))
    out_low = augment.bandpass(low_tone, 200.0, 3000.0, rate).numpy()
    out_mid = augment.bandpass(mid_tone, 200.0, 3000.0, rate).numpy()
    assert np.std(out_low[1000:-1000]) < 0.1 * np.std(sine(40, 1, rate))
    assert np.std(out_mid[1000:-1000]) == pytest.approx(np.std(sine(1000, 1, rate)), rel=0.05)


def test_simulated_rooms_and_reverb_keep_level_and_add_a_tail():
    responses = augment.simulated_impulse_responses(4, 8000, (0.3, 0.5), seed=3)
    assert len(responses) == 4 and all(abs(np.abs(r).max() - 1.0) < 1e-6 for r in responses)
    click = tf.one_hot(100, 8000)
    wet = augment.reverberate(click, tf.constant(responses[0])).numpy()
    assert np.mean(wet**2) == pytest.approx(np.mean(click.numpy() ** 2), rel=1e-3)
    assert np.abs(wet[600:1500]).max() > 0  # reverberant tail after the click


def test_the_shortest_rt60_the_config_allows_has_rooms():
    """Under 0.074 s no simulated room rings short enough: the draw would loop for ever."""
    assert len(augment.simulated_impulse_responses(4, 8000, (0.1, 0.1), seed=0)) == 4


def test_fft_convolve_matches_numpy():
    rng = np.random.default_rng(0)
    x, h = rng.standard_normal(500).astype(np.float32), rng.standard_normal(37).astype(np.float32)
    assert np.allclose(augment.fft_convolve(tf.constant(x), tf.constant(h)).numpy(), np.convolve(x, h)[:500],
                       atol=1e-4)


@pytest.mark.parametrize("length", [2**21, 2**22])
def test_fft_convolve_does_not_wrap_just_past_a_power_of_two(length):
    """x [length] * a one-sample delay: length + 1 samples in all, which float32 logarithms round
    down to the power of two below (the last sample wrapped round to the first)."""
    x = np.zeros(length, np.float32)
    x[-1] = 1.0
    delayed = augment.fft_convolve(tf.constant(x), tf.constant([0.0, 1.0])).numpy()
    assert abs(delayed[0]) < 1e-3 and abs(delayed[-1]) < 1e-3


def test_synthetic_noises_are_finite_unit_rms():
    for i in range(15):
        noise = augment.synthetic_noise(tf.constant([i, 7]), 8000, 8000, SYNTHETIC_NOISES).numpy()
        assert np.all(np.isfinite(noise)) and 0.5 < np.sqrt(np.mean(noise**2)) < 1.5


def test_synthetic_noise_draws_only_the_families_asked_for():
    seed = tf.constant([4, 7])
    only_chirps = augment.synthetic_noise(seed, 8000, 8000, ("chirps",)).numpy()
    assert np.array_equal(only_chirps, augment.chirps(seed + 6, 8000, 8000).numpy())
    drawn = set()
    for i in range(8):  # the default: colored noise or hum, nothing else
        seed = tf.constant([i, 7])
        noise = augment.synthetic_noise(seed, 800, 8000).numpy()
        hum = augment.harmonic_hum(seed + 3, 800, 8000).numpy()
        drawn.add("hum" if np.array_equal(noise, hum) else "colored")
        if not np.array_equal(noise, hum):
            exponent = tf.random.stateless_uniform([], seed + 1, 0.0, 2.0)
            assert np.array_equal(noise, augment.colored_noise(seed + 2, 800, exponent).numpy())
    assert drawn == {"hum", "colored"}


@pytest.mark.parametrize("family", [augment.modulated_noise, augment.impulsive_noise, augment.chirps])
def test_non_stationary_noise_families_are_unit_rms(family):
    for i in range(4):
        noise = family(tf.constant([i, 3]), 16000, 8000).numpy()
        assert noise.shape == (16000,) and np.all(np.isfinite(noise))
        assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0, abs=1e-3)


def test_impulsive_noise_is_bursts_and_chirps_are_tones():
    frames = lambda x: x[: 16000 // 256 * 256].reshape(-1, 256)  # noqa: E731
    bursts = augment.impulsive_noise(tf.constant([0, 3]), 16000, 8000).numpy()
    energy = np.sort(np.mean(frames(bursts) ** 2, axis=1))
    assert energy[-3:].mean() > 10 * np.median(energy)  # loud onsets over a quiet floor
    tones = augment.chirps(tf.constant([1, 3]), 16000, 8000).numpy()
    loudest = frames(tones)[np.argmax(np.mean(frames(tones) ** 2, axis=1))]
    spectrum = np.abs(np.fft.rfft(loudest * np.hanning(256)))
    assert spectrum.max() > 30 * np.median(spectrum)  # one narrow peak, not broadband


def test_change_speed_moves_the_pitch_and_keeps_the_length():
    rate, n = 8000, 8000
    tone = np.sin(2 * np.pi * 200.0 * np.arange(n) / rate).astype(np.float32)
    slower = augment.change_speed(tf.constant(tone), 0.8).numpy()
    faster = augment.change_speed(tf.constant(tone), 1.25).numpy()
    assert slower.shape == faster.shape == (n,)
    peak = lambda x: np.argmax(np.abs(np.fft.rfft(x[:4000]))) * rate / 4000  # noqa: E731
    assert peak(slower) == pytest.approx(160.0, abs=2.0) and peak(faster) == pytest.approx(250.0, abs=2.0)
    assert np.all(faster[n * 4 // 5 + 10:] == 0.0)  # sped up: the end is silence, not a loop
