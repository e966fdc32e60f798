"""Audio corpora at scale: a folder of audio files -> sharded TFRecords of resampled PCM.

    python -m audio_dl.datasets prepare SRC OUT [--sample-rate 8000] [--files-per-shard 1000] [--workers N]

OUT/shard-00000.tfrecord ... each hold `files_per_shard` consecutive files of SRC (sorted walk
order, so adding or removing a file rewrites that shard and every later one) as tf.train.Example {"audio": int16 PCM bytes, "speaker": first folder below SRC,
"path": path below SRC, "sample_rate", "gain": see audio_io.to_pcm16}; OUT/shard-00000.json records what that shard holds and
skipped. Shards are written in parallel processes, each to a temporary name renamed when
complete, so rerunning the command resumes: finished shards whose files (paths, sizes, times),
source folder, sample rate and RECORD_FORMAT are unchanged are kept. OUT/manifest.json (totals, speakers, shards) marks a finished folder; OUT/skipped.tsv lists
every file that could not be decoded, with the reason.

The file list is walked lazily and at most 2 x workers shards are in flight, so memory does not
grow with the number of files. Training reads the shards with `tf.data` interleave
(`read_shards`); `DenoiserConfig.speech` accepts a prepared folder.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

from audio_dl import atomic, audio_io
from audio_dl.errors import UsageError
from audio_dl.paths import expand_home

MANIFEST = "manifest.json"
SKIPPED = "skipped.tsv"
MAX_SAMPLE_RATE = 384_000  # Hz
SPLITS = "splits.json"  # as written by `datasets denoiser-corpus`: {"val_speakers": [...], ...}
SHARD_PATTERN = "shard-*.tfrecord"
RECORD_FORMAT = 2  # in each shard's digest; 2: each file's gain is stored (1 left audio above full scale scaled down)


def is_prepared(path: str | os.PathLike) -> bool:
    return (Path(expand_home(path)) / MANIFEST).is_file()


def read_manifest(path: str | os.PathLike) -> dict:
    return json.loads((Path(expand_home(path)) / MANIFEST).read_text())


def speaker_of(path: Path, root: Path) -> str:
    """Speaker = first folder below root; a file lying directly in root is its own speaker."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else path.stem


def walk_audio_files(root: Path) -> Iterator[Path]:
    """Audio files below root in a stable order (sorted per folder), one at a time: those
    audio_io.find_audio_files lists, but for files in symlinked folders, which the walk does not
    follow. Hidden files and folders are left out, and so is a link to a file the walk lists by
    its own path."""
    real_root = os.path.realpath(root)

    def walk(folder: str) -> Iterator[Path]:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from walk(entry.path)
            elif entry.is_file() and Path(entry.name).suffix.lower() in audio_io.AUDIO_EXTENSIONS and not (
                    entry.is_symlink() and _walk_lists(real_root, os.path.realpath(entry.path))):
                yield Path(entry.path)

    return walk(str(root))


def _walk_lists(real_root: str, real: str) -> bool:
    """Whether the walk of real_root lists the real file `real` by its own path."""
    return audio_io.walk_reaches(real_root, real) and Path(real).suffix.lower() in audio_io.AUDIO_EXTENSIONS


def _shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def _chunk_digest(root: Path, paths: list[str], sample_rate: int) -> str:
    """What a finished shard must match to be kept: source folder, rate, record format, and each
    file's path, size and modification time."""
    lines = [f"{root}\t{sample_rate}\t{RECORD_FORMAT}"]
    for relative in paths:
        stat = (root / relative).stat()
        lines.append(f"{relative}\t{stat.st_size}\t{stat.st_mtime_ns}")
    return hashlib.sha1("\n".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


def write_shard(index: int, paths: list[str], root: str, out: str, sample_rate: int, digest: str) -> dict:
    """Decode, resample and write `paths` (relative to root) to OUT/shard-<index>.tfrecord.

    Runs in a worker process. Returns the shard's summary (also written as shard-<index>.json).
    """
    import tensorflow as tf  # noqa: PLC0415 - imported in the worker process only

    name, out_dir = _shard_name(index), Path(out)
    summary = {"shard": name, "digest": digest, "files": 0, "seconds": 0.0, "speakers": {}, "skipped": []}
    partial = out_dir / f".{name}.tfrecord.partial"
    with tf.io.TFRecordWriter(os.fsencode(partial)) as writer:  # bytes: a folder name need not be UTF-8
        for relative in paths:
            path = Path(root) / relative
            if not audio_io.is_utf8_name(relative):  # the records store names as UTF-8
                summary["skipped"].append([relative, "the file name is not valid UTF-8"])
                continue
            try:
                audio = audio_io.read_audio(path, sample_rate)
            except ValueError as error:
                summary["skipped"].append([relative, str(error).splitlines()[0][:200]])
                continue
            if audio.size == 0:
                summary["skipped"].append([relative, "no samples"])
                continue
            speaker = speaker_of(path, Path(root))
            pcm, gain = audio_io.to_pcm16(audio)  # above full scale: stored scaled down, read back at its level
            pcm = pcm.astype("<i2")
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                "audio": tf.train.Feature(bytes_list=tf.train.BytesList(value=[pcm.tobytes()])),
                "speaker": tf.train.Feature(bytes_list=tf.train.BytesList(value=[speaker.encode()])),
                "path": tf.train.Feature(bytes_list=tf.train.BytesList(value=[relative.encode()])),
                "sample_rate": tf.train.Feature(int64_list=tf.train.Int64List(value=[sample_rate])),
                "gain": tf.train.Feature(float_list=tf.train.FloatList(value=[gain])),
            })).SerializeToString())
            seconds = audio.size / sample_rate
            summary["files"] += 1
            summary["seconds"] += seconds
            stats = summary["speakers"].setdefault(speaker, [0, 0.0])
            stats[0], stats[1] = stats[0] + 1, stats[1] + seconds
    summary["worker_peak_rss_mib"] = peak_rss_mib()
    (out_dir / f"{name}.json").unlink(missing_ok=True)  # the summary, written last, marks the shard done
    os.replace(partial, out_dir / f"{name}.tfrecord")
    (out_dir / f".{name}.json.partial").write_text(json.dumps(summary) + "\n")
    os.replace(out_dir / f".{name}.json.partial", out_dir / f"{name}.json")
    return summary


def peak_rss_mib() -> float | None:
    """Peak resident memory of this process (VmHWM; Linux), MiB. Unlike getrusage's ru_maxrss it
    starts afresh at exec, so a child started from a large parent reports its own peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _finished_summary(out: Path, index: int, digest: str) -> dict | None:
    """The summary of a shard a previous run completed for the same file list, else None."""
    name = _shard_name(index)
    record, summary = out / f"{name}.tfrecord", out / f"{name}.json"
    if not (record.is_file() and summary.is_file()):
        return None
    saved = json.loads(summary.read_text())
    return saved if saved.get("digest") == digest else None


def prepare(source: str | os.PathLike, out: str | os.PathLike, sample_rate: int = 8000,
            files_per_shard: int = 1000, workers: int | None = None) -> dict:
    """Write the sharded TFRecords of every audio file below `source` into `out`; returns the manifest.

    Resumable (finished shards are kept), parallel (`workers` processes), bad files skipped and
    listed in OUT/skipped.tsv.
    """
    root, out_dir = audio_io.given_path(source).resolve(), audio_io.given_path(out)
    if not root.is_dir():
        raise UsageError(f"not a folder: {source}")
    if not 1000 <= sample_rate <= MAX_SAMPLE_RATE or files_per_shard < 1:
        raise UsageError(f"--sample-rate must be in [1000, {MAX_SAMPLE_RATE}] and --files-per-shard >= 1")
    if next(walk_audio_files(root), None) is None:  # refused before OUT is touched (an earlier prepare's)
        raise UsageError(f"no audio files (of {', '.join(sorted(audio_io.AUDIO_EXTENSIONS))}) in {source}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)  # present again only when every shard is done
    workers = max(1, workers or os.cpu_count() or 1)
    chunks = _chunks(walk_audio_files(root), root, files_per_shard)
    manifest = {"source": str(root), "sample_rate": sample_rate, "record_format": RECORD_FORMAT,
                "files_per_shard": files_per_shard, "shards": 0, "files": 0, "seconds": 0.0, "skipped": 0,
                "resumed_shards": 0, "workers_peak_rss_mib": 0.0, "speakers": {}}
    context = multiprocessing.get_context("spawn")  # TensorFlow in the workers: never fork it
    try:
        with (concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool,
              open(out_dir / SKIPPED, "w", encoding="utf-8") as skipped):
            skipped.write("path\treason\n")
            try:
                pending: set[concurrent.futures.Future] = set()
                for index, paths in chunks:
                    digest = _chunk_digest(root, paths, sample_rate)
                    done = _finished_summary(out_dir, index, digest)
                    if done is not None:
                        manifest["resumed_shards"] += 1
                        _add(manifest, done, skipped)
                        continue
                    pending.add(pool.submit(write_shard, index, paths, str(root), str(out_dir), sample_rate, digest))
                    if len(pending) >= 2 * workers:  # bounded: the file list is never held whole
                        finished, pending = concurrent.futures.wait(
                            pending, return_when=concurrent.futures.FIRST_COMPLETED)
                        for future in finished:
                            _add(manifest, future.result(), skipped)
                for future in concurrent.futures.as_completed(pending):
                    _add(manifest, future.result(), skipped)
            except BaseException:  # Ctrl-C, SIGTERM, a failed shard: stop now, not after every queued shard
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    finally:  # once the workers are gone: what one stopped mid-shard (Ctrl-C and `timeout` reach them too)
        for partial in out_dir.glob(".shard-*.partial"):
            with contextlib.suppress(OSError):  # never in place of the error that ended the run
                partial.unlink()
    if manifest["files"] == 0:
        raise UsageError(f"no decodable audio files in {source} (why: {out_dir / SKIPPED})")
    for stale in out_dir.iterdir():  # shards of a larger earlier source
        numbered = re.fullmatch(r"shard-(\d{5})\.(tfrecord|json)", stale.name)
        if numbered and int(numbered[1]) >= manifest["shards"]:
            stale.unlink()
    manifest["speakers"] = {name: {"files": n, "seconds": s} for name, (n, s) in sorted(manifest["speakers"].items())}
    splits = next((c for c in (root / SPLITS, root.parent / SPLITS) if c.is_file()), None)
    (out_dir / SPLITS).unlink(missing_ok=True)
    if splits is not None:  # the source corpus' held-out speakers travel with it
        shutil.copy(splits, out_dir / SPLITS)
    atomic.write_text(out_dir / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def _chunks(files: Iterator[Path], root: Path, size: int) -> Iterator[tuple[int, list[str]]]:
    for index in itertools.count():
        chunk = [str(p.relative_to(root)) for p in itertools.islice(files, size)]
        if not chunk:
            return
        yield index, chunk


def _add(manifest: dict, summary: dict, skipped_file) -> None:
    manifest["shards"] = max(manifest["shards"], int(summary["shard"].split("-")[1]) + 1)
    manifest["files"] += summary["files"]
    manifest["seconds"] += summary["seconds"]
    manifest["skipped"] += len(summary["skipped"])
    manifest["workers_peak_rss_mib"] = max(manifest["workers_peak_rss_mib"], summary.get("worker_peak_rss_mib") or 0.0)
    for path, reason in summary["skipped"]:
        skipped_file.write(f"{_tsv_field(path)}\t{_tsv_field(reason)}\n")
    for speaker, (n, seconds) in summary["speakers"].items():
        stats = manifest["speakers"].setdefault(speaker, [0, 0.0])
        stats[0], stats[1] = stats[0] + n, stats[1] + seconds


def _tsv_field(text: str) -> str:
    """One TSV field: tabs, newlines and undecodable bytes escaped."""
    return audio_io.printable_name(text).replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


# --- reading -------------------------------------------------------------------------------

def shard_paths(folder: str | os.PathLike) -> list[str]:
    return sorted(str(p) for p in Path(expand_home(folder)).glob(SHARD_PATTERN))


def shards_with_speakers(folder: str | os.PathLike, speakers) -> list[str]:
    """The shards of a prepared folder that hold at least one of `speakers` (from their summaries)."""
    wanted = set(speakers)
    return [path for path in shard_paths(folder)
            if wanted & set(json.loads(Path(path).with_suffix(".json").read_text())["speakers"])]


def parse_example(serialized):
    """tf.train.Example -> {"audio": float32 [N] at the file's level (as read from it, or preloaded:
    beyond [-1, 1] for audio above full scale), "speaker": string, "path": string}."""
    import tensorflow as tf  # noqa: PLC0415

    features = tf.io.parse_single_example(serialized, {
        "audio": tf.io.FixedLenFeature([], tf.string), "speaker": tf.io.FixedLenFeature([], tf.string),
        "path": tf.io.FixedLenFeature([], tf.string), "sample_rate": tf.io.FixedLenFeature([], tf.int64),
        "gain": tf.io.FixedLenFeature([], tf.float32, default_value=1.0)})  # absent in format-1 shards
    pcm = tf.cast(tf.io.decode_raw(features["audio"], tf.int16), tf.float32)
    audio = pcm / audio_io.PCM16_SCALE * features["gain"]  # as speech._MemoryTable reads its int16
    return {"audio": audio, "speaker": features["speaker"], "path": features["path"]}


def read_shards(shards: list[str], shuffle_seed: int | None = None, shard_index: int = 0, shard_count: int = 1,
                cycle_length: int = 8):
    """Records of `shards` (this input pipeline's share: every shard_count-th shard from
    shard_index, or every shard_count-th record when there are fewer shards than pipelines), parsed.

    shuffle_seed: None reads in order, once (shard after shard); else an endless stream whose
    shard order reshuffles every pass and whose `cycle_length` shards are interleaved.
    Deterministic either way: the same seed gives the same records in the same order on every
    worker and rerun.
    """
    import tensorflow as tf  # noqa: PLC0415

    files = tf.data.Dataset.from_tensor_slices([os.fsencode(shard) for shard in shards])  # any folder name
    cycle_length = min(cycle_length, len(shards)) if shuffle_seed is not None else 1  # in order: shard by shard
    by_shard = len(shards) >= shard_count
    if by_shard:
        files = files.shard(shard_count, shard_index)
    if shuffle_seed is not None:
        files = files.shuffle(len(shards), seed=shuffle_seed, reshuffle_each_iteration=True).repeat()
    records = files.interleave(tf.data.TFRecordDataset, cycle_length=cycle_length,
                               num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if not by_shard:
        records = records.shard(shard_count, shard_index)
    return records.map(parse_example, num_parallel_calls=tf.data.AUTOTUNE)
