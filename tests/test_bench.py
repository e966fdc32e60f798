import json
import subprocess
import sys

import pytest


def test_denoiser_benchmark_runs_and_writes_json(tiny_export, tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "audio_dl.bench", "denoiser", "--model", str(tiny_export),
                             "--seconds", "10", "--repeats", "1", "-o", str(out)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["streaming_tflite_real_time_factor"] > 0 and results["whole_file_saved_model_x_real_time"] > 0
    assert results["streaming_int8_tflite_real_time_factor"] > 0  # every export now has the int8 streaming model


def _bench(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "audio_dl.bench", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_context_benchmark_checks_both_forms_agree_and_writes_json(tmp_path):
    out = tmp_path / "context.json"
    result = _bench("context", "--batch", "2", "--context-seconds", "1", "-o", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["context_materialised_input_mb"] == 8 * results["context_layer_input_mb"]
    assert results["context_layer_ms"] > 0 and results["context_materialised_copies_ms"] > 0


@pytest.mark.slow
def test_input_benchmark_runs_and_writes_json(tmp_path):
    out = tmp_path / "input.json"
    result = _bench("input", "--batches", "2", "--loop-examples", "4", "--train-steps", "2", "-o", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(out.read_text())
    assert 0 <= results["input_wait_share_of_step_time"] < 1
    for key in ("tf_data_augmented", "tf_data_plain", "tf_data_files_augmented", "tf_data_files_plain",
                "tf_data_records_plain", "librosa_whole_file_loop", "librosa_crop_loop"):
        assert results[f"input_{key}_examples_per_second"] > 0


@pytest.mark.slow
def test_scale_benchmark_measures_peak_memory_per_corpus_size(tmp_path):
    out = tmp_path / "scale.json"
    result = _bench("scale", "--files", "20,60", "--scale-cache", str(tmp_path / "cache"), "--scale-batch", "8",
                    "-o", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["scale_60_files_epoch_steps"] == 7 and results["scale_20_files_peak_rss_mib"] > 100
    assert abs(results["scale_peak_rss_growth"]) < 0.5


def test_benchmark_misuse_is_one_line_exit_2():
    result = _bench("scale", "--files", "many")
    assert result.returncode == 2 and "--files takes comma-separated numbers" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["denoiser", "--seconds", "nan"], "--seconds must be in [10, 3600] (got nan)"),
    (["denoiser", "--seconds", "inf"], "--seconds must be in [10, 3600] (got inf)"),
    (["context", "--context-seconds", "inf"], "--batch and --context-seconds must be a finite number > 0"),
    (["context", "-o", "{tmp}"], "is a folder; give a file name"),
    # all of them (the default): the last group's numbers are checked before the first group runs
    # (and would fail on {tmp}, which exists but is no model)
    (["--files", "many", "--model", "{tmp}"], "--files takes comma-separated numbers"),
    (["denoiser", "--model", "{tmp}/notes.txt"], "notes.txt is a file; give the export folder that holds it"),
    (["--melody-model", "{tmp}/missing"], "model not found: {tmp}/missing"),
    (["context", "-o", "{tmp}/notes.txt/bench.json"], "notes.txt is a file, not a folder"),
    (["context", "--context-seconds", "0.005"], "--context-seconds must be at least one hop (0.008 s)"),
    # a value that is a command's name is a value (a model folder named denoiser): `all` runs
    (["--model", "denoiser", "--seconds", "5"], "--seconds must be in [10, 3600] (got 5)"),
])
def test_bad_numbers_and_outputs_are_refused_before_any_measurement(tmp_path, args, message):
    (tmp_path / "notes.txt").write_text("a file\n")
    result = _bench(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    message = message.replace("{tmp}", str(tmp_path))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert "context_layer_ms" not in result.stdout  # nothing was measured
