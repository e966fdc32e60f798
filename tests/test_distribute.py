"""--strategy: MultiWorkerMirroredStrategy with two local worker processes ends with identical weights."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

FOLK_FIXTURE = Path(__file__).parent / "data" / "folk"


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _weights(path: Path) -> dict[str, np.ndarray]:
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: arrays.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None)
    return arrays


def _train_two_workers(module: str, args: list[str], run_dir: Path) -> list[subprocess.CompletedProcess]:
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="2",
                   TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            [sys.executable, "-m", module, *args, "--strategy", "multiworker", "--run-dir", str(run_dir),
             "--publish", "never", "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            raise
        results.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return results


@pytest.mark.slow
@pytest.mark.parametrize("family", ["melody", "denoiser"])
def test_two_worker_training_ends_with_identical_weights(family, tmp_path, tiny_corpus):
    if family == "melody":
        module, args = "audio_dl.train_melody", ["--preset", "tiny", "--midi-dir", str(FOLK_FIXTURE)]
    else:
        module, args = "audio_dl.train_denoiser", ["--preset", "tiny", "--set", "epochs=2",
                                                   "--set", f"speech={tiny_corpus / 'speech'}",
                                                   "--set", f"noise={tiny_corpus / 'noise'}"]
    run_dir = tmp_path / "run"
    chief, worker = _train_two_workers(module, args, run_dir)
    assert chief.returncode == 0, chief.stderr[-3000:]
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert "the chief evaluates and exports" in worker.stdout
    assert (run_dir / "export" / "1" / "saved_model.pb").is_file()  # the chief exported
    assert not (run_dir / "workers" / "worker-1" / "export").exists()

    chief_weights = _weights(run_dir / "checkpoints" / "best.weights.h5")
    worker_weights = _weights(run_dir / "workers" / "worker-1" / "checkpoints" / "best.weights.h5")
    assert chief_weights.keys() == worker_weights.keys() and len(chief_weights) > 4
    for name, value in chief_weights.items():
        np.testing.assert_array_equal(value, worker_weights[name], err_msg=name)
    history = [(run_dir / "history.csv").read_text(), (run_dir / "workers" / "worker-1" / "history.csv").read_text()]
    assert history[0] == history[1] and len(history[0].splitlines()) == 3  # header + 2 epochs, same losses


@pytest.mark.parametrize("tf_config, message", [
    (None, "TF_CONFIG, which is not set"),
    ("{not json", "TF_CONFIG must be JSON"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "TF_CONFIG must be JSON"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}', "TF_CONFIG must be JSON"),
])
def test_multiworker_without_a_valid_tf_config_is_one_line_exit_2(tf_config, message, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    result = subprocess.run([sys.executable, "-m", "audio_dl.train_melody", "--preset", "tiny", "--midi-dir",
                             str(FOLK_FIXTURE), "--strategy", "multiworker", "--run-dir", str(tmp_path / "run")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if "error:" in line]) == 1


def test_running_out_of_memory_while_training_is_one_usage_error():
    import tensorflow as tf

    from audio_dl import distribute
    from audio_dl.errors import UsageError

    class TooBig:  # what fit does when a batch's activations or the optimizer's slots do not fit
        def fit(self, *args, **kwargs):
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[250000,4]")

    with pytest.raises(UsageError, match="out of memory while training: make batch_size or the model smaller"):
        distribute.fit(TooBig(), tf.distribute.get_strategy())


def test_a_batch_that_does_not_split_over_the_replicas_is_one_usage_error():
    from audio_dl import distribute
    from audio_dl.errors import UsageError

    class TwoReplicas:
        num_replicas_in_sync = 2

    distribute.require_even_batches(TwoReplicas(), 4)
    with pytest.raises(UsageError, match="batch_size=3 does not split over the 2 replicas of this strategy: "
                                         "use a multiple of 2"):
        distribute.require_even_batches(TwoReplicas(), 3)


@pytest.mark.slow
def test_two_workers_refuse_an_odd_batch_before_the_run_dir_is_made(tmp_path):
    run_dir = tmp_path / "run"
    results = _train_two_workers("audio_dl.train_melody", ["--preset", "tiny", "--midi-dir", str(FOLK_FIXTURE),
                                                           "--set", "batch_size=3"], run_dir)
    for result in results:
        assert result.returncode == 2, result.stderr[-3000:]
        assert "Traceback" not in result.stderr
        assert "batch_size=3 does not split over the 2 replicas" in result.stderr
    assert not run_dir.exists()
