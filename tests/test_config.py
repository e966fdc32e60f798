import json

import pytest

from audio_dl.config import (DENOISER_PRESETS, ConfigError, DenoiserConfig, MelodyConfig, load_config, make_config,
                             save_config)


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
    ("learning_rate=inf", "learning_rate must be a finite number, got inf"),
    ("crop_seconds=nan", "crop_seconds must be a finite number"), ("snr_db=nan,nan", "snr_db must be a finite"),
    ("tflite_seconds=inf", "tflite_seconds must be a finite"), ("spectral_weight=nan", "spectral_weight must be"),
    ("window=foo", "window must be one of"), ("seed=-1", "seed"), ("seed=4294967296", "seed"),
    ("speech=", "at least one path"),
    ("rt60_seconds=-1,-0.5", "rt60_seconds must lie in"), ("rt60_seconds=0,0", "rt60_seconds must lie in"),
    ("rt60_seconds=0.05,0.07", r"rt60_seconds must lie in \[0.1, 3\] s"),  # no room rings that short
    ("min_speech_dbfs=10", "min_speech_dbfs must lie in"), ("context_frames=1", "context_frames must be >= 2"),
    ("noise_context_frames=1", "noise_context_frames must be >= 2"),
    ("loss=magnitude_mse", "loss=magnitude_mse needs architecture=fcn16"),
])
def test_bad_values_raise_config_error(override, message):
    with pytest.raises(ConfigError, match=message):
        make_config(DenoiserConfig, "default", overrides=[override])


@pytest.mark.parametrize("reverb_off", ["augment=false", "reverb_probability=0"])
def test_impulse_responses_without_reverb_are_refused_not_ignored(reverb_off):
    assert make_config(DenoiserConfig, "default", overrides=["impulse_responses=rooms"]).impulse_responses == ("rooms",)
    with pytest.raises(ConfigError, match="^impulse_responses are only used for reverb: set augment=true and "
                                          "reverb_probability > 0$"):
        make_config(DenoiserConfig, "default", overrides=["impulse_responses=rooms", reverb_off])


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


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "must hold a JSON object"), ('"abc"', "must hold a JSON object"),
    ('{"snr_db": 5}', "snr_db takes a list of values, got 5"), ('{"speech": null}', "speech takes a list"),
    ('{"epochs": "3"}', "epochs must be an integer, got '3'"), ('{"epochs": 2.5}', "epochs must be an integer"),
    ('{"hidden_units": true}', "hidden_units must be an integer, got True"),
    ('{"augment": 1}', "augment must be a bool"), ('{"learning_rate": Infinity}', "learning_rate must be a finite"),
])
def test_config_files_of_the_wrong_shape_or_type_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        make_config(DenoiserConfig, "tiny", config_file=path)


def test_a_config_file_that_is_not_utf8_or_is_a_folder(tmp_path):
    (tmp_path / "c.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        make_config(DenoiserConfig, "tiny", config_file=tmp_path / "c.json")
    with pytest.raises(ConfigError, match="is a folder"):
        make_config(DenoiserConfig, "tiny", config_file=tmp_path)


def test_integers_are_accepted_for_float_fields(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"learning_rate": 1, "snr_db": [-5, 5]}')
    cfg = make_config(DenoiserConfig, "tiny", config_file=path)
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float) and cfg.snr_db == (-5.0, 5.0)


@pytest.mark.parametrize("overrides, message", [(["pitch_low=60"], "set both pitch_low and pitch_high"),
                                                (["pitch_high=84"], "set both pitch_low and pitch_high"),
                                                (["pitch_low=84", "pitch_high=60"], "low <= high"),
                                                (["pitch_low=-5"], "must be MIDI pitches")])  # not "set both"
def test_a_pitch_range_set_by_half_asks_for_both_ends(overrides, message):
    with pytest.raises(ConfigError, match=message):
        make_config(MelodyConfig, "tiny", overrides=overrides)


@pytest.mark.parametrize("overrides", [["pitch_low=0", "pitch_high=127"], ["pitch_low=0", "pitch_high=0"], []])
def test_every_midi_pitch_can_end_a_range_and_the_range_round_trips(tmp_path, overrides):
    cfg = make_config(MelodyConfig, "tiny", overrides=overrides)
    save_config(cfg, tmp_path / "config.json")
    assert load_config(MelodyConfig, tmp_path / "config.json") == cfg
    assert cfg.pitch_range_is_set == bool(overrides)
