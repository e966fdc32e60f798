"""CLI contract: --help, one-line errors with exit code 2, and a seconds-long end-to-end run."""

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from audio_dl import cli
from conftest import start_taking_ctrl_c


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_help_explains_every_option():
    result = _run("audio_dl.train_denoiser", "--help")
    assert result.returncode == 0
    for option in ("--preset", "--config", "--set", "--run-dir", "--export-base", "--publish", "--mixed-precision"):
        assert option in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--preset", "huge"], "invalid choice"),
    (["--set", "epochs=-1"], "epochs must be >= 1"),
    (["--set", "speech=/no/such/folder"], "path does not exist: /no/such/folder"),
    (["--set", "snr_db=5,0"], "snr_db"),
    (["--bogus"], "unrecognized arguments"),
])
def test_misuse_is_one_line_and_exit_code_2(args, message, tmp_path):
    result = _run("audio_dl.train_denoiser", "--run-dir", str(tmp_path / "run"), *args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("python -m audio_dl.train_denoiser: error:")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr


def test_a_path_the_system_refuses_is_one_line_exit_2(tmp_path, capsys):
    def main(argv):
        (tmp_path / "notes.txt").write_text("a file\n")
        (tmp_path / "notes.txt" / "metrics.json").write_text("{}")  # NotADirectoryError

    main.prog = "python -m audio_dl.example"
    assert cli.run_main(main) == 2
    assert capsys.readouterr().err == f"python -m audio_dl.example: error: {tmp_path / 'notes.txt' / 'metrics.json'}: Not a directory\n"


def test_a_full_disk_is_one_line_exit_1(tmp_path, capsys):
    def main(argv):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out.wav"))

    main.prog = "python -m audio_dl.example"
    assert cli.run_main(main) == 1
    assert capsys.readouterr().err == f"python -m audio_dl.example: error: {tmp_path / 'out.wav'}: No space left on device\n"


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="watches /proc/PID/maps (Linux)")
@pytest.mark.parametrize("tool", ["audio_dl.evaluate_denoiser", "audio_dl.app"])
def test_ctrl_c_while_a_tool_imports_tensorflow_is_one_line_and_exit_130(tool):
    process = start_taking_ctrl_c([sys.executable, "-m", tool, "--help"])
    try:
        maps, deadline = Path(f"/proc/{process.pid}/maps"), time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if "libtensorflow_framework" in maps.read_text():  # loading: seconds before the tool's main()
                break
            time.sleep(0.005)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert (process.returncode, out) == (130, ""), err[-2000:]
    assert err.endswith(f"python -m {tool}: interrupted\n") and "Traceback" not in err, err[-2000:]


def test_sigterm_removes_the_partial_output_and_exits_143(tmp_path):
    script = f"""
import os, signal, sys, time
from pathlib import Path
from audio_dl import cli
from audio_dl.atomic import staged_file

def main(argv):
    with staged_file(Path({str(tmp_path)!r}) / "out.wav") as staging:
        staging.write_text("half a file")
        os.kill(os.getpid(), signal.SIGTERM)  # as `kill` or `docker stop` would
        time.sleep(10)

main.prog = "python -m audio_dl.example"
sys.exit(cli.run_main(main))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 143 and result.stderr == "python -m audio_dl.example: terminated\n", result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_sigterm_that_lands_inside_a_finaliser_still_ends_the_run_with_143_and_lands_nothing(tmp_path):
    script = """
import os, signal, sys
from pathlib import Path
from audio_dl import cli
from audio_dl.atomic import staged_file

class Handle:
    def __del__(self):  # TensorFlow's handles free themselves here; the raise is printed and lost
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(10**6):  # the handler runs between these bytecodes, inside __del__
            pass

def main(argv):
    Handle()
    with staged_file(Path(sys.argv[1]) / "out.wav") as staging:  # the run goes on, but lands nothing
        staging.write_text("a whole file")

main.prog = "python -m audio_dl.example"
sys.exit(cli.run_main(main))
"""
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert "Exception ignored in" in result.stderr  # the case this guards against happened
    assert result.returncode == 143 and result.stderr.endswith("python -m audio_dl.example: terminated\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("module, args", [
    ("audio_dl.train_denoiser", ["--preset", "tiny", "--run-dir", ""]),
    ("audio_dl.train_melody", ["--preset", "tiny", "--run-dir", " "]),
    ("audio_dl.export", ["publish", "runs/x", "--base", ""]),
])
def test_an_empty_run_dir_or_base_is_refused_not_the_current_folder(module, args, tmp_path):
    result = _run(module, *args, cwd=tmp_path)
    assert result.returncode == 2 and "an empty path" in result.stderr and list(tmp_path.iterdir()) == []


def test_a_run_dir_that_is_a_file_is_one_line_exit_2(tmp_path):
    (tmp_path / "run").write_text("not a folder\n")
    result = _run("audio_dl.train_denoiser", "--preset", "tiny", "--run-dir", str(tmp_path / "run"))
    lines = [line for line in result.stderr.splitlines() if line.startswith("python -m audio_dl.train_denoiser: error:")]
    assert result.returncode == 2 and len(lines) == 1 and str(tmp_path / "run") in lines[0], result.stderr[-1500:]
    assert "Traceback" not in result.stderr


def test_an_export_base_that_is_a_file_is_refused_before_training(tmp_path):
    (tmp_path / "base").write_text("not a folder\n")
    result = _run("audio_dl.train_denoiser", "--preset", "tiny", "--run-dir", str(tmp_path / "run"),
                  "--export-base", str(tmp_path / "base"))
    assert result.returncode == 2 and f"{tmp_path / 'base'} is a file, not a folder" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("trainer, base, message", [
    ("audio_dl.train_denoiser", "saved_models/melody", "a denoiser model takes waveform; the models in saved_models/melody"),
    ("audio_dl.train_melody", "saved_models/denoiser", "a melody model takes max_steps, primer, seed, temperature, top_k"),
])
def test_an_export_base_of_the_other_family_is_refused_before_training(trainer, base, message, tmp_path):
    result = _run(trainer, "--preset", "tiny", "--run-dir", str(tmp_path / "run"), "--export-base", base,
                  "--publish", "always")
    assert result.returncode == 2 and message in result.stderr and "--export-base" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("trainer", ["audio_dl.train_denoiser", "audio_dl.train_melody"])
def test_an_export_base_that_cannot_be_written_is_refused_before_training(trainer, tmp_path):
    result = _run(trainer, "--preset", "tiny", "--run-dir", str(tmp_path / "run"),
                  "--export-base", "/proc/audio_dl/saved_models")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (f"python -m {trainer}: error: cannot write into /proc (to make /proc/audio_dl/saved_models there): "
            "making a folder there failed (" in result.stderr)  # not a bare "No such file or directory"
    assert not (tmp_path / "run").exists()


def test_writable_folder_probes_and_leaves_nothing(tmp_path):
    assert cli.writable_folder(tmp_path / "new" / "base") == tmp_path / "new" / "base"
    assert list(tmp_path.iterdir()) == []  # nothing created, the probe removed
    (tmp_path / "file").write_text("x")
    with pytest.raises(cli.UsageError, match="file is a file, not a folder"):
        cli.writable_folder(tmp_path / "file" / "base")


@pytest.mark.parametrize("tool, args, suffix", [
    ("audio_dl.generate_melody", ["C4 D4 E4", "--model", "saved_models/melody", "-o"], ""),
    ("audio_dl.evaluate_melody", ["--validation-split", "--model", "saved_models/melody", "-o"], ".json"),
    ("audio_dl.bench", ["melody", "-o"], ".json")])
def test_an_output_name_too_long_in_a_folder_still_to_make_is_refused_before_the_work(tool, args, suffix, tmp_path):
    """The missing folder hides the name from the file system until the write: the check asks it."""
    result = _run(tool, *args, str(tmp_path / "new" / ("x" * 300 + suffix)))
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"python -m {tool}: error:")]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].endswith("is too long for the file system; give a shorter name") and not result.stdout
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("under", ["new", ""])  # in a folder to make (the lookup stops there), or in one that exists
def test_a_name_too_long_is_refused_before_the_work_wherever_it_is(tmp_path, under):
    """Where its folder exists, looking the name up fails with ENAMETOOLONG: that is the answer, not an error."""
    long, folder = "y" * 300, tmp_path / under
    for output in (folder / long / "out.json", folder / long):
        with pytest.raises(cli.UsageError, match=f"cannot write {re.escape(str(output))}: the name {long} is too "
                                                 "long for the file system; give a shorter name"):
            cli.output_file(output)
    with pytest.raises(cli.UsageError, match=f"cannot write into .*: the name {long} is too long for the file system"):
        cli.writable_folder(folder / long / "deeper")
    with pytest.raises(cli.UsageError, match=f"cannot write into .*: the name {long} is too long for the file system"):
        cli.writable_folder(folder / long)
    deep = folder.joinpath(*["d" * 200] * 25)  # each name fits; the path is longer than PATH_MAX (4096 on Linux)
    with pytest.raises(cli.UsageError, match=r"cannot write .*: the path is longer than the file system's \d+ bytes"):
        cli.output_file(deep / "out.json")
    with pytest.raises(cli.UsageError, match=r"cannot write into .*: the path is longer than the file system's"):
        cli.writable_folder(deep)
    assert list(tmp_path.iterdir()) == []


def test_an_output_under_a_symbolic_link_loop_is_refused_before_the_work(tmp_path):
    """The loop is named, as the write would fail there after the work."""
    (tmp_path / "loop").symlink_to("loop")
    for output in (tmp_path / "loop" / "out.wav", tmp_path / "loop" / "deeper" / "out.wav"):
        with pytest.raises(cli.UsageError, match=f"cannot write {re.escape(str(output))}: {re.escape(str(tmp_path))}"
                                                 "/loop: Too many levels of symbolic links"):
            cli.output_file(output)
        with pytest.raises(cli.UsageError, match="/loop: Too many levels of symbolic links"):
            cli.writable_folder(output)
    result = _run("audio_dl.train_denoiser", "--run-dir", str(tmp_path / "loop" / "run"))
    assert result.returncode == 2 and "Traceback" not in result.stderr and not result.stdout  # before the data
    assert result.stderr.splitlines()[-1] == (
        f"python -m audio_dl.train_denoiser: error: argument --run-dir: cannot write {tmp_path}/loop/run: "
        f"{tmp_path}/loop: Too many levels of symbolic links")
    with pytest.raises(cli.UsageError, match="^cannot write .*/loop: Too many levels of symbolic links$"):
        cli.writable_folder(tmp_path / "loop")  # the loop itself: named once


@pytest.mark.parametrize("code, exit_code", [(errno.EINVAL, 2), (errno.EIO, 1), (errno.ENOTCONN, 1),
                                             (errno.ESTALE, 1), (errno.ETIMEDOUT, 1)])
def test_a_path_the_file_system_cannot_look_up_is_one_line(tmp_path, monkeypatch, capsys, code, exit_code):
    """An invalid name is the user's to fix (exit 2); a failing device or a mount gone (a FUSE
    process ended, a stale NFS handle, a network timeout) is not (exit 1)."""
    real_stat = Path.stat

    def stat(path, *args, **kwargs):
        if path == tmp_path / "bad":
            raise OSError(code, os.strerror(code), str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)

    def main(argv):
        cli.output_file(tmp_path / "bad" / "out.wav")

    main.prog = "python -m audio_dl.example"
    assert cli.run_main(main, []) == exit_code
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_empty_audio_folder_is_one_line_exit_2(tmp_path):
    (tmp_path / "nothing").mkdir()
    result = _run("audio_dl.train_denoiser", "--set", f"noise={tmp_path / 'nothing'}", "--run-dir", str(tmp_path / "r"))
    assert result.returncode == 2 and "no audio files" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_tiny_end_to_end_run_trains_exports_and_publishes(tmp_path):
    result = _run("audio_dl.train_denoiser", "--preset", "tiny", "--quiet", "--run-dir", str(tmp_path / "run"),
                  "--export-base", str(tmp_path / "saved_models" / "denoiser"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pesq_nb" in result.stdout and "published as" in result.stdout
    version = tmp_path / "saved_models" / "denoiser" / "1"
    assert (version / "saved_model.pb").is_file() and (version / "denoiser.tflite").is_file()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["validation"]) == {"noisy", "denoised"}
    for name in ("config.json", "history.csv", "checkpoints/best.weights.h5"):
        assert (tmp_path / "run" / name).exists()
    assert any((tmp_path / "run" / "logs").rglob("events.out.tfevents.*"))

    saved = (tmp_path / "run" / "config.json").read_text()
    changed = _run("audio_dl.train_denoiser", "--preset", "tiny", "--quiet", "--run-dir", str(tmp_path / "run"),
                   "--set", "hidden_units=48", "--publish", "never")
    assert changed.returncode == 2 and "holds a run of another config (hidden_units: 32 -> 48)" in changed.stderr
    assert (tmp_path / "run" / "config.json").read_text() == saved


@pytest.mark.slow
def test_a_diverging_run_is_one_line_and_not_marked_trained(tmp_path):
    result = _run("audio_dl.train_denoiser", "--preset", "tiny", "--quiet", "--run-dir", str(tmp_path / "run"),
                  "--publish", "never", "--set", "learning_rate=1e30")
    assert result.returncode == 2 and re.search(r"training diverged \(the loss became (nan|inf) at epoch 1", result.stderr)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "trained.json").exists() and not (tmp_path / "run" / "export").exists()


@pytest.mark.parametrize("tool, args", [
    ("denoise", [""]), ("denoise", ["in.wav", "-o", ""]), ("denoise", ["in.wav", "--clean", " "]),
    ("evaluate_denoiser", ["--clean", "c", "--noisy", ""]), ("generate_melody", ["G4", "--model", ""]),
    ("export", ["reexport", ""]), ("export", ["publish", ""]), ("bench", ["denoiser", "--model", ""]),
])
def test_an_empty_path_is_refused_not_taken_for_the_current_folder(tool, args, tmp_path, monkeypatch, capsys):
    """`python -m audio_dl.denoise "$UNSET"` would otherwise denoise the whole folder tree it runs in."""
    import importlib

    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.wav").write_bytes(b"")
    module = importlib.import_module(f"audio_dl.{tool}")
    try:
        code = cli.run_main(module.main, args)
    except SystemExit as exit:  # argparse's own refusal
        code = exit.code
    assert code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"python -m audio_dl.{tool}") and "an empty path" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_a_leading_tilde_is_the_home_folder_only_before_a_slash(monkeypatch):
    """A shell glob can yield a file called ~$take.wav; Path.expanduser() would raise for it."""
    from audio_dl import audio_io
    from audio_dl.paths import expand_home

    monkeypatch.setenv("HOME", "/home/someone")
    for read in (cli.given_path, audio_io.given_path):
        assert read("~/rec") == Path("/home/someone/rec") and read("~") == Path("/home/someone")
        for name in ("~$take.wav", "~nosuchuser_xyz/a.wav", "~root"):
            assert read(name) == Path(name)
    assert expand_home(Path("~/rec")) == "/home/someone/rec"  # a PathLike too


def _without_tf_log_level() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it


def test_tensorflows_log_level_defaults_by_whether_a_gpu_can_be_opened_and_a_users_setting_wins():
    import audio_dl

    level = "import audio_dl, os; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    default = subprocess.run([sys.executable, "-c", level], capture_output=True, text=True, env=_without_tf_log_level())
    gpu = any(Path(device).exists() for device in audio_dl._GPU_DEVICES)
    assert default.stdout.strip() == ("2" if gpu else "3")
    mine = subprocess.run([sys.executable, "-c", level], capture_output=True, text=True,
                          env={**_without_tf_log_level(), "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert mine.stdout.strip() == "0"


def test_a_tool_that_loaded_tensorflow_refuses_in_one_line_where_no_gpu_can_be_opened(tmp_path):
    """There TF's CUDA build logs "failed call to cuInit" as an ERROR at every start: the tool's
    one line would not be the only one (shown at level 2, else this TF logs none and the test says so)."""
    import numpy as np
    import soundfile

    import audio_dl

    if any(Path(device).exists() for device in audio_dl._GPU_DEVICES):
        pytest.skip("a GPU can be opened here: TF logs no cuInit error")
    soundfile.write(tmp_path / "in.wav", np.zeros(800, np.float32), 8000)
    melody = Path(__file__).parents[1] / "saved_models" / "melody" / "6"
    args = [sys.executable, "-m", "audio_dl.denoise", str(tmp_path / "in.wav"), "--model", str(melody),
            "-o", str(tmp_path / "out")]
    refusal = (f"python -m audio_dl.denoise: error: {melody} is not a denoiser SavedModel "
               "(needs serving_default: waveform -> denoised)")
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=_without_tf_log_level())
    assert result.returncode == 2 and result.stderr.splitlines() == [refusal]
    shown = subprocess.run(args, capture_output=True, text=True, timeout=300,
                           env={**_without_tf_log_level(), "TF_CPP_MIN_LOG_LEVEL": "2"})
    if "cuInit" not in shown.stderr:
        pytest.skip("this TensorFlow logs no cuInit error: nothing to hide")


def test_a_temporary_folder_whose_path_is_not_utf8_is_refused_before_the_work(tiny_export, tmp_path):
    """TensorFlow's autograph and the TFLite converter write under TMPDIR and take only UTF-8 paths."""
    temporary = tmp_path / os.fsdecode(b"t\xe9mp")  # Latin-1
    temporary.mkdir()
    shutil.copytree(tiny_export, tmp_path / "denoiser" / "1")
    env = {**os.environ, "TMPDIR": os.fsencode(temporary)}
    result = subprocess.run([sys.executable, "-m", "audio_dl.export", "reexport", str(tmp_path / "denoiser" / "1")],
                            capture_output=True, text=True, errors="backslashreplace", env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"python -m audio_dl.export: error: the temporary folder {tmp_path}/t\\xe9mp is not a UTF-8 path, and "
        "TensorFlow writes temporary files there; set TMPDIR to another folder")
    assert sorted(p.name for p in (tmp_path / "denoiser").iterdir()) == ["1"]
    helped = subprocess.run([sys.executable, "-m", "audio_dl.export", "--hel"], capture_output=True, text=True, env=env)
    assert helped.returncode == 0 and "reexport" in helped.stdout  # --help (here abbreviated) still answers there
    misused = subprocess.run([sys.executable, "-m", "audio_dl.export", "reexport"], capture_output=True, text=True,
                             env=env)  # a misuse is answered first: the arguments parse before the check
    assert misused.returncode == 2 and "the following arguments are required" in misused.stderr.splitlines()[-1]


def test_no_temporary_folder_is_one_line_exit_2(monkeypatch, capsys):
    pytest.importorskip("tensorflow")  # the check is for the tools that loaded it
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr(tempfile, "_candidate_tempdir_list", lambda: ["/nonexistent/folder"])

    def main(argv):
        cli.ArgumentParser(prog=main.prog).parse_args(argv)  # the check comes once the arguments parse
        raise AssertionError("not reached")

    main.prog = "python -m audio_dl.example"
    assert cli.run_main(main, []) == 2
    assert capsys.readouterr().err == ("python -m audio_dl.example: error: no temporary folder can be written "
                                       "(TensorFlow writes temporary files there); set TMPDIR to a folder this "
                                       "process can write\n")
