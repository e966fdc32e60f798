import json

import pytest

from audio_dl.config import DENOISER_PRESETS, ConfigError, DenoiserConfig, load_config, make_config, save_config


@pytest.mark.parametrize("preset", sorted(DENOISER_PRESETS))
def test_presets_build(preset):
    cfg = make_config(DenoiserConfig, preset)
    assert cfg.n_bins == 129 and cfg.frame_length == 256 and cfg.hop_length == 64


def test_matlab_preset_matches_the_demo():
    cfg = make_config(DenoiserConfig, "matlab")
    assert (cfg.architecture, cfg.epochs, cfg.batch_size, cfg.snr_db, cfg.augment) == ("fcn16", 3, 128, (0.0, 0.0), False)


def test_overrides_are_typed():
    cfg = make_config(DenoiserConfig, "default", overrides=["snr_db=-5,10", "epochs=2", "augment=false",
                                                            "speech=a,b", "synthetic_noises=rotor,chirps"])
    assert cfg.snr_db == (-5.0, 10.0) and cfg.epochs == 2 and cfg.augment is False and cfg.speech == ("a", "b")
    assert cfg.synthetic_noises == ("rotor", "chirps")


@pytest.mark.parametrize("override, message", [
    ("epochs=0", "epochs"), ("snr_db=10,-5", "snr_db"), ("architecture=resnet", "architecture"),
    ("nonsense=1", "unknown"), ("epochs=three", "not a valid"), ("high_cut_hz=3000,4100", "Nyquist"),
    ("epochs", "key=value"), ("snr_db=5", "two values"), ("recurrent_units=-1", "recurrent_units"),
    ("weight_decay=-0.1", "weight_decay"), ("synthetic_noises=colored,wind", "synthetic_noises"),
])
def test_bad_values_raise_config_error(override, message):
    with pytest.raises(ConfigError, match=message):
        make_config(DenoiserConfig, "default", overrides=[override])


@pytest.mark.parametrize("override", ["recurrent_units=32", "noise_minimum=true"])
def test_mask_model_options_need_the_mask_model(override):
    with pytest.raises(ConfigError, match=f"{override.split('=')[0]} needs architecture=mask"):
        make_config(DenoiserConfig, "matlab", overrides=[override])


def test_config_file_and_round_trip(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": 7, "snr_db": [-5, 5]}))
    cfg = make_config(DenoiserConfig, "tiny", config_file=path, overrides=["batch_size=3"])
    assert (cfg.epochs, cfg.snr_db, cfg.batch_size) == (7, (-5, 5), 3)
    save_config(cfg, tmp_path / "saved.json")
    assert load_config(DenoiserConfig, tmp_path / "saved.json") == cfg


def test_unknown_preset_and_missing_file():
    with pytest.raises(ConfigError, match="unknown preset"):
        make_config(DenoiserConfig, "nope")
    with pytest.raises(ConfigError, match="not found"):
        make_config(DenoiserConfig, "default", config_file="/does/not/exist.json")


def test_a_string_in_a_config_file_is_one_path(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"speech": "/data/speech"}))
    assert make_config(DenoiserConfig, "tiny", config_file=path).speech == ("/data/speech",)
