import keras
import numpy as np
import pytest

from audio_dl.config import DenoiserConfig, make_config
from audio_dl.models.denoiser import (build_denoiser, build_streaming_denoiser, copy_weights, count_macs_per_frame,
                                     receptive_field_frames, streaming_state_names)


@pytest.mark.parametrize("architecture", ["mask", "fcn16"])
def test_waveform_in_waveform_out_any_length(architecture):
    model = build_denoiser(DenoiserConfig(architecture=architecture))
    for length in (700, 8001):
        out = model(np.zeros((2, length), np.float32) + 0.01)
        assert out["denoised"].shape == (2, length)
        assert out["magnitude"].shape[-1] == 129


def test_fcn16_is_the_demo_network():
    model = build_denoiser(DenoiserConfig(architecture="fcn16"))
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 16
    assert convs[0].kernel.shape == (8, 9, 1, 18) and convs[-1].kernel.shape == (1, 129, 8, 1)
    conv_weights = sum(int(np.prod(c.kernel.shape)) + c.filters for c in convs)
    assert 31_000 < conv_weights < 32_500  # the demo: ~31.8 k


def test_mask_model_computes_less_per_frame_than_fcn16():
    mask = count_macs_per_frame(build_denoiser(make_config(DenoiserConfig, "default")))
    fcn16 = count_macs_per_frame(build_denoiser(make_config(DenoiserConfig, "matlab")))
    assert mask <= fcn16


def test_mask_model_output_scales_with_the_input_level():
    """Exact once the model's history (silence before the recording) has scrolled out: 0.62 s."""
    cfg = DenoiserConfig(hidden_units=32)
    model = build_denoiser(cfg)
    x = (0.05 * np.random.default_rng(0).standard_normal((1, 12000))).astype(np.float32)
    quiet, loud = model(x)["denoised"].numpy(), model(20 * x)["denoised"].numpy()
    settled = (receptive_field_frames(cfg) + 4) * cfg.hop_length
    np.testing.assert_allclose(loud[:, settled:], 20 * quiet[:, settled:], atol=1e-3 * np.abs(loud).max())


@pytest.mark.parametrize("architecture", ["mask", "fcn16"])
def test_tflite_twin_matches_the_keras_model(architecture):
    cfg = make_config(DenoiserConfig, "tiny", overrides=[f"architecture={architecture}"])
    model, twin = build_denoiser(cfg), build_denoiser(cfg, tflite=True)
    copy_weights(model, twin)
    x = (0.1 * np.random.default_rng(1).standard_normal((1, cfg.tflite_samples))).astype(np.float32)
    np.testing.assert_allclose(twin(x)["denoised"].numpy(), model(x)["denoised"].numpy(), atol=1e-5)


def test_model_save_load_round_trip(tmp_path):
    model = build_denoiser(make_config(DenoiserConfig, "tiny"))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    x = (0.1 * np.random.default_rng(2).standard_normal((1, 3000))).astype(np.float32)
    np.testing.assert_allclose(loaded(x)["denoised"].numpy(), model(x)["denoised"].numpy(), atol=1e-6)


@pytest.mark.parametrize("architecture", ["mask", "fcn16"])
def test_mixed_precision_keeps_dsp_and_outputs_float32(architecture):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_denoiser(make_config(DenoiserConfig, "tiny", overrides=[f"architecture={architecture}"]))
        out = model(np.full((1, 2000), 0.01, np.float32))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("stft").dtype_policy.compute_dtype == "float32"
    assert out["denoised"].dtype == "float32" and np.all(np.isfinite(out["denoised"].numpy()))


@pytest.mark.parametrize("architecture", ["mask", "fcn16"])
def test_streaming_step_equals_the_offline_model_past_every_window(architecture):
    """1.5 s: the mask model's 64-frame long-term average and 8-frame level both roll over."""
    cfg = make_config(DenoiserConfig, "tiny", overrides=[f"architecture={architecture}"])
    model, step = build_denoiser(cfg), build_streaming_denoiser(cfg)
    x = (0.1 * np.random.default_rng(4).standard_normal((1, 12000))).astype(np.float32)
    normalization = model.get_layer("input_normalization")
    shape = [4] + [50 if d is None else d for d in normalization.input.shape[1:]]
    normalization.adapt(np.random.default_rng(5).standard_normal(shape).astype(np.float32) + 3.0)
    copy_weights(model, step)
    names = streaming_state_names(step)
    state = {t.name: np.zeros((1, *t.shape[1:]), np.float32) for t in step.inputs if t.name in names}
    padded = np.pad(x[0], (0, 192 + (-x.shape[1]) % 64))
    out = []
    for i in range(0, len(padded), 64):
        result = step({"samples": padded[None, i:i + 64], **state})
        state = {name: result[f"next_{name}"].numpy() for name in names}
        out.append(result["denoised"].numpy()[0])
    streamed = np.concatenate(out)[192:192 + x.shape[1]]
    np.testing.assert_allclose(streamed, model(x)["denoised"].numpy()[0], atol=1e-5)
