"""Speech + noise files -> (noisy, clean) waveform batches with tf.data.

A corpus that fits in `cfg.preload_mb` is decoded once (soundfile + soxr, at the model rate, int16)
and crops are slices in graph ops; a larger one is decoded on demand (only the crop that is needed,
through `tf.numpy_function`), or read from prepared TFRecord shards. Every example is a pure function of
(cfg.seed, its index): parallel maps stay reproducible.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import logging
import os
import threading
from pathlib import Path

import numpy as np
import tensorflow as tf

from audio_dl import audio_io, cli
from audio_dl.config import DenoiserConfig
from audio_dl.data import augment, corpora, records
from audio_dl.errors import UsageError
from audio_dl.paths import expand_home

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Split:
    """One split: speech files (with their speaker) and noise files, and/or the TFRecord shards
    of prepared speech folders (`python -m audio_dl.datasets prepare`) with this split's speakers."""

    speech: tuple[audio_io.AudioInfo, ...]
    speakers: tuple[str, ...]
    noise: tuple[audio_io.AudioInfo, ...]
    records: tuple[str, ...] = ()
    record_speakers: tuple[str, ...] = ()
    record_files: int = 0
    record_seconds: float = 0.0

    @property
    def speech_seconds(self) -> float:
        return sum(i.seconds for i in self.speech) + self.record_seconds

    @property
    def speech_files(self) -> int:
        return len(self.speech) + self.record_files

    @property
    def speaker_names(self) -> set[str]:
        return set(self.speakers) | set(self.record_speakers)


@dataclasses.dataclass(frozen=True)
class Corpus:
    train: Split
    val: Split
    skipped: int  # unreadable, corrupt or empty files, and those whose names are not UTF-8, left out


def load_corpus(cfg: DenoiserConfig) -> Corpus:
    """Find and probe the speech and noise files of cfg; split by speaker folder and noise file.

    Raises UsageError for missing paths, folders without audio, or an empty split.
    """
    speech_specs = corpora.resolve(cfg.speech, "speech")
    noise_specs = corpora.resolve(cfg.noise, "noise")
    prepared = [spec for spec in speech_specs if records.is_prepared(spec)]
    if prepared and len(prepared) < len(speech_specs):
        raise UsageError("speech: give either prepared TFRecord folders or audio folders, not both "
                         f"({prepared[0]} is prepared; {sorted(set(speech_specs) - set(prepared))[0]} is not)")
    record_stats, skipped_records = _record_speakers(prepared, cfg)
    speech_files, misnamed_speech = _utf8_named(_speech_files([spec for spec in speech_specs if spec not in prepared]),
                                                "speech", lambda item: f"{item[1]}/{item[0].name}")
    speech_infos, skipped_speech = audio_io.probe_all([p for p, _ in speech_files])
    speaker_of = dict((str(p), s) for p, s in speech_files)
    noise_files, misnamed_noise = _utf8_named(audio_io.find_audio_files(noise_specs), "noise", lambda path: path.name)
    noise_infos, skipped_noise = audio_io.probe_all(noise_files)
    if not (speech_infos or record_stats) or not noise_infos:
        raise UsageError(f"no readable {'noise' if not noise_infos else 'speech'} files in "
                         f"{', '.join(noise_specs if not noise_infos else speech_specs)}")
    if len(noise_infos) < 2:  # no setting splits one file
        raise UsageError("at least two readable noise files are needed (one is held out for validation); "
                         f"found 1 in {', '.join(noise_specs)}")

    if not record_stats and len({speaker_of[i.path] for i in speech_infos}) < 2:  # one voice: hold out files
        speaker_of = {i.path: Path(i.path).stem for i in speech_infos}
    speakers = sorted({speaker_of[i.path] for i in speech_infos} | set(record_stats))
    val_speakers = set(cfg.val_speakers or corpora.read_splits(speech_specs).get("val_speakers")
                       or _held_out(speakers, cfg.val_fraction))
    noise_names = sorted({Path(i.path).stem for i in noise_infos})
    for key, named, known in (("val_speakers", cfg.val_speakers, speakers), ("val_noises", cfg.val_noises, noise_names)):
        unknown = sorted(set(named) - set(known))
        if unknown:
            raise UsageError(f"{key}: {', '.join(unknown)} not in the corpus (it has {', '.join(known[:12])}"
                             f"{', ...' if len(known) > 12 else ''})")
    val_noises = set(cfg.val_noises or corpora.read_splits(noise_specs).get("val_noises")
                     or _held_out(noise_names, cfg.val_fraction))

    def split(is_val: bool) -> Split:
        speech = tuple(i for i in speech_infos if (speaker_of[i.path] in val_speakers) == is_val)
        noise = tuple(i for i in noise_infos if (Path(i.path).stem in val_noises) == is_val)
        in_records = tuple(name for name in sorted(record_stats) if (name in val_speakers) == is_val)
        return Split(speech, tuple(speaker_of[i.path] for i in speech), noise,
                     records=tuple(path for spec in prepared for path in records.shards_with_speakers(spec, in_records)),
                     record_speakers=in_records, record_files=sum(record_stats[n][0] for n in in_records),
                     record_seconds=sum(record_stats[n][1] for n in in_records))

    skipped = len(skipped_speech) + len(skipped_noise) + skipped_records + misnamed_speech + misnamed_noise
    corpus = Corpus(split(False), split(True), skipped)
    for name, part in (("training", corpus.train), ("validation", corpus.val)):
        if not part.speech_files or not part.noise:
            raise UsageError(f"the {name} split has no {'speech' if not part.speech_files else 'noise'} files; "
                             "add files or set val_speakers / val_noises / val_fraction")
    return corpus


def _record_speakers(prepared: list[str], cfg: DenoiserConfig) -> tuple[dict[str, tuple[int, float]], int]:
    """({speaker: (files, seconds)}, files skipped when preparing) over prepared TFRecord folders
    recorded at cfg.sample_rate."""
    stats: dict[str, tuple[int, float]] = {}
    skipped = 0
    for spec in prepared:
        manifest = records.read_manifest(spec)
        skipped += manifest["skipped"]
        if manifest["sample_rate"] != cfg.sample_rate:
            raise UsageError(f"{spec} was prepared at {manifest['sample_rate']} Hz but the model runs at "
                             f"{cfg.sample_rate} Hz; prepare it again with --sample-rate {cfg.sample_rate}")
        if manifest.get("record_format", 1) < records.RECORD_FORMAT:
            log.warning("%s was prepared before records kept each file's gain: a file above full scale reads "
                        "quieter than from its audio file; run `python -m audio_dl.datasets prepare` on it again "
                        "(it rewrites the shards)", spec)
        for name, s in manifest["speakers"].items():
            files, seconds = stats.get(name, (0, 0.0))
            stats[name] = (files + s["files"], seconds + s["seconds"])
    return stats, skipped


def _speech_files(specs: list[str]) -> list[tuple[Path, str]]:
    """(file, speaker) of every audio file of the speech specs, each file once (by its real path,
    as audio_io.find_audio_files within one spec) with the speaker of the first spec that lists it."""
    by_file: dict[str, tuple[Path, str]] = {}
    for spec in specs:
        for path in audio_io.find_audio_files([spec]):
            by_file.setdefault(os.path.realpath(path), (path, _speaker(path, spec)))
    return list(by_file.values())


def _speaker(path: Path, root: str) -> str:
    """Speaker = first folder below the spec root; files lying directly in it are their own speaker."""
    root_path = Path(expand_home(root))
    if root_path.is_dir():
        return records.speaker_of(path, root_path)
    return path.parent.name or path.stem


def _utf8_named(items: list, what: str, name_of) -> tuple[list, int]:
    """(the items whose name_of(item) is valid UTF-8, how many are not): the names a split is
    chosen by (a hash of speaker or noise names) and a card writes as text. The others are logged
    by the first (the folders above the corpus may be called anything)."""
    kept = [item for item in items if audio_io.is_utf8_name(name_of(item))]
    if len(kept) < len(items):
        first = next(name_of(item) for item in items if not audio_io.is_utf8_name(name_of(item)))
        log.warning("skipped %d %s file(s) whose name is not valid UTF-8 (rename them), e.g. %s",
                    len(items) - len(kept), what, audio_io.printable_name(first))
    return kept, len(items) - len(kept)


def _held_out(names: list[str], fraction: float) -> list[str]:
    """A stable `fraction` of names (at least one when there are two or more), chosen by hash."""
    if len(names) < 2 or fraction <= 0:
        return []
    ranked = sorted(names, key=lambda n: hashlib.sha1(n.encode()).hexdigest())
    return ranked[: max(1, round(fraction * len(names)))]


# --- reading crops inside tf.data -----------------------------------------------------------

_failed_paths: set[str] = set()
_failures_lock = threading.Lock()


def read_failures() -> int:
    """Distinct files skipped mid-run: those that failed to decode after a good header (however
    many of their crops failed), preloaded ones that are silent (audio_io.is_silent) and impulse
    responses that do not decode or are silent."""
    return len(_failed_paths)


def reset_read_failures() -> None:
    with _failures_lock:
        _failed_paths.clear()


def _read_or_count(path: str, sample_rate: int, start: float = 0.0, seconds: float | None = None,
                   what: str = "an undecodable file") -> np.ndarray:
    """audio_io.read_audio, or [0] for a file that fails to decode (counted and logged as `what`)."""
    try:
        return audio_io.read_audio(path, sample_rate, start, seconds)
    except ValueError as error:
        _count_skip(path, what, error)
        return np.zeros(0, np.float32)


def _count_skip(path: str, what: str, detail) -> None:
    """Count `path` as skipped and log it, once per distinct path."""
    with _failures_lock:
        if path in _failed_paths:
            return
        _failed_paths.add(path)
        count = len(_failed_paths)
    log.warning("skipped %s (%d so far): %s", what, count, detail)


def _read_crop(path: bytes, seconds: float, native_seconds: float, position: float, sample_rate: int,
               loop: bool) -> np.ndarray:
    """[round(sample_rate*seconds)] float32 from `position` (0..1) of the file (float audio above
    full scale as it is: _MemoryTable keeps its level too).

    Short files are looped (noise) or placed at `position` in zeros (speech). Returns [0] on a
    decode failure (counted, then filtered out by the pipeline).
    """
    length = int(round(sample_rate * seconds))
    if native_seconds > seconds:
        audio = _read_or_count(os.fsdecode(path), sample_rate, position * (native_seconds - seconds), seconds)
    else:
        audio = _read_or_count(os.fsdecode(path), sample_rate)
    if audio.size == 0:
        return audio
    if audio.size < length:
        if loop:
            audio = np.tile(audio, -(-length // audio.size))
        else:
            offset = int(position * (length - audio.size))
            audio = np.pad(audio, (offset, length - audio.size - offset))
    return audio[:length].astype(np.float32)


class _FileTable:
    """Paths and durations as tensors; draws a file with probability proportional to its length
    and decodes only the crop it needs, per example (soundfile + soxr through numpy_function)."""

    def __init__(self, infos):
        self.paths = tf.constant([os.fsencode(i.path) for i in infos])  # bytes: any name the file system holds
        self.seconds = tf.constant([i.seconds for i in infos], tf.float32)
        self.cumulative = tf.constant(np.cumsum([i.seconds for i in infos]), tf.float32)

    def draw(self, seed):
        return _draw(self.cumulative, seed)

    def read(self, index, seconds: float, position, sample_rate: int, loop: bool):
        audio = tf.numpy_function(
            _read_crop, [self.paths[index], seconds, self.seconds[index], position, sample_rate, loop],
            tf.float32, stateful=False)
        return tf.reshape(audio, [-1])


class _MemoryTable:
    """Every file decoded once at the model rate into one int16 tensor: a crop is a slice (or a
    gather, when looped), all in graph ops, with the same draws and positions as _FileTable, and
    for files at the model rate the same samples (float audio above full scale keeps its level:
    see audio_io.to_pcm16); a file at another rate is resampled whole here but crop by crop there,
    so its crops start up to a sample apart and their edges differ: a resumed run whose new
    preload_mb (a RERUN_KEYS key) moves the corpus across the limit trains on crops shifted that
    little.
    Files that fail to decode or are silent (audio_io.is_silent) are counted once and never drawn
    (_FileTable, which decodes crop by crop, draws a silent noise file, uncounted: the examples
    whose noise crop is silent are dropped)."""

    def __init__(self, infos, sample_rate: int):
        flat, lengths, gains, failures = _decode_all(tuple(i.path for i in infos), sample_rate)
        for path, what, detail in failures:  # counted by each table: a later run in this process resets the count
            _count_skip(path, what, detail)
        if not lengths.sum():  # nothing could be drawn: say so, not an index error mid-training
            names = ", ".join(Path(i.path).name for i in infos[:3]) + (", ..." if len(infos) > 3 else "")
            raise UsageError(f"none of {names} decodes to usable audio (undecodable, not finite or digitally silent)")
        self.flat = tf.constant(flat)  # [total samples] int16
        self.gains = tf.constant(gains, tf.float32)  # [K]: 1, or the peak of a file above full scale
        self.lengths = tf.constant(lengths, tf.int64)
        self.starts = tf.constant(np.concatenate([[0], np.cumsum(lengths)[:-1]]), tf.int64)
        self.cumulative = tf.constant(np.cumsum(lengths) / sample_rate, tf.float32)

    def draw(self, seed):
        return _draw(self.cumulative, seed)

    def read(self, index, seconds: float, position, sample_rate: int, loop: bool):
        length = int(round(sample_rate * seconds))
        size, start = self.lengths[index], self.starts[index]
        if loop:
            offset = tf.cast(position * tf.cast(tf.maximum(size - length, 0), tf.float32), tf.int64)
            positions = start + (offset + tf.range(length, dtype=tf.int64)) % tf.maximum(size, 1)
            audio = tf.gather(self.flat, positions)
        else:
            audio = _crop_at(tf.slice(self.flat, [start], [size]), position, length)
        # / PCM16_SCALE first: a file within full scale at the model rate reads back exactly as before (x 1.0)
        return tf.ensure_shape(tf.cast(audio, tf.float32) / audio_io.PCM16_SCALE * self.gains[index], [length])


def _crop_at(audio, position, length: int):
    """[length] from `position` (0..1) of a 1-D recording: a window of a longer one, or a shorter
    one placed at that position in zeros (graph ops, any dtype)."""
    size = tf.size(audio, tf.int64)
    start = tf.cast(position * tf.cast(tf.maximum(size - length, 0), tf.float32), tf.int64)
    offset = tf.cast(position * tf.cast(tf.maximum(length - size, 0), tf.float32), tf.int64)
    piece = audio[start:start + length]
    return tf.pad(piece, [[offset, length - offset - tf.size(piece, tf.int64)]])


def _draw(cumulative, seed):
    """Index of a file drawn with probability proportional to its length ([K] cumulative sums)."""
    u = tf.random.stateless_uniform([1], seed, 0.0, 1.0) * cumulative[-1]
    return tf.minimum(tf.searchsorted(cumulative, u, side="right")[0], tf.size(cumulative) - 1)


@functools.lru_cache(maxsize=4)
def _decode_all(paths: tuple[str, ...], sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """(samples, lengths, gains, failures): all files at sample_rate as one int16 array, [K]
    lengths, [K] gains (see audio_io.to_pcm16), and the (path, what, detail) of each file left
    out, with length 0: one that is undecodable or silent as stored (audio_io.is_silent: every
    sample rounds to the same value; as noise it would add nothing but a constant)."""

    def decode(path):
        try:
            pcm, gain = audio_io.to_pcm16(audio_io.read_audio(path, sample_rate))
        except ValueError as error:  # its text: the cached error would keep read_audio's frames, audio and all
            return np.zeros(0, np.int16), 1.0, (path, "an undecodable file", str(error))
        if pcm.size and audio_io.is_silent(pcm / audio_io.PCM16_SCALE):
            return np.zeros(0, np.int16), 1.0, (path, "a silent file (digital silence or a constant offset)", path)
        return pcm, gain, None

    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # soundfile and soxr release the GIL
        decoded = list(pool.map(decode, paths))
    return (np.concatenate([pcm for pcm, _, _ in decoded]), np.array([pcm.size for pcm, _, _ in decoded], np.int64),
            np.array([gain for _, gain, _ in decoded]), tuple(failure for _, _, failure in decoded if failure))


def _table(infos, cfg: DenoiserConfig):
    """Decoded in memory when the files fit in cfg.preload_mb (as int16 at the model rate), else read per crop."""
    megabytes = 2 * cfg.sample_rate * sum(i.seconds for i in infos) / 2**20
    return _MemoryTable(infos, cfg.sample_rate) if megabytes <= cfg.preload_mb else _FileTable(infos)


def _load_impulse_responses(cfg: DenoiserConfig) -> tf.Tensor:
    """Room impulse responses [K, L] (zero-padded, peak-normalised, at most 2 s): the recorded ones
    of cfg.impulse_responses, or 64 simulated shoebox rooms. Recorded files that do not decode, hold
    samples that are not finite or are silent (audio_io.is_silent) are skipped and counted."""
    if cfg.impulse_responses:
        responses = [r for r in (_read_impulse_response(str(path), cfg.sample_rate)
                                 for path in audio_io.find_audio_files(cfg.impulse_responses)) if r is not None]
        if not responses:
            raise UsageError("no readable impulse responses in " + ", ".join(cfg.impulse_responses))
        responses = [r / float(np.abs(r).max()) for r in responses]
    else:
        responses = augment.simulated_impulse_responses(64, cfg.sample_rate, cfg.rt60_seconds, cfg.seed)
    longest = max(len(r) for r in responses)
    return tf.constant(np.stack([np.pad(r, (0, longest - len(r))) for r in responses]).astype(np.float32))


def _read_impulse_response(path: str, sample_rate: int) -> np.ndarray | None:
    """The first 2 s of a recorded impulse response, float32 [L] at sample_rate; None (counted and
    logged) for one that does not decode, is not finite, is empty or is silent."""
    what = "an unusable impulse response"
    response = _read_or_count(path, sample_rate, 0.0, 2.0, what)
    if response.size == 0 or audio_io.is_silent(response):  # an undecodable one is counted already
        _count_skip(path, what, f"{path} is empty or silent (digital silence or a constant offset)")
        return None
    return response


def make_example_fn(split: Split, cfg: DenoiserConfig, augmented: bool):
    """(index[, clean crop [N] from the records]) -> {"clean": [N], "noisy": [N], "ok": whether
    both decoded (else zeros)}; without a clean crop, the speech is read from the split's files."""
    speech = _table(split.speech, cfg) if split.speech else None
    noise = _table(split.noise, cfg)
    responses = _load_impulse_responses(cfg) if augmented and cfg.reverb_probability > 0 else None
    seconds, rate = cfg.crop_samples / cfg.sample_rate, cfg.sample_rate

    def example(index, clean=None):
        seeds = [tf.stack([tf.constant(cfg.seed, tf.int64), index * 16 + k]) for k in range(16)]
        uniform = [tf.random.stateless_uniform([], s) for s in seeds]
        if clean is None:
            clean = speech.read(speech.draw(seeds[0]), seconds, uniform[1], rate, loop=False)
        noise_clip = noise.read(noise.draw(seeds[2]), seconds, uniform[3], rate, loop=True)
        ok = tf.logical_and(tf.size(clean) == cfg.crop_samples, tf.size(noise_clip) == cfg.crop_samples)
        ok = tf.logical_and(ok, augment.audible(noise_clip))  # silent noise (a file read per crop) mixes nothing
        clean = tf.cond(ok, lambda: clean, lambda: tf.zeros([cfg.crop_samples]))
        noise_clip = tf.cond(ok, lambda: noise_clip, lambda: tf.zeros([cfg.crop_samples]))
        if augmented:
            noise_clip = _augment_noise(noise_clip, noise, seeds[11:16], uniform[11:16], cfg)
        if augmented and cfg.speech_speed != (1.0, 1.0):
            low, high = cfg.speech_speed
            speed_seed = tf.stack([tf.constant(cfg.seed + 2, tf.int64), index])  # its own stream
            clean = augment.change_speed(clean, low + (high - low) * tf.random.stateless_uniform([], speed_seed))
        if augmented and cfg.reverb_probability > 0:
            rir = responses[tf.random.stateless_uniform([], seeds[4], 0, responses.shape[0], tf.int32)]
            clean = tf.cond(uniform[5] < cfg.reverb_probability,
                            lambda: augment.reverberate(clean, rir), lambda: clean)
        snr = cfg.snr_db[0] + (cfg.snr_db[1] - cfg.snr_db[0]) * uniform[6]
        noisy, _ = augment.mix_at_snr(clean, noise_clip, snr)
        if augmented and cfg.bandpass_probability > 0:
            low = cfg.low_cut_hz[0] + (cfg.low_cut_hz[1] - cfg.low_cut_hz[0]) * uniform[7]
            high = cfg.high_cut_hz[0] + (cfg.high_cut_hz[1] - cfg.high_cut_hz[0]) * uniform[8]
            pair = tf.stack([clean, noisy])
            pair = tf.cond(uniform[9] < cfg.bandpass_probability,
                           lambda: augment.bandpass(pair, low, high, rate), lambda: pair)
            clean, noisy = pair[0], pair[1]
        speech_power = augment.power(clean)  # before the random level: what min_speech_dbfs judges
        if augmented:
            gain = augment.db_to_gain(cfg.gain_db[0] + (cfg.gain_db[1] - cfg.gain_db[0]) * uniform[10])
            clean, noisy = clean * gain, noisy * gain
        return {"clean": clean, "noisy": noisy, "ok": ok, "speech_power": speech_power}

    return example


def _augment_noise(clip, noise_table, seeds, uniform, cfg: DenoiserConfig):
    """Real noise -> maybe a synthetic family instead, maybe plus a second real noise, random tilt."""
    length, rate = cfg.crop_samples, cfg.sample_rate
    clip = augment.unit_rms(clip)
    clip = tf.cond(uniform[0] < cfg.synthetic_noise_probability,
                   lambda: augment.synthetic_noise(seeds[0], length, rate, cfg.synthetic_noises),
                   lambda: clip)

    def add_second():
        second = noise_table.read(noise_table.draw(seeds[1]), length / rate, uniform[2], rate, loop=True)
        second = tf.cond(tf.size(second) == length, lambda: second, lambda: tf.zeros([length]))
        return clip + uniform[3] * augment.unit_rms(second)

    clip = tf.cond(uniform[1] < cfg.second_noise_probability, add_second, lambda: clip)
    tilt = cfg.noise_tilt_db * (uniform[4] - 0.5) * 2.0
    return augment.spectral_tilt(clip, tilt, rate)


def _loud_enough(cfg: DenoiserConfig):
    threshold = augment.db_to_gain(cfg.min_speech_dbfs) ** 2

    def keep(example):
        return tf.logical_and(example["ok"], example["speech_power"] >= threshold)

    return keep


def _to_model_io(example):
    return example["noisy"], {"denoised": example["clean"], "magnitude": example["clean"]}


def _training_examples(split: Split, cfg: DenoiserConfig, context: tf.distribute.InputContext,
                       first_example: int = 0) -> tf.data.Dataset:
    """The endless stream of augmented examples, before the min_speech_dbfs filter, from example
    `first_example` of the stream (summed over the input pipelines) on."""
    shards, shard = context.num_input_pipelines, context.input_pipeline_id
    start = first_example // shards
    indices = tf.data.Dataset.counter(start).map(lambda i: i * shards + shard)
    if split.records:
        indices = tf.data.Dataset.zip(indices, _record_crops(split, cfg, context, endless=True, first_crop=start))
    return indices.map(make_example_fn(split, cfg, augmented=cfg.augment), num_parallel_calls=tf.data.AUTOTUNE)


PROBED_EXAMPLES = 256  # of each split, before training: enough to find speech in any usable corpus


def require_examples(corpus: Corpus, cfg: DenoiserConfig) -> None:
    """UsageError unless the first PROBED_EXAMPLES training mixtures, and the validation ones,
    include speech louder than cfg.min_speech_dbfs. Silent, undecodable or NaN speech files give
    none: the validation metrics would be NaN and the endless training stream would wait for ever."""
    training = _training_examples(corpus.train, cfg, tf.distribute.InputContext()).take(PROBED_EXAMPLES)
    for name, examples in (("training", training.filter(_loud_enough(cfg))),
                           ("validation", validation_dataset(corpus.val, cfg))):
        if not any(True for _ in examples.take(1)):
            raise UsageError(f"no {name} mixture has speech louder than min_speech_dbfs={cfg.min_speech_dbfs:g} "
                             "dBFS (the split's speech is silent, its speech or noise files do not decode "
                             "to finite audio, or its noise is silent)")


def training_dataset(split: Split, cfg: DenoiserConfig, context: tf.distribute.InputContext | None = None,
                     first_example: int = 0) -> tf.data.Dataset:
    """Endless (noisy [B, N], {"denoised": clean, "magnitude": clean}) batches with augmentation.

    Under a distribution strategy (`context`), input pipeline k of K draws the example indices
    k, K + k, 2K + k, ... and batches B / replicas. A resumed run starts at `first_example` (the
    examples its finished epochs trained on), so it does not train on the same mixtures again but
    for a few: the indices of the examples the min_speech_dbfs filter dropped are not counted, so
    that many of the last drawn are drawn again.
    """
    cli.require_utf8_temporary_folder()  # its maps are traced: a clear refusal, not pybind's cast error
    context = context or tf.distribute.InputContext()
    return (_training_examples(split, cfg, context, first_example)
            .filter(_loud_enough(cfg))
            .map(_to_model_io)
            .batch(context.get_per_replica_batch_size(cfg.batch_size), drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE))


def validation_dataset(split: Split, cfg: DenoiserConfig,
                       context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """The same `cfg.val_examples` mixtures every time (no augmentation), cached, batched
    (per replica under a strategy: every worker scores all of them, so all see the same mean)."""
    cli.require_utf8_temporary_folder()
    context = context or tf.distribute.InputContext()
    val_cfg = dataclasses.replace(cfg, seed=(cfg.seed + 7919) % 2**32)  # a valid seed, also near 2**32
    batch = max(1, min(cfg.batch_size, cfg.val_examples) // context.num_replicas_in_sync)
    indices = tf.data.Dataset.range(20 * cfg.val_examples)  # bounded: silent files cannot stall it
    if split.records:
        indices = tf.data.Dataset.zip(indices, _record_crops(split, val_cfg, None, endless=False))
    return (indices
            .map(make_example_fn(split, val_cfg, augmented=False), num_parallel_calls=tf.data.AUTOTUNE)
            .filter(_loud_enough(cfg))
            .take(cfg.val_examples)
            .map(_to_model_io)
            .cache()
            .batch(batch)
            .prefetch(tf.data.AUTOTUNE))


def _record_crops(split: Split, cfg: DenoiserConfig, context: tf.distribute.InputContext | None,
                  endless: bool, first_crop: int = 0) -> tf.data.Dataset:
    """Clean crops [cfg.crop_samples] of the split's speakers from its TFRecord shards.

    endless: shards in a new order every pass, interleaved, records shuffled (training; a resumed
    run, first_crop > 0, in another order); else every (record_files // val_examples)-th record
    in a fixed order, repeated (validation: the same crops every time, from all over the split). A
    crop starts at a random position of a longer recording; a shorter one lies at a random offset
    in zeros.
    """
    context = context or tf.distribute.InputContext()
    speakers = tf.constant(split.record_speakers)
    shuffle_seed = cfg.seed + first_crop
    ds = records.read_shards(list(split.records), shuffle_seed=shuffle_seed if endless else None,
                             shard_index=context.input_pipeline_id, shard_count=context.num_input_pipelines)
    ds = ds.filter(lambda r: tf.reduce_any(tf.equal(r["speaker"], speakers)))
    if endless:
        ds = ds.shuffle(RECORD_SHUFFLE_BUFFER, seed=shuffle_seed)
    else:  # every k-th record: the first val_examples crops span every speaker and file, not the first few
        ds = ds.shard(max(1, split.record_files // cfg.val_examples), 0).repeat()
    length = cfg.crop_samples

    def crop(index, record):
        position = tf.random.stateless_uniform([], tf.stack([tf.constant(cfg.seed + 1, tf.int64), index]))
        return tf.ensure_shape(_crop_at(record["audio"], position, length), [length])

    return ds.enumerate(first_crop).map(crop, num_parallel_calls=tf.data.AUTOTUNE)


RECORD_SHUFFLE_BUFFER = 512  # records (whole utterances) mixed across the interleaved shards
