"""Training library: an interrupted run resumes where it stopped."""

import csv
import dataclasses
import json
import os
import re
import tempfile
from pathlib import Path

import keras
import pytest

from audio_dl.config import DenoiserConfig, make_config
from audio_dl.data import speech
from audio_dl import training
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
    streams, training_dataset = [], speech.training_dataset

    def recording_training_dataset(split, cfg, context=None, first_example=0):
        streams.append(first_example)
        return training_dataset(split, cfg, context, first_example)

    monkeypatch.setattr(speech, "training_dataset", recording_training_dataset)
    result = train_denoiser(cfg, tmp_path / "run", verbose=0)
    assert streams[-1] == 1 * cfg.steps_per_epoch * cfg.batch_size  # new mixtures after the epoch it kept
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
def test_validation_mixtures_are_made_once_for_fit_and_the_final_metrics_say_how_many(tmp_path, monkeypatch,
                                                                                      tiny_corpus, capsys, caplog):
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
        return tuple(part[:-1] for part in denoise_batches(model, dataset))  # as if one crop were too quiet

    monkeypatch.setattr(distribute, "fit", recording_fit)
    monkeypatch.setattr(training, "denoise_batches", recording_denoise_batches)
    result = train_denoiser(cfg, tmp_path / "run", verbose=0)
    assert seen["fit"] is seen["metrics"]  # one cached dataset: its mixtures are computed once
    card = (result.export_dir / "MODEL_CARD.md").read_text()
    assert "- 1 epoch x 2 steps x batch 4" in card
    assert "## Validation metrics (3 mixtures of" in card and "Validation (3 mixtures of" in capsys.readouterr().out
    assert "only 3 validation mixtures (val_examples=4)" in caplog.text
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["validation_mixtures"] == 3


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

    shutil.copytree("saved_models/melody/6", tmp_path / "melodies" / "1")  # shipped
    run = tmp_path / "run"
    assert cli.run_main(train_denoiser.main, ["--preset", "tiny", "--set", f"speech={tiny_corpus / 'speech'}",
                                              "--set", f"noise={tiny_corpus / 'noise'}", "--run-dir", str(run),
                                              "--export-base", str(tmp_path / "melodies")]) == 2
    assert f"a denoiser model takes waveform; the models in {tmp_path / 'melodies'} take" in capsys.readouterr().err
    assert not run.exists()


def test_a_glob_in_the_built_corpus_is_not_taken_for_a_missing_corpus(tmp_path, capsys, monkeypatch):
    import shutil

    from audio_dl import cli, train_denoiser

    monkeypatch.chdir(tmp_path)
    glob_args = ["--preset", "tiny", "--set", "speech=data/denoiser/speech/*/*.flac",
                 "--set", "noise=data/denoiser/noise"]
    assert cli.run_main(train_denoiser.main, glob_args) == 2
    assert "data/denoiser/speech does not exist: build the corpus first" in capsys.readouterr().err
    (tmp_path / "data" / "denoiser" / "speech").mkdir(parents=True)
    (tmp_path / "data" / "denoiser" / "noise").mkdir()
    shutil.copytree(Path(__file__).parents[1] / "saved_models" / "melody" / "6", tmp_path / "melodies" / "1")
    assert cli.run_main(train_denoiser.main, [*glob_args, "--export-base", "melodies"]) == 2  # the next check
    assert "a denoiser model takes waveform; the models in melodies take" in capsys.readouterr().err


def test_a_path_spelled_another_way_is_the_same_config_to_the_rerun_check(tmp_path):
    from audio_dl import training
    from audio_dl.errors import UsageError
    from audio_dl.training import prepare_run_dir

    run = tmp_path / "run"
    prepare_run_dir(run, make_config(DenoiserConfig, "tiny", overrides=["speech=data/x,bundled"]))
    (run / training.EpochClock.FILE).write_text('{"train_seconds": 1.0, "epochs": 1}')  # a started run
    for spelling in ("data/x/,bundled", "./data/x,bundled", "data//x,bundled"):
        prepare_run_dir(run, make_config(DenoiserConfig, "tiny", overrides=[f"speech={spelling}"]))
    for other in ("data/y,bundled", "data/x,./bundled", "data/x/*,bundled"):  # ./bundled: a folder, not the corpus
        with pytest.raises(UsageError, match="holds a run of another config"):
            prepare_run_dir(run, make_config(DenoiserConfig, "tiny", overrides=[f"speech={other}"]))
    prepare_run_dir(tmp_path / "globbed", make_config(DenoiserConfig, "tiny", overrides=["speech=data/*/"]))
    (tmp_path / "globbed" / training.EpochClock.FILE).write_text('{"train_seconds": 1.0, "epochs": 1}')
    with pytest.raises(UsageError, match="holds a run of another config"):  # data/*/ lists folders, data/* files too
        prepare_run_dir(tmp_path / "globbed", make_config(DenoiserConfig, "tiny", overrides=["speech=data/*"]))


def test_the_best_epoch_of_a_history_with_a_repeated_and_an_empty_row(tmp_path):
    from audio_dl.training import BestEpoch, best_epoch

    (tmp_path / "history.csv").write_text("epoch,loss,val_loss\n0,1.0,0.5\n1,0.9,0.4\n1,0.9,0.45\n,,\n2,0.8,nan\n")
    assert best_epoch(tmp_path / "history.csv") == BestEpoch(0.4, 1, 2)  # 5 rows, 3 epochs, the NaN one never best


class _WorseFromEpoch(keras.callbacks.Callback):
    """Sets the weights far off during every epoch from `epoch` on (0-based)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.worse_from, self.epoch = epoch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch >= self.worse_from:
            self.model.layers[-1].kernel.assign(keras.ops.full_like(self.model.layers[-1].kernel, 5.0))


class _InterruptAt(keras.callbacks.Callback):
    def __init__(self, epoch: int):
        super().__init__()
        self.at = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt


def test_a_resumed_run_keeps_the_best_checkpoint_and_its_early_stopping_count(tmp_path):
    import numpy as np

    from audio_dl.training import ResumedEarlyStopping, best_epoch, run_callbacks

    cfg = make_config(DenoiserConfig, "tiny", overrides=["learning_rate=0.05", "lr_decay_per_epoch=1.0"])
    x = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32)
    y = x @ np.ones((4, 1), np.float32)

    def fit(epochs, *extra):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(0.05), "mse")
        checkpoint, callbacks = run_callbacks(tmp_path, cfg)
        stopping = ResumedEarlyStopping(tmp_path / "history.csv", monitor="val_loss", patience=2)
        try:
            model.fit(x, y, validation_data=(x, y), epochs=epochs, callbacks=[*callbacks, stopping, *extra], verbose=0)
        except KeyboardInterrupt:
            pass
        return model, checkpoint

    fit(8, _WorseFromEpoch(2), _InterruptAt(3))  # epochs 1-2 improve, epoch 3 is far worse, then it stops
    model, checkpoint = fit(8, _WorseFromEpoch(2))  # resumed at epoch 4, as bad
    best = best_epoch(tmp_path / "history.csv")
    assert best.epoch == 1 and best.last_epoch == 3  # patience 2 ran out at epoch 4: epoch 3 counted
    model.load_weights(str(checkpoint))
    assert model.evaluate(x, y, verbose=0) == pytest.approx(best.val_loss, rel=1e-5)


def test_a_run_whose_checkpoint_is_gone_saves_its_next_epoch(tmp_path):
    from audio_dl.training import run_callbacks

    (tmp_path / "history.csv").write_text("epoch,loss,val_loss\n0,1.0,0.5\n")

    def threshold():
        _, callbacks = run_callbacks(tmp_path, make_config(DenoiserConfig, "tiny"))
        return next(c for c in callbacks if isinstance(c, keras.callbacks.ModelCheckpoint)).best

    assert threshold() is None  # no weights to keep: any epoch replaces nothing
    (tmp_path / "checkpoints" / "best.weights.h5").touch()
    assert threshold() == 0.5


def test_a_melody_run_of_another_config_is_refused_before_the_tunes_are_read(tmp_path, monkeypatch):
    """Its saved config holds the range the tunes set; an unset range (-1) is not a difference."""
    from audio_dl import melody_training, training
    from audio_dl.config import MelodyConfig, save_config
    from audio_dl.data import melody as melody_data
    from audio_dl.errors import UsageError

    run = tmp_path / "run"
    run.mkdir()
    tiny = make_config(MelodyConfig, "tiny")
    save_config(dataclasses.replace(tiny, pitch_low=55, pitch_high=79), run / "config.json")
    (run / training.EpochClock.FILE).write_text('{"train_seconds": 1.0, "epochs": 1}')  # a started run
    read = []
    monkeypatch.setattr(melody_data, "load_corpus", lambda cfg: read.append(cfg) or pytest.fail("read the tunes"))
    with pytest.raises(UsageError, match=r"holds a run of another config \(lstm_units: 16 -> 24\)"):
        melody_training.train_melody(dataclasses.replace(tiny, lstm_units=24), run)
    with pytest.raises(UsageError, match=r"another config \(pitch_high: 79 -> 80\)"):  # a range set by the user
        melody_training.train_melody(dataclasses.replace(tiny, pitch_low=55, pitch_high=80), run)
    monkeypatch.setattr(melody_data, "load_corpus", lambda cfg: read.append(cfg) or pytest.skip("reached"))
    with pytest.raises(pytest.skip.Exception):  # the same config, its range still to be set by the tunes
        melody_training.train_melody(tiny, run)
    assert read == [tiny]


def test_a_run_or_temporary_folder_whose_path_is_not_utf8_is_refused_before_the_data_is_read(tmp_path, monkeypatch):
    """TensorBoard and BackupAndRestore take the path as a TF string, which must be UTF-8."""
    from audio_dl import melody_training, training
    from audio_dl.config import MelodyConfig
    from audio_dl.data import melody as melody_data
    from audio_dl.errors import UsageError

    run = tmp_path / os.fsdecode(b"caf\xe9") / "run"
    monkeypatch.setattr(speech, "load_corpus", lambda cfg: pytest.fail("read the corpus"))
    monkeypatch.setattr(melody_data, "load_corpus", lambda cfg: pytest.fail("read the tunes"))
    message = re.escape(f"run folder {tmp_path}/caf\\xe9/run: TensorFlow writes there and takes only UTF-8 paths")
    with pytest.raises(UsageError, match=message):
        training.train_denoiser(make_config(DenoiserConfig, "tiny"), run)
    with pytest.raises(UsageError, match=message):
        melody_training.train_melody(make_config(MelodyConfig, "tiny"), run)
    assert not run.parent.exists()
    temporary = tmp_path / os.fsdecode(b"t\xe9mp")  # autograph writes there
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    message = re.escape(f"the temporary folder {tmp_path}/t\\xe9mp is not a UTF-8 path")
    with pytest.raises(UsageError, match=message):
        training.train_denoiser(make_config(DenoiserConfig, "tiny"), tmp_path / "run")
    with pytest.raises(UsageError, match=message):
        melody_training.train_melody(make_config(MelodyConfig, "tiny"), tmp_path / "run")
    with pytest.raises(UsageError, match=message):  # a notebook builds its data before it trains
        speech.validation_dataset(None, make_config(DenoiserConfig, "tiny"))
    assert not (tmp_path / "run").exists()


def test_a_run_folder_that_cannot_be_made_is_refused_before_the_data_is_read(tmp_path, monkeypatch):
    """Under a file, under a symbolic link loop, or a name too long: also the default runs/<preset>."""
    from audio_dl import melody_training, training
    from audio_dl.config import MelodyConfig
    from audio_dl.data import melody as melody_data
    from audio_dl.errors import UsageError

    monkeypatch.setattr(speech, "load_corpus", lambda cfg: pytest.fail("read the corpus"))
    monkeypatch.setattr(melody_data, "load_corpus", lambda cfg: pytest.fail("read the tunes"))
    (tmp_path / "file").write_text("x")
    (tmp_path / "loop").symlink_to("loop")
    for run, message in ((tmp_path / "file" / "run", "file is a file, not a folder"),
                         (tmp_path / "loop" / "run", "loop: Too many levels of symbolic links"),
                         (tmp_path / ("r" * 300), "is too long for the file system")):
        with pytest.raises(UsageError, match=message):
            training.train_denoiser(make_config(DenoiserConfig, "tiny"), run)
        with pytest.raises(UsageError, match=message):
            melody_training.train_melody(make_config(MelodyConfig, "tiny"), run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "loop"]


def test_a_resumed_run_is_told_which_epochs_were_scored_on_another_validation_set(tmp_path, caplog):
    def resume(epochs, digest):
        (tmp_path / training.EpochClock.FILE).write_text(json.dumps({"train_seconds": 1.0, "epochs": epochs}))
        caplog.clear()
        training.check_validation_set(tmp_path, digest)
        found = re.search(r"epochs (\d+)\.\.(\d+) of .* were scored on another validation set", caplog.text)
        return found and (int(found[1]), int(found[2]))

    assert resume(0, "A") is None  # a new run records its set
    assert resume(2, "A") is None
    assert resume(3, "B") == (1, 3)  # the set changed: epochs 1..3 were scored on A
    assert resume(6, "B") == (1, 3)  # and they still were
    assert resume(8, "A") == (4, 8)  # back to A: epochs 4..8 were scored on B
    (tmp_path / training.VALIDATION_RECORD).write_text("[1]")  # broken by hand: recorded again, with a warning
    assert resume(9, "A") is None and "is not a JSON object: the validation set is recorded again" in caplog.text
    assert resume(10, "A") is None
