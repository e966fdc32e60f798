"""Atomic writes: what lands has the permissions a plain write gives; a failed write leaves nothing
and names the target."""

import errno
import os

import pytest

from audio_dl.atomic import staged_file, staged_folder


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_staged_file_and_folder_land_with_the_permissions_of_a_plain_write(tmp_path, umask_022):
    with staged_file(tmp_path / "out.wav") as tmp:
        tmp.write_bytes(b"RIFF")
    with staged_folder(tmp_path / "export") as folder:
        (folder / "model.tflite").write_bytes(b"TFL3")
    assert (tmp_path / "out.wav").stat().st_mode & 0o777 == 0o644  # mkstemp alone: 0o600
    assert (tmp_path / "export").stat().st_mode & 0o777 == 0o755  # mkdtemp alone: 0o700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "out.wav"]


def test_a_failed_staged_write_leaves_nothing(tmp_path):
    for stage in (staged_file, staged_folder):
        with pytest.raises(RuntimeError), stage(tmp_path / "target"):
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_an_os_error_names_the_target_not_the_hidden_staging_path(tmp_path):
    (tmp_path / "out.wav").mkdir()  # a folder where the file should land
    with pytest.raises(IsADirectoryError) as caught, staged_file(tmp_path / "out.wav") as tmp:
        tmp.write_bytes(b"RIFF")
    assert caught.value.filename == str(tmp_path / "out.wav")
    (tmp_path / "notes.txt").write_text("a file\n")
    with pytest.raises(FileExistsError) as caught, staged_file(tmp_path / "notes.txt" / "out.wav"):
        pass
    assert caught.value.filename == str(tmp_path / "notes.txt")  # the folder to make is a file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "out.wav"]  # no staging file left


def test_a_replaced_folder_survives_a_failed_rewrite_and_is_swapped_after_a_good_one(tmp_path):
    target = tmp_path / "export" / "1"
    target.mkdir(parents=True)
    (target / "model.bin").write_text("old")
    with pytest.raises(RuntimeError), staged_folder(target, replace=True) as staging:
        (staging / "model.bin").write_text("half")
        raise RuntimeError("conversion failed")
    assert (target / "model.bin").read_text() == "old"
    with staged_folder(target, replace=True) as staging:
        (staging / "model.bin").write_text("new")
    assert (target / "model.bin").read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["1"]


def test_a_full_disk_names_the_target_and_leaves_nothing(tmp_path):
    with pytest.raises(OSError) as raised, staged_file(tmp_path / "metrics.json") as tmp:
        tmp.write_text("{")
        raise OSError(errno.ENOSPC, "No space left on device")  # as Python's own write raises it: no file name
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(tmp_path / "metrics.json")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["録音" * 40, "x" * 250])  # legal names, 240 and 250 bytes
def test_any_legal_name_can_be_written_and_replaced(tmp_path, name):
    with staged_file(tmp_path / f"{name}.wav") as staging:
        staging.write_text("take")
    with staged_file(tmp_path / f"a.{name}") as staging:  # all suffix
        staging.write_text("take")
    for text in ("first", "second"):  # the second replaces the first: set aside under a hidden name
        with staged_folder(tmp_path / name, replace=True) as staging:
            (staging / "a.txt").write_text(text)
    assert (tmp_path / name / "a.txt").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{name}.wav", f"a.{name}", name])
