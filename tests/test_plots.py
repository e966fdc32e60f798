"""Figures: training curves pick what the run logged; signal panels refuse what they would garble."""

from pathlib import Path

import numpy as np
import pytest

from audio_dl import plots
from conftest import sine


def _history(path, columns, epochs=3):
    path.write_text(",".join(["epoch", *columns]) + "\n"
                    + "".join(",".join([str(e)] + ["0.5"] * len(columns)) + "\n" for e in range(epochs)))
    return path


def test_training_curves_draw_every_metric_with_a_validation_twin(tmp_path, monkeypatch):
    history = _history(tmp_path / "history.csv", ["loss", "denoised_loss", "learning_rate", "val_loss", "val_denoised_loss"])
    plots.training_curves(history, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000
    panels = []  # the y labels of each figure saved from here on
    monkeypatch.setattr(plots.plt.Figure, "savefig", lambda fig, *a, **k: panels.append([ax.get_ylabel() for ax in fig.axes]))
    plots.training_curves(history, tmp_path / "curves.png")
    plots.training_curves(history, tmp_path / "lr.png", metrics="learning_rate")  # one name, not its letters
    assert panels == [["loss", "denoised_loss"], ["learning_rate"]]


def test_training_curves_name_what_was_logged_instead_of_an_empty_panel(tmp_path):
    history = _history(tmp_path / "history.csv", ["loss", "val_loss"])  # the matlab preset's history
    with pytest.raises(ValueError, match=r"logs no denoised_loss \(it has: loss, val_loss\)"):
        plots.training_curves(history, tmp_path / "c.png", metrics=("loss", "denoised_loss"))
    with pytest.raises(ValueError, match="logs no epoch yet"):
        plots.training_curves(_history(tmp_path / "empty.csv", ["loss", "val_loss"], epochs=0), tmp_path / "c.png")
    with pytest.raises(ValueError, match="no metric with a val_ twin; name the ones to draw with metrics="):
        plots.training_curves(_history(tmp_path / "train.csv", ["loss", "accuracy"]), tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("signals, message", [
    ({}, "no signals"), ({"noisy": np.stack([sine(300, 0.5, 8000)] * 2, 1)}, r"signal 'noisy' has shape \(4000, 2\)"),
    ({"noisy": np.array([0.1, np.nan] * 1000)}, "not finite"),
])
def test_signal_panels_refuse_several_channels_and_nan(tmp_path, signals, message):
    with pytest.raises(ValueError, match=message):
        plots.waveform_and_spectrogram(signals, 8000, tmp_path / "w.png")
    assert not (tmp_path / "w.png").exists()


def test_a_primer_note_the_model_held_on_is_red_only_up_to_the_continuation(tmp_path, monkeypatch):
    from audio_dl.midi_io import Note

    bars = []  # (colour, start beat, end beat) of every bar saved
    monkeypatch.setattr(plots.plt.Figure, "savefig", lambda fig, *a, **k: bars.extend(
        (tuple(np.round(c.get_facecolor()[0][:3], 2)), *_x_extent(c)) for c in fig.axes[0].collections))
    held = [Note(67, 0, 4), Note(62, 4, 12)]  # played for 4 steps, held by the model 8 steps more
    plots.piano_roll(held, [Note(64, 16, 4)], 4, tmp_path / "roll.png", continued_from=8)
    red, blue = (tuple(np.round(plots.matplotlib.colors.to_rgb(c), 2)) for c in (plots.PRIMER_COLOR, plots.GENERATED_COLOR))
    assert sorted(bars) == sorted([(red, 0.0, 1.0), (red, 1.0, 2.0), (blue, 2.0, 4.0), (blue, 4.0, 5.0)])
    bars.clear()
    plots.piano_roll(held, [Note(64, 16, 4)], 4, tmp_path / "roll.png")  # no split given: the notes as they are
    assert sorted(bars) == sorted([(red, 0.0, 1.0), (red, 1.0, 4.0), (blue, 4.0, 5.0)])


def _x_extent(collection):
    x = collection.get_paths()[0].vertices[:, 0]
    return float(x.min()), float(x.max())


def test_a_figure_that_fails_to_save_leaves_no_file(tmp_path, monkeypatch):
    def interrupted(fig, path, **kwargs):
        Path(path).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(plots.plt.Figure, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        plots.waveform_and_spectrogram({"noisy": sine(300, 0.5, 8000)}, 8000, tmp_path / "w.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["Money $$ talks.wav", "price $5_$6.wav"])  # not math text: it would fail
def test_titles_show_file_names_as_they_are_not_as_math(tmp_path, name):
    from audio_dl.midi_io import Note

    plots.waveform_and_spectrogram({"noisy": sine(300, 0.5, 8000)}, 8000, tmp_path / "w.png", title=name)
    plots.piano_roll([], [Note(64, 0, 4)], 4, tmp_path / "roll.png", title=name)
    assert (tmp_path / "w.png").stat().st_size > 1000 and (tmp_path / "roll.png").stat().st_size > 1000
