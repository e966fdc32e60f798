"""Audio files in: find, probe, decode (soundfile; tensorflow-io only as a fallback where it
imports and works), mix down to mono, resample (soxr).

All arrays are float32 in [-1, 1], shape [samples] (mono) unless stated.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import soundfile
import soxr

from audio_dl import native_logs
from audio_dl.errors import UsageError
from audio_dl.paths import expand_home, given_path

log = logging.getLogger(__name__)

PCM16_SCALE = 32767.0  # float [-1, 1] <-> int16 samples kept in memory or in TFRecords, both ways
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".gsm", ".aif",
                              ".aiff", ".au", ".snd", ".caf", ".w64"})


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What a header says about a file: native rate (Hz), channels, length in frames."""

    path: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def find_audio_files(specs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Expand folders (recursively; hidden files and folders, such as another run's partial
    output or macOS `._` files, are left out), globs of files, files and `.txt` lists (one path a
    line; a relative one from the list's folder) to audio files; `specs` is one of those or a list
    of them. A file reached by several paths is listed once, by its own path rather than a link's.

    Raises UsageError for a path that does not exist or a spec that yields no audio file.
    """
    return find_files(specs, AUDIO_EXTENSIONS, "audio")


def find_files(specs: str | os.PathLike | Iterable[str | os.PathLike], extensions, kind: str) -> list[Path]:
    """find_audio_files for any set of file extensions (e.g. MIDI); `kind` names them in errors."""
    if isinstance(specs, (str, os.PathLike)):  # one path, not a sequence of its characters
        specs = [specs]
    files: list[Path] = []
    for spec in specs:
        found = _expand(str(spec), extensions)
        if not found:
            raise UsageError(f"no {kind} files (of {', '.join(sorted(extensions))}) in {spec}")
        files.extend(found)
    by_file = {}  # one path per file: a glob through a symlinked folder can reach it by several;
    for path in sorted(files, key=lambda p: (p.is_symlink(), p)):  # its own path before a link to it
        by_file.setdefault(os.path.realpath(path), path)
    return sorted(by_file.values())


def _expand(spec: str, extensions) -> list[Path]:
    path = given_path(spec)
    if path.is_dir():
        files, broken_links = _files_below(path)
        broken_links = [p for p in broken_links if p.suffix.lower() in extensions]
        if broken_links:
            log.warning("left out %d broken link(s) in %s, e.g. %s -> %s", len(broken_links), spec,
                        broken_links[0].relative_to(path), os.readlink(broken_links[0]))
        return sorted(p for p in files if p.suffix.lower() in extensions)
    if path.is_file():
        if path.suffix.lower() == ".txt":
            lines = [line.strip() for line in path.read_text().splitlines()]
            listed = [Path(line) if Path(line).is_absolute() else path.parent / line
                      for line in lines if line and not line.startswith("#")]
            missing = [str(p) for p in listed if not p.is_file()]
            if missing:
                raise UsageError(f"{spec} lists {len(missing)} missing file(s), e.g. {missing[0]}")
            return listed
        return [path]
    if glob.has_magic(spec):
        matches = [Path(p) for p in glob.glob(expand_home(spec), recursive=True)]
        files = sorted(p for p in matches if p.suffix.lower() in extensions and p.is_file())
        if not files and any(p.is_dir() for p in matches):  # which folder is a speaker would be a guess
            example = ".wav" if ".wav" in extensions else min(extensions)
            raise UsageError(f"the glob {spec} matches folders, not files: give the folder that holds them "
                             f"(searched recursively) or a glob of files such as {spec}/**/*{example}")
        return files
    raise UsageError(f"path does not exist: {spec}")


def walk_reaches(root: str, real: str) -> bool:
    """Whether walking the real folder `root` (hidden files and folders left out) reaches the real
    path `real` by its own path: then a link to it is a second way to the same place."""
    inside = real != root and os.path.commonpath([real, root]) == root
    return inside and not any(part.startswith(".") for part in Path(os.path.relpath(real, root)).parts)


def _files_below(folder: Path) -> tuple[list[Path], list[Path]]:
    """(files, broken links) in folder and its subfolders, through symlinked folders (each real
    folder once; a link back to the folder or above it is not followed, so a link cycle ends, and
    neither is one to a folder the walk reaches by its own path), leaving out hidden files and
    folders."""
    root = os.path.realpath(folder)
    seen = {root}
    files, broken_links = [], []
    for parent, folders, names in os.walk(folder, followlinks=True):
        kept = []
        for name in sorted(folders):
            path = os.path.join(parent, name)
            real = os.path.realpath(path)
            if name.startswith(".") or real in seen or os.path.commonpath([real, root]) == real or (
                    os.path.islink(path) and walk_reaches(root, real)):
                continue
            seen.add(real)
            kept.append(name)
        folders[:] = kept
        for path in (Path(parent, name) for name in names if not name.startswith(".")):
            if path.is_file():
                files.append(path)
            elif path.is_symlink() and not path.exists():
                broken_links.append(path)
    return files, broken_links


def decode_failure(path: str | os.PathLike, error: Exception) -> str:
    """Why `path` could not be decoded, in words: libsndfile's reason, except the "File does not
    exist or is not a regular file" it gives for an existing file in a format it does not know."""
    if not Path(path).exists():
        return "no such file"
    detail = getattr(error, "error_string", None) or str(error)
    if Path(path).is_file() and "does not exist" in detail:
        return "format not recognised"
    return detail


def is_utf8_name(name: str) -> bool:
    """Whether a file name (as Python holds it) is valid UTF-8: one that is not holds its
    undecodable bytes as surrogates, which cannot be stored as text (TFRecords, hashes, cards)."""
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


def shown_path(path: str | os.PathLike) -> str:
    """A path for a message: as given, the bytes of a name that is not UTF-8 shown as \\xe9."""
    return os.fspath(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def require_utf8_path(path: str | os.PathLike, refusal: str) -> None:
    """UsageError `refusal` (its {path} filled with shown_path) when `path` is not UTF-8: TensorFlow
    takes a path as UTF-8 text, even given bytes, and would fail with an encoding error."""
    if not is_utf8_name(os.fspath(path)):
        raise UsageError(refusal.format(path=shown_path(path)))


def printable_name(name: str) -> str:
    """A file name as UTF-8 text, one text per name: "\\" doubled, the bytes of a name that is
    not UTF-8 shown as \\xe9."""
    return shown_path(name.replace("\\", "\\\\"))


def native_path(path: str | os.PathLike) -> str | bytes:
    """`path` as soundfile opens any name the file system holds: its bytes (soundfile encodes a
    str strictly as UTF-8, so a Latin-1 name would fail), a str on Windows (opened as wide chars)."""
    return str(path) if os.name == "nt" else os.fsencode(path)


def open_audio(path: str | os.PathLike) -> soundfile.SoundFile:
    """soundfile.SoundFile(path) for reading, without the decoders' stderr chatter."""
    with native_logs.discarded():
        return soundfile.SoundFile(native_path(path))


def is_silent(x: np.ndarray) -> bool:
    """Digital silence or a constant offset [n]: nothing to hear, mix or compare an estimate with."""
    x = np.asarray(x)  # in float64: a float32 mean is off by an ulp, and 16000 samples of 0.2 would sum above 1e-12
    return x.size == 0 or float(np.var(x, dtype=np.float64)) * x.size < 1e-12


def is_stream(path: str | os.PathLike) -> bool:
    """A path that is not a regular file (/dev/stdin, <(...), a FIFO, a device): its bytes can be
    read once, and a decoder that seeks (FLAC) cannot read it."""
    return not Path(path).is_file()


def to_pcm16(audio: np.ndarray) -> tuple[np.ndarray, float]:
    """float [n] -> (int16 [n], gain) with audio ~ pcm * gain / PCM16_SCALE. The gain is 1, or the
    peak of audio above full scale (float files can hold it), which is then stored scaled down as a
    whole: never clipped."""
    gain = max(1.0, float(np.abs(audio).max(initial=0.0)))
    return np.round(audio / gain * PCM16_SCALE).astype(np.int16), gain


def holds_no_samples(path: str | os.PathLike) -> bool:
    """Whether `path` is a file libsndfile reads whose header says it holds no samples (probe
    returns None for it as for an undecodable one)."""
    try:
        with open_audio(path) as f:
            return f.frames == 0
    except Exception:  # noqa: BLE001 - undecodable: not this case
        return False


def probe(path: str | os.PathLike) -> AudioInfo | None:
    """Header of an audio file, or None when it cannot be read or holds no samples."""
    info = probe_or_reason(path)
    return info if isinstance(info, AudioInfo) else None


def probe_or_reason(path: str | os.PathLike) -> AudioInfo | str:
    """Header of an audio file, or why it is unusable, in words (libsndfile's reason, "no such file",
    "no samples")."""
    try:
        with native_logs.discarded():
            info = soundfile.info(native_path(path))
        frames = info.frames
    except Exception as error:  # noqa: BLE001 - any decoder failure means "unreadable"
        info = _tfio_info(path)
        if info is None:
            return decode_failure(path, error)
        return info if info.frames > 0 else "no samples"
    if frames <= 0 or info.samplerate <= 0:
        return "no samples"
    return AudioInfo(str(path), int(info.samplerate), int(info.channels), int(frames))


class NonFiniteAudio(ValueError):
    """A file (or an array) that holds NaN or infinite samples."""


def mono_samples(waveform, what: str = "the waveform", channels_hint: str = "") -> np.ndarray:
    """A caller's mono waveform as float32 [n]; ValueError for integer PCM (not in [-1, 1]), more
    than one dimension (`channels_hint` says what to do instead) or samples that are not finite
    (also after the cast: 1e39 is inf in float32)."""
    array = np.asarray(waveform)
    if array.dtype.kind != "f":
        full_scale = {np.dtype(np.int16): "32768", np.dtype(np.int32): "2147483648"}.get(array.dtype)
        hint = f" (for {array.dtype} PCM: x / {full_scale})" if full_scale else ""
        raise ValueError(f"{what} holds {array.dtype} samples; pass floats in [-1, 1]{hint}")
    if array.ndim != 1:
        raise ValueError(f"{what} has shape {array.shape}; pass one channel, float [n]{channels_hint}")
    with np.errstate(over="ignore"):
        samples = array.astype(np.float32, copy=False)
    if not np.isfinite(samples).all():
        raise NonFiniteAudio(f"{what} holds samples that are not finite in float32 (NaN, infinity or beyond 3.4e38)")
    return samples


def require_finite(samples: np.ndarray, path) -> None:
    """NonFiniteAudio naming `path` when decoded samples hold NaN or infinity."""
    if not np.isfinite(samples).all():
        raise NonFiniteAudio(f"{path} holds samples that are not finite (NaN or infinity)")


def read_audio(path: str | os.PathLike, sample_rate: int | None = None, start_seconds: float = 0.0,
               duration_seconds: float | None = None) -> np.ndarray:
    """Decode `[start, start+duration)` of a file, mix to mono, resample to `sample_rate` (soxr).

    Returns float32 [samples]. Raises ValueError (soundfile.LibsndfileError, ...) when the file
    cannot be decoded or holds samples that are not finite; callers inside a corpus catch it and
    count a skip. Samples all equal (digital silence, a DC offset) stay so at any rate: soxr would
    ring at their edges, which the silence checks of noise (is_silent, augment.audible) would take
    for sound.
    """
    if not (start_seconds >= 0 and (duration_seconds is None or duration_seconds >= 0)):  # NaN fails too
        raise ValueError(f"start_seconds and duration_seconds must be >= 0 (got {start_seconds}, {duration_seconds})")
    try:
        with open_audio(path) as f:
            native_rate = f.samplerate
            start = int(start_seconds * native_rate)
            if start:
                f.seek(min(start, f.frames))
            frames = -1 if duration_seconds is None else int(np.ceil(duration_seconds * native_rate))
            audio = f.read(frames, dtype="float32", always_2d=True)
    except Exception as error:  # noqa: BLE001
        decoded = _tfio_read(path)
        if decoded is None:
            raise ValueError(f"cannot decode {path}: {decode_failure(path, error)}") from None
        audio, native_rate = decoded
        start = int(start_seconds * native_rate)
        stop = None if duration_seconds is None else start + int(np.ceil(duration_seconds * native_rate))
        audio = audio[start:stop]
    require_finite(audio, path)
    mono = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if sample_rate is not None and sample_rate != native_rate and mono.size:
        resampled = soxr.resample(mono, native_rate, sample_rate, quality="HQ")
        mono = np.full(len(resampled), mono[0], np.float32) if mono.min() == mono.max() else resampled
    if duration_seconds is not None and sample_rate is not None:
        mono = mono[: int(round(duration_seconds * sample_rate))]
    return np.ascontiguousarray(mono, dtype=np.float32)


def probe_all(files: Sequence[Path]) -> tuple[list[AudioInfo], list[Path]]:
    """Probe every file; returns (readable infos, skipped paths) and logs one counted warning
    naming the first skipped file and why."""
    infos, skipped, first_reason = [], [], ""
    for path in files:
        info = probe_or_reason(path)
        if isinstance(info, AudioInfo):
            infos.append(info)
            continue
        first_reason = first_reason or info
        skipped.append(path)
    if skipped:
        log.warning("skipped %d of %d audio files (unreadable, corrupt or empty), e.g. %s: %s",
                    len(skipped), len(files), skipped[0], first_reason)
    return infos, skipped


# --- tensorflow-io fallback: only where it imports and its ops load (TF <= 2.17) ---------------

def _tfio():
    try:
        import tensorflow_io as tfio  # noqa: PLC0415

        return tfio
    except Exception:  # noqa: BLE001 - missing, or built for another TF (undefined symbol)
        return None


def _tfio_read(path) -> tuple[np.ndarray, int] | None:
    tfio = _tfio()
    if tfio is None:
        return None
    try:
        tensor = tfio.audio.AudioIOTensor(str(path))
        audio = tensor.to_tensor().numpy()
        if audio.dtype.kind == "i":
            audio = audio.astype(np.float32) / np.iinfo(audio.dtype).max
        return audio.astype(np.float32).reshape(audio.shape[0], -1), int(tensor.rate.numpy())
    except Exception:  # noqa: BLE001
        return None


def _tfio_info(path) -> AudioInfo | None:
    decoded = _tfio_read(path)
    if decoded is None:
        return None
    audio, rate = decoded
    return AudioInfo(str(path), rate, audio.shape[1], audio.shape[0])
