"""Training losses for the denoiser. Targets are always the clean waveform [B, N]; spectral terms
compute its STFT with the same layers as the model (audio_dl.layers), so there is one framing.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from audio_dl import layers as L
from audio_dl.config import DenoiserConfig

_EPS = 1e-8


def si_sdr(reference, estimate):
    """Scale-invariant SDR in dB per example; reference/estimate [B, N]. Finite for silent input."""
    reference = reference - tf.reduce_mean(reference, axis=-1, keepdims=True)
    estimate = estimate - tf.reduce_mean(estimate, axis=-1, keepdims=True)
    scale = (tf.reduce_sum(reference * estimate, -1, keepdims=True) + _EPS) / (
        tf.reduce_sum(reference**2, -1, keepdims=True) + _EPS)
    target = scale * reference
    ratio = (tf.reduce_sum(target**2, -1) + _EPS) / (tf.reduce_sum((estimate - target) ** 2, -1) + _EPS)
    return 10.0 * tf.math.log(ratio) / tf.math.log(10.0)


@keras.saving.register_keras_serializable(package="audio_dl")
class NegativeSISDR(keras.losses.Loss):
    """-SI-SDR (dB) of the denoised waveform; judges the waveform the user hears."""

    def __init__(self, name="negative_si_sdr", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return -si_sdr(tf.cast(y_true, tf.float32), tf.cast(y_pred, tf.float32))


class _SpectralLoss(keras.losses.Loss):
    """Base: y_true clean waveform [B, N] -> clean magnitude [B, T, F]; y_pred magnitude [B, T, F]."""

    def __init__(self, cfg: DenoiserConfig, name: str, **kwargs):
        super().__init__(name=name, **kwargs)
        self.cfg = cfg

    def clean_magnitude(self, clean_waveform):
        return L.stft_magnitude(tf.cast(clean_waveform, tf.float32), self.cfg)


class CompressedSpectralLoss(_SpectralLoss):
    """Mean squared error of power-law compressed magnitudes (|S|^0.3), each example first scaled
    to unit clean RMS so quiet and loud recordings weigh the same."""

    def __init__(self, cfg: DenoiserConfig, power: float = 0.3, name="compressed_spectral", **kwargs):
        super().__init__(cfg, name=name, **kwargs)
        self.power = power

    def call(self, y_true, y_pred):
        clean = self.clean_magnitude(y_true)
        level = tf.sqrt(tf.reduce_mean(tf.square(tf.cast(y_true, tf.float32)), axis=-1) + _EPS)
        level = level[:, tf.newaxis, tf.newaxis]

        def compress(magnitude):
            return tf.pow(tf.square(magnitude / level) + _EPS, self.power / 2)

        return tf.reduce_mean(tf.square(compress(tf.cast(y_pred, tf.float32)) - compress(clean)), axis=[1, 2])


class NormalizedMagnitudeMSE(_SpectralLoss):
    """The demo's loss: MSE between predicted and clean magnitudes, both in units of the target
    normalisation's standard deviation (the model's `target_denormalization` statistics)."""

    def __init__(self, cfg: DenoiserConfig, target_std: float, name="normalized_magnitude_mse", **kwargs):
        super().__init__(cfg, name=name, **kwargs)
        self.target_std = float(target_std)

    def call(self, y_true, y_pred):
        error = (tf.cast(y_pred, tf.float32) - self.clean_magnitude(y_true)) / self.target_std
        return tf.reduce_mean(tf.square(error), axis=[1, 2])


def make_losses(cfg: DenoiserConfig, model: keras.Model) -> tuple[dict, dict]:
    """(losses, loss_weights) keyed by model output for cfg.loss."""
    if cfg.loss == "magnitude_mse":
        std = float(tf.sqrt(model.get_layer("target_denormalization").variance).numpy().reshape(-1)[0])
        return {"magnitude": NormalizedMagnitudeMSE(cfg, std)}, {"magnitude": 1.0}
    return ({"denoised": NegativeSISDR(), "magnitude": CompressedSpectralLoss(cfg)},
            {"denoised": 1.0, "magnitude": cfg.spectral_weight})
