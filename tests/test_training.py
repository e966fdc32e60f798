"""Training library: an interrupted run resumes where it stopped."""

import csv
import json

import keras
import pytest

from audio_dl.config import DenoiserConfig, make_config
from audio_dl.data import speech
from audio_dl.training import compile_denoiser, train_denoiser


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_last_epoch(tmp_path, monkeypatch, tiny_corpus):
    cfg = make_config(DenoiserConfig, "tiny", overrides=["epochs=2", f"speech={tiny_corpus / 'speech'}",
                                                         f"noise={tiny_corpus / 'noise'}"])
    original = keras.callbacks.CSVLogger.on_epoch_end

    def interrupt_after_first_epoch(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(keras.callbacks.CSVLogger, "on_epoch_end", interrupt_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_denoiser(cfg, tmp_path / "run", verbose=0)
    monkeypatch.setattr(keras.callbacks.CSVLogger, "on_epoch_end", original)
    result = train_denoiser(cfg, tmp_path / "run", verbose=0)
    with open(tmp_path / "run" / "history.csv") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs == [0, 1]  # epoch 0 was not trained again
    clock = json.loads((tmp_path / "run" / "train_seconds.json").read_text())
    assert clock["epochs"] == 2 and result.train_seconds == clock["train_seconds"] > 0  # both sessions counted
    assert (result.export_dir / "saved_model.pb").is_file()


@pytest.mark.parametrize("weight_decay, expected", [(0.0, None), (0.2, 0.2)])
def test_weight_decay_reaches_the_optimizer(weight_decay, expected, tiny_corpus):
    cfg = make_config(DenoiserConfig, "tiny", overrides=[f"weight_decay={weight_decay}",
                                                         f"speech={tiny_corpus / 'speech'}",
                                                         f"noise={tiny_corpus / 'noise'}"])
    batches = list(speech.training_dataset(speech.load_corpus(cfg).train, cfg).take(1))
    assert compile_denoiser(cfg, batches).optimizer.weight_decay == expected


def test_a_run_saved_before_a_config_key_existed_resumes_and_a_melody_run_is_named(tmp_path):
    from audio_dl.config import MelodyConfig, save_config, to_dict
    from audio_dl.errors import UsageError
    from audio_dl.training import prepare_run_dir

    cfg = make_config(DenoiserConfig, "tiny")
    old = {k: v for k, v in json.loads(json.dumps(to_dict(cfg))).items() if k != "synthetic_noises"}
    (tmp_path / "old" / "checkpoints").mkdir(parents=True)
    (tmp_path / "old" / "checkpoints" / "best.weights.h5").touch()
    (tmp_path / "old" / "config.json").write_text(json.dumps(old))  # a tuple-valued key it did not know
    prepare_run_dir(tmp_path / "old", cfg)  # the default it lacks is the current value: the same config
    (tmp_path / "melody" / "checkpoints").mkdir(parents=True)
    (tmp_path / "melody" / "checkpoints" / "best.weights.h5").touch()
    save_config(make_config(MelodyConfig, "tiny"), tmp_path / "melody" / "config.json")
    with pytest.raises(UsageError, match="config has keys a DenoiserConfig does not"):
        prepare_run_dir(tmp_path / "melody", cfg)


def test_a_run_interrupted_before_its_first_epoch_ended_takes_another_config(tmp_path):
    """Nothing was trained: its config.json, empty checkpoints/ and logs/ hold nothing to continue."""
    from audio_dl import training
    from audio_dl.config import save_config
    from audio_dl.errors import UsageError
    from audio_dl.training import prepare_run_dir

    run = tmp_path / "run"
    for folder in ("checkpoints", "backup", "logs/train"):
        (run / folder).mkdir(parents=True)
    save_config(make_config(DenoiserConfig, "tiny"), run / "config.json")
    changed = make_config(DenoiserConfig, "tiny", overrides=["epochs=7"])
    prepare_run_dir(run, changed)
    assert json.loads((run / "config.json").read_text())["epochs"] == 7
    (run / training.EpochClock.FILE).write_text('{"train_seconds": 1.0, "epochs": 1}')  # an epoch ended
    with pytest.raises(UsageError, match="holds a run of another config"):  # (with no checkpoint: all NaN)
        prepare_run_dir(run, make_config(DenoiserConfig, "tiny"))
    unread = make_config(DenoiserConfig, "tiny", overrides=[f"speech={tmp_path / 'nowhere'}"])
    with pytest.raises(UsageError, match="holds a run of another config"):  # refused before the data is read
        training.train_denoiser(unread, run)


@pytest.mark.slow
def test_validation_mixtures_are_made_once_for_fit_and_the_final_metrics(tmp_path, monkeypatch, tiny_corpus):
    from audio_dl import distribute, training

    cfg = make_config(DenoiserConfig, "tiny", overrides=["epochs=1", f"speech={tiny_corpus / 'speech'}",
                                                         f"noise={tiny_corpus / 'noise'}"])
    seen = {}
    fit, denoise_batches = distribute.fit, training.denoise_batches

    def recording_fit(*args, **kwargs):
        seen["fit"] = kwargs["validation_data"]
        return fit(*args, **kwargs)

    def recording_denoise_batches(model, dataset):
        seen["metrics"] = dataset
        return denoise_batches(model, dataset)

    monkeypatch.setattr(distribute, "fit", recording_fit)
    monkeypatch.setattr(training, "denoise_batches", recording_denoise_batches)
    train_denoiser(cfg, tmp_path / "run", verbose=0)
    assert seen["fit"] is seen["metrics"]  # one cached dataset: its mixtures are computed once


def test_quiet_training_prints_one_line_per_epoch(tmp_path, capsys):
    import numpy as np

    from audio_dl.training import run_callbacks

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.ones((4, 1), np.float32)
    _, callbacks = run_callbacks(tmp_path, make_config(DenoiserConfig, "tiny"))
    model.fit(x, x, validation_data=(x, x), epochs=3, callbacks=callbacks, verbose=2)  # what --quiet asks for
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    assert all(" - loss: " in line and " - val_loss: " in line and " - learning_rate: " in line for line in lines)


def test_train_denoiser_refuses_a_base_of_melody_models_before_training(tmp_path, capsys, tiny_corpus):
    import shutil

    from audio_dl import cli, train_denoiser

    shutil.copytree("saved_models/melody/5", tmp_path / "melodies" / "1")  # shipped
    run = tmp_path / "run"
    assert cli.run_main(train_denoiser.main, ["--preset", "tiny", "--set", f"speech={tiny_corpus / 'speech'}",
                                              "--set", f"noise={tiny_corpus / 'noise'}", "--run-dir", str(run),
                                              "--export-base", str(tmp_path / "melodies")]) == 2
    assert f"a denoiser model takes waveform; the models in {tmp_path / 'melodies'} take" in capsys.readouterr().err
    assert not run.exists()
