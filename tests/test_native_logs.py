"""Native log lines on stderr: dropped as TF_CPP_MIN_LOG_LEVEL says, everything else kept."""

import os
import subprocess
import sys
import threading
import time

import pytest

from audio_dl import native_logs

ABSL_INFO = "I0000 00:00:1796616700.318729   27601 mlir_graph_optimization_pass.cc:437] MLIR V1 pass is not enabled\n"
ABSL_WARNING = "W0000 00:00:1796616700.289759   27601 tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.\n"
ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
TFLITE_INFO = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
ABSL_ERROR = "E0000 00:00:1796616700.289759   27601 converter.cc:12] a real error\n"
OTHER = "a library's own line\n"


def _write_in_block(monkeypatch, level: str | None) -> None:
    if level is None:
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", level)
    with native_logs.log_lines_dropped():
        os.write(2, "".join([ABSL_NOTICE, ABSL_WARNING, OTHER, ABSL_INFO, TFLITE_INFO, ABSL_ERROR]).encode())


@pytest.mark.parametrize("level, shown", [
    ("2", [OTHER, ABSL_ERROR]),
    ("1", [ABSL_NOTICE, ABSL_WARNING, OTHER, ABSL_ERROR]),
    ("0", [ABSL_NOTICE, ABSL_WARNING, OTHER, ABSL_INFO, TFLITE_INFO, ABSL_ERROR]),
    (None, [ABSL_NOTICE, ABSL_WARNING, OTHER, ABSL_INFO, TFLITE_INFO, ABSL_ERROR]),
])
def test_log_lines_below_the_level_are_dropped_the_rest_passed_on(monkeypatch, capfd, level, shown):
    _write_in_block(monkeypatch, level)
    assert capfd.readouterr().err == "".join(shown)


def test_lines_pass_on_as_they_come_whole_and_not_just_like_tflites(monkeypatch, capfd):
    """Live (a crash inside the block loses only what the forwarder had not read yet), a character
    split between two reads of the pipe intact, a Python logger's "INFO: ..." line kept."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    long_line = "x" * 1023 + "\u00e9\n"
    with native_logs.log_lines_dropped():
        os.write(2, f"{long_line}INFO: a tool's own log line\n{TFLITE_INFO}".encode())
        time.sleep(1.0)  # wurlitzer's forwarder thread passes on what it reads
        assert capfd.readouterr().err == long_line + "INFO: a tool's own log line\n"
        os.write(2, b"no newline at the end")
    assert capfd.readouterr().err == "no newline at the end"


def test_nested_redirects_in_one_thread_do_not_wait_for_each_other(capfd):
    def nested():
        with native_logs.log_lines_dropped():
            with native_logs.discarded():
                os.write(2, b"a decoder's chatter\n")
            os.write(2, OTHER.encode())

    thread = threading.Thread(target=nested, daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive() and capfd.readouterr().err == OTHER


def test_discarded_drops_everything(capfd):
    with native_logs.discarded():
        os.write(2, (ABSL_ERROR + OTHER).encode())
    assert capfd.readouterr().err == ""


def test_converting_and_running_a_tflite_prints_nothing():
    """The converter's dozen absl lines and the interpreter's XNNPACK line stay off a user's
    terminal (each shows at most once a process: a fresh one)."""
    script = """
from audio_dl import export, litert
import keras
import numpy as np
inputs = keras.Input((16,), batch_size=1, name="x")
model = keras.Model(inputs, {"denoised": keras.layers.Dense(4)(inputs)})
flatbuffer = export.convert_tflite(model)
out = litert.signature_runner(flatbuffer)(x=np.zeros((1, 16), np.float32))
print(sorted(out))
"""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0 and result.stdout == "['denoised']\n", result.stderr
    assert result.stderr == "", result.stderr
