"""Denoising files with an exported model (SavedModel or TFLite), in bounded memory.

Audio is read in blocks, resampled to the model rate with a streaming soxr resampler, denoised
in overlapping chunks and resampled back, so an hour-long file needs no more memory than one
chunk. Each chunk is run with `warmup` samples of past and `lookahead` samples of future
context and only its middle is kept: the model's receptive field is covered, so the chunked
output equals the whole-file output (up to float rounding; for a GRU model, up to what its state
still remembers of audio older than the warmup) and there are no seams.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import math
import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile
import soxr

from audio_dl import audio_io, export
from audio_dl.atomic import staged_file
from audio_dl.config import DenoiserConfig, load_config
from audio_dl.errors import UsageError
from audio_dl.litert import signature_runner
from audio_dl.streaming import StreamingDenoiser

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Denoiser:
    """An exported denoiser: `run([batch, n] float32) -> [batch, n]` at `cfg.sample_rate` (batch 1
    and n = fixed_length for a whole-clip TFLite model).

    fixed_length: the only input length a TFLite model takes (None: any length).
    """

    cfg: DenoiserConfig
    run: Callable[[np.ndarray], np.ndarray]
    fixed_length: int | None
    path: Path

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def warmup(self) -> int:
        """Past samples replayed before each chunk, hop-aligned: the model's receptive field, plus
        recurrent_warmup_seconds for a GRU model (its state has no hard horizon; after this much
        audio it has forgotten where it started, to within the chunking test's tolerance)."""
        cfg = self.cfg
        frames = cfg.history_frames + 2 * cfg.frame_length // cfg.hop_length - 1  # + the frames over a sample
        if cfg.recurrent_units:
            frames += math.ceil(cfg.recurrent_warmup_seconds * cfg.sample_rate / cfg.hop_length)
        return frames * cfg.hop_length

    @property
    def lookahead(self) -> int:
        """Future samples that influence an output sample (the overlap-add of the last frame and
        the frames the model looks ahead)."""
        return self.cfg.frame_length + self.cfg.lookahead_frames * self.cfg.hop_length


def load_denoiser(path: str | os.PathLike) -> Denoiser:
    """Load a SavedModel folder (or its saved_model.pb), a TF Serving base path (highest version)
    or a `.tflite` file (whole-clip, or a one-hop streaming model run block by block).

    Raises UsageError when the path is missing or does not hold a waveform -> denoised model.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"model not found: {path}")
    if path.name == "saved_model.pb":  # the file inside a SavedModel folder stands for the folder
        path = path.parent
    if path.is_dir():
        newest = export.newest_export(path)
        if newest is None:
            raise UsageError(f"no model in {path}: give an exported denoiser (train one with "
                             "`python -m audio_dl.train_denoiser`)")
        path = newest
    run, fixed_length = _load_saved_model(path) if path.is_dir() else _load_tflite(path)
    cfg = load_config(DenoiserConfig, (path if path.is_dir() else path.parent) / "config.json")
    denoiser = Denoiser(cfg, run, fixed_length, path)
    _try_on_a_test_signal(denoiser)
    return denoiser


def _try_on_a_test_signal(denoiser: Denoiser) -> None:
    """UsageError unless the model turns about a second of noise (its fixed length, if it has one)
    into as many finite samples: a damaged file can load with the right signature and still fail
    in its kernels or compute NaN, which would end a run with a traceback, or be written to a WAV
    as full-scale noise."""
    length = denoiser.fixed_length or denoiser.sample_rate + 37  # + 37: not a whole number of hops
    probe = (0.1 * np.random.default_rng(0).standard_normal((1, length))).astype(np.float32)
    try:
        out = denoiser.run(probe)
    except Exception as error:  # noqa: BLE001 - whatever the runtime raises, the model is unusable
        if isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError":
            raise  # the machine's, not the model's
        first_line = next(iter(str(error).splitlines()), "")
        reason = f"fails on a test signal: {type(error).__name__}: {first_line}"
    else:
        if out.shape == probe.shape and np.all(np.isfinite(out)):
            return
        reason = ("gives samples that are not finite" if out.shape == probe.shape
                  else f"gives shape {out.shape} for {probe.shape} samples")
    raise UsageError(f"{audio_io.shown_path(denoiser.path)} is not a working denoiser: it {reason}")


def _load_saved_model(path: Path):
    import tensorflow as tf  # noqa: PLC0415 - only SavedModels need TensorFlow here

    export.require_utf8_saved_model_path(path, ", or give one of its .tflite files")
    try:
        signature = tf.saved_model.load(str(path)).signatures["serving_default"]
        inputs = signature.structured_input_signature[1]
        ok = set(inputs) == {"waveform"} and "denoised" in signature.structured_outputs
    except Exception:  # noqa: BLE001 - any loader failure means "not a model we can use"
        ok = False
    if not ok:
        raise UsageError(f"{path} is not a denoiser SavedModel (needs serving_default: waveform -> denoised)")

    def run(waveform: np.ndarray) -> np.ndarray:
        return signature(waveform=tf.constant(_batch(waveform, None), tf.float32))["denoised"].numpy()

    return run, None


def _load_tflite(path: Path):
    try:
        runner = signature_runner(path)
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
    except Exception:  # noqa: BLE001
        inputs, outputs = {}, {}
    if "samples" in inputs:  # a one-hop streaming model, run hop by hop with its latency removed
        stream = StreamingDenoiser(path)

        def run_streaming(waveform: np.ndarray) -> np.ndarray:
            return np.stack([stream.denoise(row) for row in _batch(waveform, None)])

        return run_streaming, None
    shape = inputs["waveform"]["shape_signature"] if "waveform" in inputs else ()  # -1: any length
    if not ("denoised" in outputs and len(shape) == 2 and shape[0] in (1, -1)):
        raise UsageError(f"{path} is not a denoiser TFLite model (needs waveform [1, N] -> denoised, "
                         "or a streaming model)")
    length = None if shape[1] == -1 else int(shape[1])

    def run(waveform: np.ndarray) -> np.ndarray:  # a row at a time: [1, n] is what every such model takes
        return np.concatenate([np.array(runner(waveform=row[np.newaxis])["denoised"], copy=True)
                               for row in _batch(waveform, length)])

    return run, length


def _batch(waveform: np.ndarray, fixed_length: int | None) -> np.ndarray:
    """Denoiser.run's input as float32 [batch, n] (for a fixed-length TFLite model [1, fixed_length]),
    or ValueError saying which shape it takes."""
    array = np.asarray(waveform, np.float32)
    if fixed_length is None and array.ndim != 2:
        raise ValueError(f"Denoiser.run takes [batch, n] samples, not shape {array.shape} "
                         "(denoise_array takes a [n] waveform of any length)")
    if fixed_length is not None and array.shape != (1, fixed_length):
        raise ValueError(f"this TFLite model takes [1, {fixed_length}] samples, not shape {array.shape} "
                         "(denoise_array takes a [n] waveform of any length)")
    return array


class ChunkedDenoising:
    """Push [n] model-rate samples, get denoised samples back in order (bounded memory).

    chunk: samples kept per chunk (for a fixed-length model: its length minus the margins).
    batch_chunks: chunks run together in one model call (a SavedModel takes any batch; a GRU
    model is sequential in time, so a batch of chunks is what keeps the cores busy). At most
    batch_chunks * chunk samples plus the margins are held.
    """

    def __init__(self, denoiser: Denoiser, chunk_seconds: float = 30.0, batch_chunks: int = 4):
        positive_seconds("chunk_seconds", chunk_seconds)
        self.denoiser = denoiser
        self.warmup, self.lookahead = denoiser.warmup, denoiser.lookahead
        hop = denoiser.cfg.hop_length  # chunks start on the whole file's frame grid
        if denoiser.fixed_length is not None:
            self.chunk = (denoiser.fixed_length - self.warmup - self.lookahead) // hop * hop
            if self.chunk <= 0:
                raise UsageError(f"{denoiser.path}: input length {denoiser.fixed_length} is shorter than the "
                                 f"model's context ({self.warmup + self.lookahead} samples)")
            self.batch_chunks = 1  # a TFLite model has batch 1
        else:
            self.chunk = max(hop, int(chunk_seconds * denoiser.sample_rate) // hop * hop)
            self.batch_chunks = max(1, batch_chunks)
        self.buffer = np.zeros(0, np.float32)
        self.buffer_start = 0  # absolute index of buffer[0]
        self.done = 0  # samples already emitted

    @property
    def _end(self) -> int:
        return self.buffer_start + len(self.buffer)

    def push(self, samples: np.ndarray) -> Iterator[np.ndarray]:
        self.buffer = np.concatenate([self.buffer, np.asarray(samples, np.float32)])
        while self._end >= self.done + self.batch_chunks * self.chunk + self.lookahead + self.warmup:
            yield self._process(final=False)

    def flush(self) -> Iterator[np.ndarray]:
        while self.done < self._end:
            yield self._process(final=True)

    def _plan(self, final: bool) -> list[tuple[int, int, int]]:
        """(start, keep_from, keep_until) of the next chunks; each is run on [start, stop)."""
        plans, done = [], self.done
        while len(plans) < self.batch_chunks and done < self._end:
            if not final and self._end < done + self.chunk + self.lookahead + self.warmup:
                break
            keep_until = min(done + self.chunk, self._end) if final else done + self.chunk
            plans.append((max(0, done - self.warmup), done, keep_until))
            done = keep_until
        return plans

    def _process(self, final: bool) -> np.ndarray:
        plans = self._plan(final)
        # a segment runs to lookahead past what it keeps; a shorter one is padded with silence
        # after that (the model is causal up to its lookahead, so the kept samples do not change)
        stops = [min(self._end, keep_until + self.lookahead) for _, _, keep_until in plans]
        length = self.denoiser.fixed_length or max(stop - start for (start, _, _), stop in zip(plans, stops))
        segments = np.zeros((len(plans), length), np.float32)
        for row, ((start, _, _), stop) in enumerate(zip(plans, stops)):
            segments[row, :stop - start] = self.buffer[start - self.buffer_start:stop - self.buffer_start]
        denoised = self.denoiser.run(segments)
        kept = np.concatenate([denoised[row, keep_from - start:keep_until - start]
                               for row, (start, keep_from, keep_until) in enumerate(plans)])
        self.done = plans[-1][2]
        drop = max(0, self.done - self.warmup - self.buffer_start)
        self.buffer, self.buffer_start = self.buffer[drop:], self.buffer_start + drop
        return kept


def denoise_array(denoiser: Denoiser, waveform: np.ndarray, chunk_seconds: float = 30.0,
                  batch_chunks: int = 4) -> np.ndarray:
    """Denoise a float [n] model-rate waveform (one channel, in [-1, 1]) chunk by chunk, the same
    path files take; returns float32 [n]. ValueError for integer PCM, several channels or samples
    that are not finite."""
    waveform = audio_io.mono_samples(waveform, channels_hint=" (denoise_file takes any number of channels)")
    chunks = ChunkedDenoising(denoiser, chunk_seconds, batch_chunks)
    parts = list(chunks.push(waveform)) + list(chunks.flush())
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def positive_seconds(name: str, seconds: float) -> float:
    """`seconds` if it is a finite number > 0; UsageError naming `name` otherwise (NaN too)."""
    if not 0 < seconds < math.inf:
        raise UsageError(f"{name} must be a number of seconds > 0 (got {seconds})")
    return seconds


def strength_to_limit(strength_db: float | None) -> float:
    """Attenuation limit in dB (>= 0; None or infinity: unlimited) -> the share of noisy signal
    kept (0 when unlimited). UsageError for a negative limit or NaN."""
    if strength_db is None:
        return 0.0
    if not strength_db >= 0:  # NaN fails too
        raise UsageError(f"the strength (attenuation limit) must be >= 0 dB (got {strength_db})")
    return float(10.0 ** (-strength_db / 20.0))


def mix_strength(noisy: np.ndarray, denoised: np.ndarray, limit: float) -> np.ndarray:
    """out = noisy*limit + denoised*(1-limit): the attenuation limit (see strength_to_limit)."""
    return (limit * noisy + (1.0 - limit) * denoised).astype(np.float32)


def denoise_file(denoiser: Denoiser, source: str | os.PathLike, target: str | os.PathLike,
                 strength_db: float | None = None, block_seconds: float = 10.0, chunk_seconds: float = 30.0) -> float:
    """Denoise any audio file (any rate, any channels; each channel on its own) into a WAV at the
    input's rate and resolution (`wav_subtype`) with as many samples as the input decodes to (a
    file cut short: its decoded part, with a warning), streaming; written atomically.
    out = noisy*lim + denoised*(1-lim), noisy at the input's rate.

    Returns the duration in seconds. Raises FileNotFoundError for a missing source, ValueError
    when it cannot be decoded, holds no samples or samples that are not finite (audio_io.NonFiniteAudio),
    OSError when the output cannot be written, UsageError for a negative strength or seconds that
    are not > 0.
    """
    source, target, limit = Path(source), Path(target), strength_to_limit(strength_db)
    positive_seconds("block_seconds", block_seconds)  # chunk_seconds: checked by ChunkedDenoising
    src = open_source(source)  # refused before an output file or its folder is made
    with src, staged_file(target) as tmp, _WavOutput(tmp, target, src) as out:
        streams = [_ChannelStream(denoiser, src.samplerate, limit, chunk_seconds) for _ in range(src.channels)]
        for block in _finite_blocks(src, source, max(1, int(block_seconds * src.samplerate))):
            out.frames_in += len(block)
            out.write([s.push(block[:, c]) for c, s in enumerate(streams)])
        out.write([s.flush() for s in streams], last=True)
    return out.frames_in / src.samplerate


def open_source(source: str | os.PathLike) -> soundfile.SoundFile:
    """`source` opened for reading; FileNotFoundError when it is missing, ValueError when it cannot
    be decoded or holds no samples (what denoise_file refuses before it writes anything)."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(errno.ENOENT, "no such file", str(source))
    try:
        src = audio_io.open_audio(source)
    except soundfile.LibsndfileError as error:
        raise _undecodable(source, error) from None
    if not src.frames:
        src.close()
        raise ValueError(f"{source} holds no audio samples")
    return src


def _undecodable(source: Path, error: Exception) -> ValueError:
    pipe = ("; from a pipe it reads WAV, MP3 and OGG, FLAC only from a file (it seeks)"
            if audio_io.is_stream(source) else "")
    return ValueError(f"cannot decode {source}: not audio that libsndfile reads "
                      f"(libsndfile: {audio_io.decode_failure(source, error)}){pipe}")


def _finite_blocks(src: soundfile.SoundFile, source: Path, blocksize: int) -> Iterator[np.ndarray]:
    """src's [<= blocksize, channels] float32 blocks, as many frames as decode; ValueError when
    decoding fails part-way or a block holds NaN or infinite samples (they would spread through
    the model's context) or none decode. A file that decodes fewer frames than its header
    announces (an MP3 cut short) ends where its audio does, with a warning (SoundFile.blocks would
    pad it with whatever its buffer held)."""
    decoded = 0
    while True:
        try:
            block = src.read(blocksize, dtype="float32", always_2d=True)
        except soundfile.LibsndfileError as error:
            raise _undecodable(source, error) from None
        if not len(block):
            break
        audio_io.require_finite(block, source)
        decoded += len(block)
        yield block
    if not decoded:  # raised inside denoise_file's staged output: no empty WAV is left
        raise ValueError(f"{source} holds no audio samples (its header announces {src.frames} frames; none decode)")
    if decoded < src.frames:
        log.warning("%s: decoded %d of the %d frames its header announces (cut short?)", source, decoded, src.frames)


class _WavOutput:
    """The output WAV of `src`, interleaved, with as many samples per channel as were decoded
    (`frames_in`; the resamplers' rounding leaves a few more or fewer). A failed write is an
    OSError naming `target`, never a decoding error of the source. PCM clips at full scale: how
    many samples that hit is logged."""

    def __init__(self, path: Path, target: Path, src: soundfile.SoundFile):
        self.target, self.frames_in, self.frames_out, self.clipped = target, 0, 0, 0
        subtype = wav_subtype(src.subtype)
        self.clips = subtype != "FLOAT"
        self.dst = self._guard(lambda: soundfile.SoundFile(audio_io.native_path(path), "w", src.samplerate,
                                                           src.channels, subtype=subtype, format="WAV"))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._guard(self.dst.close)
        if self.clipped and exc_info[0] is None:
            log.warning("%s: %d sample(s) over full scale were clipped (a 32-bit float input would keep them)",
                        self.target, self.clipped)

    def write(self, channels: list[np.ndarray], last: bool = False) -> None:
        """Append the channels' outputs (equal lengths: each ran the same steps), never past
        `frames_in`; the last call pads with silence up to it."""
        block = np.stack(channels, axis=1)[: self.frames_in - self.frames_out]
        if last:
            block = np.pad(block, [(0, self.frames_in - self.frames_out - len(block)), (0, 0)])
        if len(block):
            self._guard(lambda: self.dst.write(block))
            self.frames_out += len(block)
            self.clipped += int(np.count_nonzero(np.abs(block) > 1.0)) if self.clips else 0

    def _guard(self, action):
        try:
            return action()
        except soundfile.LibsndfileError as error:
            raise OSError(errno.EIO, f"cannot write it (libsndfile: {error.error_string}; is the disk full?)",
                          str(self.target)) from None


_HIGH_RESOLUTION = {"PCM_24", "PCM_32", "ALAC_20", "ALAC_24", "ALAC_32", "DWVW_24"}  # lossless, >= 20 bits


def wav_subtype(source_subtype: str) -> str:
    """The output WAV's sample format for a source's soundfile subtype: floating point stays 32-bit
    float (nothing over full scale is clipped), lossless sources of 20 bits or more become 24-bit
    PCM, the rest (16-bit and lower PCM, lossy codecs) 16-bit PCM."""
    if source_subtype in ("FLOAT", "DOUBLE"):
        return "FLOAT"
    return "PCM_24" if source_subtype in _HIGH_RESOLUTION else "PCM_16"


class _ChannelStream:
    """One channel: native rate -> model rate -> chunked denoising -> native rate, streaming.

    The strength mix takes the noisy side at the native rate, so what lies above the model's band
    is kept by the limit too; the resamplers keep the denoised side aligned with it sample for
    sample.
    """

    def __init__(self, denoiser: Denoiser, rate: int, limit: float, chunk_seconds: float):
        self.rate, self.model_rate, self.limit = rate, denoiser.sample_rate, limit
        self.down = soxr.ResampleStream(rate, self.model_rate, 1, dtype="float32", quality="HQ")
        self.up = soxr.ResampleStream(self.model_rate, rate, 1, dtype="float32", quality="HQ")
        self.chunks = ChunkedDenoising(denoiser, chunk_seconds)
        self.pending_noisy = np.zeros(0, np.float32)  # native-rate noisy samples not yet matched

    def push(self, samples: np.ndarray) -> np.ndarray:
        if self.limit:  # else the output is the denoised side alone: no input held back for it
            self.pending_noisy = np.concatenate([self.pending_noisy, samples])
        return self._through(self.down.resample_chunk(samples), last=False)

    def flush(self) -> np.ndarray:
        return self._through(self.down.resample_chunk(np.zeros(0, np.float32), last=True), last=True)

    def _through(self, model_rate: np.ndarray, last: bool) -> np.ndarray:
        parts = list(self.chunks.push(model_rate)) + (list(self.chunks.flush()) if last else [])
        denoised = self.up.resample_chunk(np.concatenate(parts) if parts else np.zeros(0, np.float32), last=last)
        if last:  # the resamplers' rounding can leave the denoised side a few samples short or long
            denoised = np.pad(denoised, (0, max(0, len(self.pending_noisy) - len(denoised))))
        noisy, self.pending_noisy = self.pending_noisy[:len(denoised)], self.pending_noisy[len(denoised):]
        return mix_strength(np.pad(noisy, (0, len(denoised) - len(noisy))), denoised, self.limit)
