"""Shared fixtures: a tiny real corpus cut from the bundled data, plus broken files; and helpers
(a test signal, servers started and stopped as a user does)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile  # noqa: E402

from audio_dl.data import corpora  # noqa: E402


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """speech/<4 speakers>/ (3 real files each) + noise/ (4 real files) + splits.json."""
    root = tmp_path_factory.mktemp("corpus")
    bundled = corpora.bundled_denoiser_root()
    for speaker in ("allison", "menardi", "armelle", "codec2"):
        files = sorted((bundled / "speech" / speaker).rglob("*.flac"))[:3]
        for f in files:
            target = root / "speech" / speaker / f.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, target)
    (root / "noise").mkdir()
    for name in ("water", "vinyl_hiss", "birds", "loop_3d_printer"):
        shutil.copy(bundled / "noise" / f"{name}.flac", root / "noise" / f"{name}.flac")
    (root / "splits.json").write_text('{"val_speakers": ["armelle"], "val_noises": ["birds"]}')
    return root


@pytest.fixture
def broken_files(tmp_path) -> dict[str, Path]:
    """An empty file, a file of random bytes named .wav, a valid WAV with zero samples."""
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(0).bytes(4000))
    zero = tmp_path / "zero_samples.wav"
    soundfile.write(zero, np.zeros(0, np.float32), 8000)
    return {"empty": empty, "garbage": garbage, "zero": zero}


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _tiny_denoiser_export(tmp_path_factory, overrides: list[str]) -> Path:
    """Export an untrained tiny denoiser as version 1; its export errors in export_errors.json beside it."""
    import json

    from audio_dl import export
    from audio_dl.config import DenoiserConfig, make_config
    from audio_dl.models.denoiser import build_denoiser

    cfg = make_config(DenoiserConfig, "tiny", overrides=overrides)
    target = tmp_path_factory.mktemp("models") / "denoiser" / "1"
    errors = export.export_denoiser(build_denoiser(cfg), cfg, target, "card {export_errors}", {"source": "local run"})
    (target.parent / "export_errors.json").write_text(json.dumps(errors))
    return target


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> Path:
    """An exported (untrained, tiny) denoiser version folder: SavedModel + .tflite + config.json."""
    return _tiny_denoiser_export(tmp_path_factory, ["tflite_seconds=1.5"])


@pytest.fixture(scope="session")
def tiny_dilated_export(tmp_path_factory) -> Path:
    """The same with two dilated conv blocks and one frame of lookahead."""
    return _tiny_denoiser_export(tmp_path_factory, ["tflite_seconds=1.5", "temporal_blocks=2", "lookahead_frames=1"])


@pytest.fixture(scope="session")
def tiny_gru_lookahead_export(tmp_path_factory) -> Path:
    """The same for the mask model with a GRU and 2 frames of lookahead."""
    return _tiny_denoiser_export(tmp_path_factory, ["recurrent_units=16", "lookahead_frames=2",
                                                    "recurrent_warmup_seconds=0.5", "tflite_seconds=2.5"])


FOLK_FIXTURE = Path(__file__).parent / "data" / "folk"


@pytest.fixture(scope="session")
def tiny_melody_run(tmp_path_factory) -> Path:
    """A run directory of the tiny melody preset trained on the 50-tune fixture (export/1 inside)."""
    from audio_dl import train_melody

    run = tmp_path_factory.mktemp("melody-run")
    code = train_melody.main(["--preset", "tiny", "--midi-dir", str(FOLK_FIXTURE), "--run-dir", str(run),
                              "--publish", "never", "--quiet"])
    assert code in (0, None)
    return run


# --- servers run as a user runs them ------------------------------------------------------

def free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def start_taking_ctrl_c(command: list[str]) -> subprocess.Popen:
    """Start `command` (text pipes) with SIGINT caught here, so that it takes Ctrl-C even when
    pytest runs as a background job (SIGINT ignored, which a child would inherit)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)


def stop_server(command: list[str], url: str, signum: int) -> subprocess.CompletedProcess:
    """Start a server, wait until `url` answers, send it `signum`; its exit code and output."""
    process = start_taking_ctrl_c(command)
    try:
        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url, timeout=10).close()
                break
            except urllib.error.HTTPError:  # an answer, if not a 200
                break
            except OSError:  # not listening yet
                time.sleep(0.2)
        else:
            process.kill()
            pytest.fail(f"the server never answered {url}: {process.communicate()[1][-2000:]}")
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
        return subprocess.CompletedProcess(command, process.returncode, out, err)
    finally:
        if process.poll() is None:  # a server that did not stop is not left running
            process.kill()
            process.communicate()


SIGNALS = pytest.mark.parametrize("signum, code, line", [
    pytest.param(signal.SIGTERM, 143, "terminated", id="SIGTERM"),
    pytest.param(signal.SIGINT, 130, "interrupted", id="SIGINT")])
