"""Exports: SavedModel signature, TFLite under ai_edge_litert, parity, atomic writes, versions."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from audio_dl import export
from audio_dl.config import DenoiserConfig, make_config
from audio_dl.litert import FixedShapeRunner, signature_runner
from audio_dl.models.denoiser import build_denoiser
from audio_dl.streaming import STREAMING_INT8_TFLITE_NAME, STREAMING_TFLITE_NAME, StreamingDenoiser


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    cfg = make_config(DenoiserConfig, "tiny")
    model = build_denoiser(cfg)
    target = tmp_path_factory.mktemp("export") / "denoiser" / "1"
    errors = export.export_denoiser(model, cfg, target, "# card {export_errors}\n", {"source": "local run"})
    return cfg, model, target, errors


def test_serving_signature_returns_audio_of_the_same_length(exported):
    cfg, model, target, errors = exported
    signature = tf.saved_model.load(str(target)).signatures["serving_default"]
    x = tf.constant((0.1 * np.random.default_rng(0).standard_normal((3, 5001))).astype(np.float32))
    out = signature(waveform=x)
    assert list(out) == ["denoised"] and out["denoised"].shape == (3, 5001)
    np.testing.assert_allclose(out["denoised"].numpy(), model(x)["denoised"].numpy(), atol=export.SAVED_MODEL_TOLERANCE)


def test_saved_model_stores_each_weight_once(exported):
    cfg, model, target, errors = exported
    stored = tf.train.load_checkpoint(str(target / "variables" / "variables")).get_variable_to_shape_map()
    values = sum(int(np.prod(shape)) for name, shape in stored.items() if name.endswith("VARIABLE_VALUE"))
    assert values <= model.count_params()  # keras#23553 would store every weight twice


def test_tflite_runs_under_ai_edge_litert_with_builtin_ops(exported):
    cfg, model, target, errors = exported
    x = (0.1 * np.random.default_rng(1).standard_normal((1, cfg.tflite_samples))).astype(np.float32)
    out = export.run_tflite(target / export.TFLITE_NAME, {"waveform": x})["denoised"]
    np.testing.assert_allclose(out, model(x)["denoised"].numpy(), atol=export.TFLITE_TOLERANCE)
    assert errors["tflite_max_abs_error"] <= export.TFLITE_TOLERANCE


def test_export_folder_is_complete(exported):
    cfg, model, target, errors = exported
    names = {p.name for p in target.iterdir()}
    assert {"saved_model.pb", "variables", "denoiser.tflite", "denoiser_streaming.tflite", "denoiser_int8.tflite",
            "denoiser_fp16.tflite", "denoiser_streaming_int8.tflite", "config.json", "MODEL_CARD.md",
            "provenance.json"} <= names
    assert json.loads((target / "config.json").read_text())["hidden_units"] == cfg.hidden_units
    assert "saved_model_max_abs_error" in (target / "MODEL_CARD.md").read_text()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_a_mismatching_tflite_model_fails_the_check(exported, tmp_path):
    cfg, model, target, errors = exported
    other = tmp_path / "other"
    shutil.copytree(target, other)
    untrained = build_denoiser(cfg, tflite=True)  # same graph, other weights
    (other / export.TFLITE_NAME).write_bytes(export.convert_tflite(untrained))
    with pytest.raises(export.ExportError, match="does not match"):
        export.verify_denoiser_export(model, other, cfg)


def test_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    cfg = make_config(DenoiserConfig, "tiny")

    def fail(*args):
        raise export.ExportError("does not match (simulated)")

    monkeypatch.setattr(export, "verify_denoiser_export", fail)
    with pytest.raises(export.ExportError):
        export.export_denoiser(build_denoiser(cfg), cfg, tmp_path / "denoiser" / "1", "card", {})
    assert list((tmp_path / "denoiser").iterdir()) == []


def test_streaming_model_equals_the_offline_model_after_its_latency(exported):
    cfg, model, target, errors = exported
    x = (0.1 * np.random.default_rng(3).standard_normal(3000)).astype(np.float32)
    stream = StreamingDenoiser(target / STREAMING_TFLITE_NAME)
    assert stream.latency == 192 and stream.hop == 64
    np.testing.assert_allclose(stream.denoise(x), model(x[None])["denoised"].numpy()[0], atol=export.TFLITE_TOLERANCE)
    assert errors["streaming_tflite_max_abs_error"] <= export.TFLITE_TOLERANCE
    for block in (x[:63], x[:64].reshape(32, 2)):
        with pytest.raises(ValueError, match=r"one hop of 64 samples, not shape \((63,|32, 2)\)"):
            stream.process(block)
    with pytest.raises(ValueError, match=r"has shape \(1500, 2\); pass one channel, float \[n\]$"):
        stream.denoise(x.reshape(1500, 2))
    with pytest.raises(ValueError, match="holds int16 samples"):
        stream.denoise((x * 32767).astype(np.int16))


def test_fixed_shape_runner_answers_as_the_signature_runner_does(exported):
    cfg, model, target, errors = exported
    path = target / STREAMING_TFLITE_NAME
    fixed, reference = FixedShapeRunner(path), signature_runner(path)
    rng = np.random.default_rng(8)
    for _ in range(3):  # repeated calls: nothing of one call leaks into the next
        inputs = {name: rng.standard_normal(d["shape"]).astype(np.float32) for name, d in fixed.input_details.items()}
        ours, theirs = fixed(**inputs), reference(**inputs)
        assert ours.keys() == theirs.keys()
        for name in ours:
            np.testing.assert_array_equal(ours[name], theirs[name])
    with pytest.raises(ValueError, match="expected inputs"):
        fixed(samples=inputs["samples"])


def test_a_tflite_of_any_input_length_runs_through_the_signature_runner():
    """A dynamic dimension ([1, -1]) is allocated at the caller's length, not before it is known."""
    import keras

    inputs = keras.Input((None,), batch_size=1, name="x")
    model = keras.Model(inputs, {"denoised": keras.layers.Reshape((-1, 16))(inputs) * 2.0})
    out = signature_runner(export.convert_tflite(model))(x=np.ones((1, 64), np.float32))
    np.testing.assert_array_equal(out["denoised"], np.full((1, 4, 16), 2.0, np.float32))


def test_gru_and_lookahead_export_and_stream(tiny_gru_lookahead_export):
    errors = json.loads((tiny_gru_lookahead_export.parent / "export_errors.json").read_text())
    assert max(errors["tflite_max_abs_error"], errors["streaming_tflite_max_abs_error"]) <= export.TFLITE_TOLERANCE
    stream = StreamingDenoiser(tiny_gru_lookahead_export / STREAMING_TFLITE_NAME)
    assert stream.state_shapes["recurrent_state"] == (1, 16) and stream.latency == 192 + 2 * 64
    x = (0.1 * np.random.default_rng(6).standard_normal(4000)).astype(np.float32)
    served = tf.saved_model.load(str(tiny_gru_lookahead_export)).signatures["serving_default"]
    offline = served(waveform=tf.constant(x[None]))["denoised"].numpy()[0]
    np.testing.assert_allclose(stream.denoise(x), offline, atol=export.TFLITE_TOLERANCE)


def test_publishing_never_outranks_silently(exported, tiny_export, tmp_path):
    cfg, model, target, errors = exported
    base = tmp_path / "serving"
    first = export.publish(target, base, shipped=True)
    assert first.name == "1" and export.next_version(base) == 2
    assert json.loads((first / "provenance.json").read_text())["source"] == "shipped"
    assert json.loads((target / "provenance.json").read_text())["source"] == "local run"  # the source is untouched
    assert export.shipped_versions(base) == [1]
    assert [export.will_publish(base, policy) for policy in ("auto", "always", "never")] == [False, True, False]
    assert export.will_publish(tmp_path / "nothing-yet", "auto")
    assert export.publish(tiny_export, base).name == "2"
    with pytest.raises(export.UsageError, match="already exists"):
        export.publish(tiny_export, base, version=1)


def test_publishing_refuses_what_is_not_a_new_model_of_the_same_kind(exported, tmp_path):
    cfg, model, target, errors = exported
    assert export.serving_inputs(target) == export.SERVING_INPUTS["denoiser"]  # what training checks up front
    assert export.serving_inputs(Path("saved_models/melody/6")) == export.SERVING_INPUTS["melody"]
    base = tmp_path / "serving"
    export.publish(target, base)
    with pytest.raises(export.UsageError, match=f"already published as {base / '1'}"):
        export.publish(target, base)
    with pytest.raises(export.UsageError, match="takes max_steps, primer, seed, temperature, top_k; the models in"):
        export.publish("saved_models/melody/6", base)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(target, corrupt)
    (corrupt / "saved_model.pb").write_bytes(b"not a protocol buffer")
    with pytest.raises(export.UsageError, match="is not a readable SavedModel"):
        export.publish(corrupt, base)
    (corrupt / "saved_model.pb").unlink()
    with pytest.raises(export.UsageError, match="no saved_model.pb"):
        export.publish(corrupt, base)
    no_config = tmp_path / "no_config"
    shutil.copytree(target, no_config)
    (no_config / "config.json").unlink()
    with pytest.raises(export.UsageError, match="no config.json"):
        export.publish(no_config, base)
    assert sorted(export.versions(base)) == [1]


def test_quantized_variants_are_smaller_and_measured(exported):
    cfg, model, target, errors = exported
    assert errors["dynamic_int8_kilobytes"] < errors["float16_kilobytes"] < errors["float32_kilobytes"]
    assert errors["dynamic_int8_snr_db_vs_float"] > 10 and errors["float16_snr_db_vs_float"] > 30
    x = (0.1 * np.random.default_rng(4).standard_normal((1, cfg.tflite_samples))).astype(np.float32)
    for name in export.QUANTIZED_TFLITE_NAMES.values():
        assert export.run_tflite(target / name, x)["denoised"].shape == x.shape
    assert errors["streaming_dynamic_int8_snr_db_vs_float"] > 10
    assert errors["streaming_dynamic_int8_kilobytes"] < (target / STREAMING_TFLITE_NAME).stat().st_size / 1024


@pytest.mark.parametrize("fixture", ["tiny_export", "tiny_dilated_export"])
def test_weights_read_back_from_an_export_reproduce_it(request, fixture):
    folder = request.getfixturevalue(fixture)
    model, cfg = export.denoiser_from_export(folder)
    x = (0.1 * np.random.default_rng(5).standard_normal((2, 9001))).astype(np.float32)
    served = tf.saved_model.load(str(folder)).signatures["serving_default"]
    np.testing.assert_allclose(model(x)["denoised"].numpy(), served(waveform=tf.constant(x))["denoised"].numpy(),
                               atol=export.SAVED_MODEL_TOLERANCE)


def test_the_int8_streaming_model_can_be_added_to_an_earlier_export(tiny_dilated_export, tmp_path):
    earlier = tmp_path / "3"
    shutil.copytree(tiny_dilated_export, earlier)
    (earlier / STREAMING_INT8_TFLITE_NAME).unlink()
    assert export.main(["add-streaming-int8", str(earlier)]) == 0
    x = _speechlike_noise(0.6)
    stream = StreamingDenoiser(earlier / STREAMING_TFLITE_NAME)
    quantized = StreamingDenoiser(earlier / STREAMING_INT8_TFLITE_NAME)
    assert np.max(np.abs(quantized.denoise(x) - stream.denoise(x))) < 0.1 * np.max(np.abs(x))
    assert not [p for p in earlier.iterdir() if p.name.startswith(".")]  # no staging left


def test_adding_int8_that_cannot_be_measured_leaves_no_int8_model(tiny_dilated_export, tmp_path, monkeypatch):
    """Its quality is measured against the float streaming model before the file is committed; an
    export without that model is refused with the command that writes both."""
    earlier = tmp_path / "3"
    shutil.copytree(tiny_dilated_export, earlier)
    (earlier / STREAMING_INT8_TFLITE_NAME).unlink()
    monkeypatch.setattr(export, "_snr_db", lambda *args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        export.add_streaming_int8(earlier)
    (earlier / STREAMING_TFLITE_NAME).unlink()  # an export older than streaming
    with pytest.raises(export.UsageError, match=f"has no {STREAMING_TFLITE_NAME} to measure .* a new export holds both: "
                       f"`python -m audio_dl.export reexport {earlier}` makes one"):
        export.add_streaming_int8(earlier)
    assert sorted(p.name for p in earlier.iterdir()) == sorted(p.name for p in tiny_dilated_export.iterdir()
                                                               if p.name not in (STREAMING_INT8_TFLITE_NAME,
                                                                                 STREAMING_TFLITE_NAME))


def test_adding_int8_to_a_folder_that_is_not_an_export_is_one_line_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "audio_dl.export", "add-streaming-int8", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and f"{tmp_path} is not an exported model (no saved_model.pb)" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("folder, message", [
    ("missing", "path does not exist"), ("melody", "is not a denoiser export (its SavedModel does not take a waveform)"),
    ("no_config", "is not a denoiser export: .*config.json not found"),
])
def test_adding_int8_says_why_a_folder_is_not_a_denoiser_export(exported, tmp_path, folder, message):
    paths = {"missing": tmp_path / "missing", "melody": "saved_models/melody/6", "no_config": tmp_path / "no_config"}
    shutil.copytree(exported[2], tmp_path / "no_config")
    (tmp_path / "no_config" / "config.json").unlink()
    (tmp_path / "no_config" / STREAMING_INT8_TFLITE_NAME).unlink()  # else that is what it is refused for
    with pytest.raises(export.UsageError, match=re.escape(message).replace(r"\.\*", ".*")):
        export.add_streaming_int8(paths[folder])


def _speechlike_noise(seconds, rate=8000):
    return (0.1 * np.random.default_rng(6).standard_normal(int(seconds * rate))).astype(np.float32)


def test_a_denoiser_reexport_is_the_next_version_with_the_same_weights(tiny_export, tmp_path):
    earlier = tmp_path / "denoiser" / "3"
    shutil.copytree(tiny_export, earlier)
    assert export.main(["reexport", str(earlier)]) == 0
    again = tmp_path / "denoiser" / "4"
    x = _speechlike_noise(0.7)[None]
    served = [tf.saved_model.load(str(v)).signatures["serving_default"] for v in (earlier, again)]
    np.testing.assert_array_equal(*(s(waveform=tf.constant(x))["denoised"].numpy() for s in served))
    before, after = (json.loads((v / "provenance.json").read_text()) for v in (earlier, again))
    assert after == {**before, "reexported_from_version": 3}  # model_sha256 included: the same weights
    assert export.published_as(again, earlier.parent) == earlier  # the same model all the same
    card = (again / "MODEL_CARD.md").read_text()
    assert card.startswith("card {") and "\n\n## Export checks\nVersion 3 re-exported with `python -m" in card
    assert '"saved_model_max_abs_error": 0.0' in card and "{export_errors}" not in card
    with pytest.raises(export.UsageError, match="is not the newest version .* \\(that is 4\\)"):
        export.reexport(earlier)  # a copy of 3 would replace 4 as the version served


@pytest.mark.slow
def test_an_fcn16_export_is_read_back_for_a_reexport(tmp_path):
    from audio_dl.training import adapt_normalization

    cfg = make_config(DenoiserConfig, "tiny", overrides=["architecture=fcn16", "loss=magnitude_mse"])
    model = build_denoiser(cfg)  # two normalisation layers: four captured statistics
    x = _speechlike_noise(0.5)[None]
    adapt_normalization(model, [(x, {"denoised": 0.5 * x})], cfg)
    first = tmp_path / "denoiser" / "1"
    export.export_denoiser(model, cfg, first, "card {export_errors}", {"source": "local run"})
    assert export.main(["reexport", str(first)]) == 0
    before, after = (json.loads((tmp_path / "denoiser" / v / "provenance.json").read_text()) for v in ("1", "2"))
    assert after == {**before, "reexported_from_version": 1}  # the same model_sha256: the same weights


def test_reexporting_an_export_outside_a_numbered_version_folder_is_one_line(tiny_export, tmp_path):
    shutil.copytree(tiny_export, tmp_path / "my_denoiser")
    with pytest.raises(export.UsageError, match="my_denoiser is not a version folder of a TF Serving base path"):
        export.reexport(tmp_path / "my_denoiser")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_denoiser"]


@pytest.mark.parametrize("text", ['{"source": "shipped",}', '["shipped"]'])
def test_a_provenance_that_is_not_a_json_object_reads_as_none(tiny_export, tmp_path, caplog, text):
    version = tmp_path / "denoiser" / "1"
    shutil.copytree(tiny_export, version)
    (version / "provenance.json").write_text(text)
    assert export.versions(version.parent) == {1: {}} and export.will_publish(version.parent, "auto")
    assert f"{version / 'provenance.json'} is not a JSON object: read as no provenance" in caplog.text


@pytest.mark.parametrize("broken", ["base/1", "run"])
def test_a_broken_provenance_is_warned_about_once(tiny_export, tmp_path, caplog, capsys, broken):
    """publish --ship reads the source's provenance.json twice and each version's under --base five
    times: one warning for the broken file, not one for each read."""
    for folder in ("base/1", "run"):
        shutil.copytree(tiny_export, tmp_path / folder)
    _another_export(tmp_path / "base" / "1")
    (tmp_path / broken / "provenance.json").write_text('{"source": "shipped",}')
    assert export.main(["publish", str(tmp_path / "run"), "--base", str(tmp_path / "base"), "--ship"]) == 0
    assert caplog.text.count("is not a JSON object: read as no provenance") == 1
    assert sorted(export.versions(tmp_path / "base")) == [1, 2]
    caplog.clear()  # a second command in the process (a notebook) warns again
    with pytest.raises(export.UsageError, match="already published as"):
        export.main(["publish", str(tmp_path / "run"), "--base", str(tmp_path / "base"), "--ship"])
    assert caplog.text.count("is not a JSON object: read as no provenance") == 1


def _another_export(version_dir: Path) -> None:
    """Make a copy of an export look like another export: its own model_sha256 and fingerprint uuid."""
    from tensorflow.core.protobuf import fingerprint_pb2

    provenance = json.loads((version_dir / "provenance.json").read_text())
    (version_dir / "provenance.json").write_text(json.dumps({**provenance, "model_sha256": "0" * 64}))
    fingerprint = fingerprint_pb2.FingerprintDef.FromString((version_dir / "fingerprint.pb").read_bytes())
    fingerprint.uuid = "another"
    (version_dir / "fingerprint.pb").write_bytes(fingerprint.SerializeToString())


@pytest.mark.parametrize("broken", ["base/1", "run"])
def test_a_model_is_known_as_published_by_its_fingerprint_where_a_provenance_is_broken(tiny_export, tmp_path,
                                                                                      broken):
    for folder in ("base/1", "run"):  # the same export, published before
        shutil.copytree(tiny_export, tmp_path / folder)
    (tmp_path / broken / "provenance.json").write_text("{")
    with pytest.raises(export.UsageError, match=f"already published as {tmp_path / 'base' / '1'}"):
        export.publish(tmp_path / "run", tmp_path / "base")
    for folder in ("base/1", "run"):
        shutil.copy(tiny_export / "provenance.json", tmp_path / folder)
    _another_export(tmp_path / "base" / "1")  # another model: published
    (tmp_path / broken / "provenance.json").write_text("{")
    assert export.publish(tmp_path / "run", tmp_path / "base") == tmp_path / "base" / "2"


def test_a_card_gets_the_new_export_checks_in_place_of_the_old():
    card = "# Model\n\n## Export checks\n{\"error\": 1.0}\nTFLite input: [1, 8000]\n\n## Metrics\nm\n"
    assert export._card_with_new_checks(card, "Re-exported.", "{checks}") == (
        "# Model\n\n## Export checks\nRe-exported.\n{checks}\nTFLite input: [1, 8000]\n\n## Metrics\nm\n")
    assert export._card_with_new_checks("# Model\n", "Re-exported.", "{checks}") == (
        "# Model\n\n## Export checks\nRe-exported.\n{checks}\n")


def test_reexporting_a_folder_that_is_not_an_export_is_one_line_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "audio_dl.export", "reexport", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and f"{tmp_path} is not an exported model (no saved_model.pb)" in result.stderr
    assert "Traceback" not in result.stderr


def test_publish_without_base_goes_to_the_base_of_the_models_family(tiny_export, tmp_path, monkeypatch, capsys):
    melody = Path("saved_models/melody/6").resolve()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        export.main(["publish", "--help"])
    assert "saved_models/melody for a melody model" in " ".join(capsys.readouterr().out.split())
    assert export.main(["publish", str(melody)]) == 0
    assert f"as {Path('saved_models/melody/1')};" in capsys.readouterr().out
    assert export.main(["publish", str(tiny_export)]) == 0
    assert sorted(export.versions("saved_models/melody")) == sorted(export.versions("saved_models/denoiser")) == [1]
    assert export.serving_inputs(Path("saved_models/melody/1")) == export.SERVING_INPUTS["melody"]


def test_adding_int8_to_an_export_that_has_it_is_one_line_exit_2_and_changes_nothing(tiny_export, tmp_path, capsys,
                                                                                      monkeypatch):
    from audio_dl import cli

    version = tmp_path / "4"
    shutil.copytree(tiny_export, version)
    monkeypatch.setattr(export, "denoiser_from_export", lambda path: pytest.fail("loaded before the check"))
    before = {p.name: p.read_bytes() for p in version.iterdir() if p.is_file()}
    assert cli.run_main(export.main, ["add-streaming-int8", str(version)]) == 2
    assert capsys.readouterr().err == (f"python -m audio_dl.export: error: {version} already has "
                                       f"{STREAMING_INT8_TFLITE_NAME}\n")
    assert {p.name: p.read_bytes() for p in version.iterdir() if p.is_file()} == before


def test_a_base_of_the_other_family_is_refused_before_training_unless_the_run_is_not_published(tiny_export, tmp_path,
                                                                                                  capsys):
    base = tmp_path / "denoisers"
    export.publish(tiny_export, base, shipped=True)
    for policy in ("auto", "always"):
        with pytest.raises(export.UsageError, match=f"a melody model takes .*; the models in {base} take waveform"):
            export.check_publish_target(base, policy, "melody")
    export.check_publish_target(base, "auto", "denoiser")
    export.check_publish_target(base, "never", "melody")  # the base is not used
    run = tmp_path / "run"
    export.publish_run(Path("saved_models/melody/6"), run, base, "never")
    assert capsys.readouterr().out.endswith(f"not published (--publish never); to serve this run as a new version:\n"
                                            f"  python -m audio_dl.export publish {run}\n")  # its family's base
    export.publish_run(tiny_export, run, base, "never")
    assert capsys.readouterr().out.endswith(f"  python -m audio_dl.export publish {run} --base {base}\n")


def test_a_training_run_directory_stands_for_its_newest_export(exported, tmp_path):
    """`--model runs/x` (the folder a user trained into) loads runs/x/export/<newest>."""
    from audio_dl import compose, inference

    cfg, model, target, errors = exported
    shutil.copytree(target, tmp_path / "denoiser-run" / "export" / "1")
    assert inference.load_denoiser(tmp_path / "denoiser-run").path == tmp_path / "denoiser-run" / "export" / "1"
    shutil.copytree("saved_models/melody/6", tmp_path / "melody-run" / "export" / "2")
    assert compose.resolve_export(tmp_path / "melody-run") == tmp_path / "melody-run" / "export" / "2"
    assert export.newest_export(tmp_path) is None


def test_the_streaming_check_runs_past_the_models_memory_and_a_nan_output_fails_it(tiny_dilated_export,
                                                                                   monkeypatch):
    """The hop-by-hop run lasts the model's whole memory and 64 hops more (a state that rolls
    wrong shows only once it is full); NaN fails the check, not max() of the errors."""
    model, cfg = export.denoiser_from_export(tiny_dilated_export)
    lengths, denoise = [], StreamingDenoiser.denoise
    monkeypatch.setattr(StreamingDenoiser, "denoise", lambda self, w: lengths.append(len(w)) or denoise(self, w))
    export.verify_denoiser_export(model, tiny_dilated_export, cfg)
    assert min(lengths) >= (cfg.history_frames + 64) * cfg.hop_length
    monkeypatch.setattr(StreamingDenoiser, "denoise", lambda self, w: np.full(len(w), np.nan, np.float32))
    with pytest.raises(export.ExportError, match="does not match"):
        export.verify_denoiser_export(model, tiny_dilated_export, cfg)


@pytest.mark.parametrize("given", ["run", "run/export"])
def test_publish_takes_a_run_or_its_export_folder(tiny_export, tmp_path, capsys, given):
    shutil.copytree(tiny_export, tmp_path / "run" / "export" / "3")
    assert export.main(["publish", str(tmp_path / given), "--base", str(tmp_path / "base")]) == 0
    assert f"published {tmp_path / 'run' / 'export' / '3'} as {tmp_path / 'base' / '1'};" in capsys.readouterr().out


def test_every_savedmodel_loader_says_why_a_folder_whose_name_is_not_utf8_does_not_load(tiny_export, tiny_melody_run,
                                                                                          tmp_path, monkeypatch):
    """TensorFlow takes a path as UTF-8 text, even given bytes: one line that says so, not "not a model"."""
    from audio_dl import compose, inference, serving
    from audio_dl.errors import UsageError

    base = tmp_path / os.fsdecode(b"caf\xe9")  # Latin-1, as an old archive's folder names are
    shutil.copytree(tiny_export, base / "denoiser" / "1")
    shutil.copytree(tiny_melody_run / "export" / "1", base / "melody" / "1")
    why = re.escape(f"{tmp_path}/caf\\xe9/") + r".*: TensorFlow loads a SavedModel only from a UTF-8 path; move it"
    for load in (lambda: inference.load_denoiser(base / "denoiser"),
                 lambda: export.denoiser_from_export(base / "denoiser" / "1"),
                 lambda: serving.ModelRegistry({"d": base / "denoiser"}),
                 lambda: compose.load_melody_export(base / "melody")):
        with pytest.raises(UsageError, match=why):
            load()
    monkeypatch.chdir(base / "denoiser" / "1")  # "." loads (a relative path is UTF-8); the next version would not be written
    with pytest.raises(UsageError, match=re.escape(f"{tmp_path}/caf\\xe9/denoiser/2: TensorFlow writes a SavedModel "
                                                   "only to a UTF-8 path; move the base path")):
        export.reexport(Path("."))
    assert sorted(os.listdir(base / "denoiser")) == ["1"]
