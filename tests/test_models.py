import keras
import numpy as np
import pytest

from audio_dl.config import DenoiserConfig, make_config
from audio_dl.models.denoiser import build_denoiser, build_streaming_denoiser, copy_weights, count_macs_per_frame

# The designs, as overrides of a preset: the mask model, with a GRU, with dilated blocks and
# lookahead, with dilated blocks and the minimum-statistics feature, and the demo's network.
VARIANTS = {"mask": [], "mask+gru": ["recurrent_units=16"], "mask+dilated+lookahead": ["temporal_blocks=3", "lookahead_frames=2"],
            "mask+dilated+minimum": ["temporal_blocks=2", "noise_minimum=true"],
            "fcn16": ["architecture=fcn16"]}


@pytest.mark.parametrize("variant", VARIANTS)
def test_waveform_in_waveform_out_any_length(variant):
    model = build_denoiser(make_config(DenoiserConfig, "default", overrides=VARIANTS[variant]))
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


@pytest.mark.parametrize("recurrent_units", [0, 16])
def test_mask_model_output_scales_with_the_input_level(recurrent_units):
    """Exact once the model's history (silence before the recording) has scrolled out: 0.62 s."""
    cfg = DenoiserConfig(hidden_units=32, recurrent_units=recurrent_units)
    model = build_denoiser(cfg)
    x = (0.05 * np.random.default_rng(0).standard_normal((1, 12000))).astype(np.float32)
    quiet, loud = model(x)["denoised"].numpy(), model(20 * x)["denoised"].numpy()
    settled = (cfg.history_frames + 4) * cfg.hop_length
    np.testing.assert_allclose(loud[:, settled:], 20 * quiet[:, settled:], atol=1e-3 * np.abs(loud).max())


@pytest.mark.parametrize("variant", VARIANTS)
def test_tflite_twin_matches_the_keras_model(variant):
    cfg = make_config(DenoiserConfig, "tiny", overrides=VARIANTS[variant])
    model, twin = build_denoiser(cfg), build_denoiser(cfg, tflite=True)
    copy_weights(model, twin)
    x = (0.1 * np.random.default_rng(1).standard_normal((1, cfg.tflite_samples))).astype(np.float32)
    np.testing.assert_allclose(twin(x)["denoised"].numpy(), model(x)["denoised"].numpy(), atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_model_save_load_round_trip(tmp_path, variant):
    model = build_denoiser(make_config(DenoiserConfig, "tiny", overrides=VARIANTS[variant]))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    x = (0.1 * np.random.default_rng(2).standard_normal((1, 3000))).astype(np.float32)
    np.testing.assert_allclose(loaded(x)["denoised"].numpy(), model(x)["denoised"].numpy(), atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_mixed_precision_keeps_dsp_and_outputs_float32(variant):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_denoiser(make_config(DenoiserConfig, "tiny", overrides=VARIANTS[variant]))
        out = model(np.full((1, 2000), 0.01, np.float32))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("stft").dtype_policy.compute_dtype == "float32"
    assert out["denoised"].dtype == "float32" and np.all(np.isfinite(out["denoised"].numpy()))


@pytest.mark.parametrize("variant", VARIANTS)
def test_streaming_step_equals_the_offline_model_past_every_window(variant):
    """1.5 s: the mask model's 64-frame long-term average and 8-frame level both roll over; the
    GRU starts from zero state at the first frame in both."""
    cfg = make_config(DenoiserConfig, "tiny", overrides=VARIANTS[variant])
    model = build_denoiser(cfg)
    x = (0.1 * np.random.default_rng(4).standard_normal((1, 12000))).astype(np.float32)
    normalization = model.get_layer("input_normalization")
    shape = [4] + [50 if d is None else d for d in normalization.input.shape[1:]]
    normalization.adapt(np.random.default_rng(5).standard_normal(shape).astype(np.float32) + 3.0)
    step = build_streaming_denoiser(cfg, weights_from=model)
    names = [t.name for t in step.inputs if t.name != "samples"]  # each has a next_<name> output
    state = {t.name: np.zeros((1, *t.shape[1:]), np.float32) for t in step.inputs if t.name in names}
    latency = cfg.latency_samples
    padded = np.pad(x[0], (0, latency + (-x.shape[1]) % 64))
    out = []
    for i in range(0, len(padded), 64):
        result = step({"samples": padded[None, i:i + 64], **state})
        state = {name: result[f"next_{name}"].numpy() for name in names}
        out.append(result["denoised"].numpy()[0])
    streamed = np.concatenate(out)[latency:latency + x.shape[1]]
    np.testing.assert_allclose(streamed, model(x)["denoised"].numpy()[0], atol=1e-5)


def test_lookahead_frames_let_the_gain_see_that_far_ahead_and_no_further():
    """A change at sample n0 reaches back exactly `lookahead` hops further with lookahead."""
    x = (0.1 * np.random.default_rng(8).standard_normal((1, 6000))).astype(np.float32)
    changed = x.copy()
    changed[:, 4000:] *= 3.0
    first_difference = {}
    for frames in (0, 2):
        cfg = make_config(DenoiserConfig, "tiny", overrides=["recurrent_units=8", f"lookahead_frames={frames}"])
        keras.utils.set_random_seed(0)
        model = build_denoiser(cfg)
        diff = np.abs(model(changed)["denoised"].numpy() - model(x)["denoised"].numpy())[0, :4000]
        first_difference[frames] = int(np.argmax(diff > 1e-6))
        assert first_difference[frames] >= 4000 - cfg.frame_length - frames * cfg.hop_length
    assert first_difference[2] == first_difference[0] - 2 * 64
