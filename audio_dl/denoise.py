"""Denoise audio files with an exported denoiser.

    python -m audio_dl.denoise noisy.wav                      # -> denoised/noisy.wav
    python -m audio_dl.denoise recordings/ -o clean/ --plot   # a folder, with PNG figures
    python -m audio_dl.denoise talk.mp3 -o talk.wav --strength 12 --model model.tflite

Any format soundfile reads (WAV, FLAC, MP3, OGG, ...), any rate and channel count; the output is
WAV at the input's rate with the input's channels (float input stays 32-bit float, 24/32-bit PCM
becomes 24-bit, anything else 16-bit). Files are streamed in chunks, so hour-long recordings need
little memory. Inside a folder, unreadable files are skipped and counted.
"""

from __future__ import annotations

import collections
import logging
import time
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from audio_dl import audio_io, cli, inference, plots
from audio_dl.atomic import new_folders_removed_if_empty
from audio_dl.errors import UsageError

log = logging.getLogger(__name__)
PLOT_SECONDS = 30.0  # figures show the first half minute


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(prog="python -m audio_dl.denoise", description=__doc__,
                                formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="audio files and/or folders (searched recursively)")
    parser.add_argument("-o", "--output", type=cli.given_path, default=Path("denoised"),
                        help="output folder, or a .wav path for a single input (default: %(default)s/)")
    parser.add_argument("--model", type=cli.given_path, default=cli.shipped_model("denoiser"),
                        help="SavedModel folder, TF Serving base path or training run folder (the "
                             "highest version) or .tflite (default: %(default)s)")
    parser.add_argument("--strength", type=float, metavar="DB",
                        help="attenuation limit in dB: out = noisy*lim + denoised*(1-lim), lim = 10^(-DB/20) "
                             "(default: no limit)")
    parser.add_argument("--plot", action="store_true",
                        help=f"also write OUTPUT.png: waveform and spectrogram of noisy and denoised "
                             f"(the first {PLOT_SECONDS:g} s)")
    parser.add_argument("--clean", type=cli.given_path,
                        help="clean reference added to the plot: a file (for one input), or a folder holding "
                             "the clean files at the same paths as inside the input folder")
    parser.add_argument("--chunk-seconds", type=float, default=30.0,
                        help="seconds of audio per chunk; a SavedModel runs up to 4 chunks in one call, so "
                             "memory grows with it; the output does not depend on it, except a GRU model's, "
                             "a little (default: %(default)s)")
    return parser


class Job(NamedTuple):
    source: Path
    target: Path
    single: bool  # a file named on the command line (an error stops the run), not found in a folder
    clean: Path | None  # its clean reference for --plot --clean


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    inference.strength_to_limit(args.strength)  # UsageError now, not at the first file
    inference.positive_seconds("--chunk-seconds", args.chunk_seconds)
    if args.clean is not None and not args.plot:
        raise UsageError("--clean only adds a panel to the figure; use it with --plot")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    jobs = _jobs(args.inputs, args.output, args.clean)
    stream = next((job.source for job in jobs if audio_io.is_stream(job.source)), None)
    if args.plot and stream is not None:
        raise UsageError(f"{stream} is not a regular file (a pipe or a device): its audio can be read once, "
                         "--plot reads it again; save it to a file first")
    denoiser = inference.load_denoiser(args.model)
    print(f"model: {denoiser.path} ({denoiser.sample_rate} Hz)")
    started = time.perf_counter()
    with new_folders_removed_if_empty(job.target.parent for job in jobs):  # what an interrupt or skips leave
        skipped, seconds = _denoise_all(jobs, denoiser, args.strength, args.chunk_seconds, args.plot)
    elapsed = time.perf_counter() - started
    summary = (f"denoised {len(jobs) - len(skipped)} file(s), {seconds:.1f} s of audio in {elapsed:.1f} s"
               + (f"; skipped {len(skipped)} unreadable file(s) (undecodable, empty or not finite)" if skipped else ""))
    if len(skipped) == len(jobs):
        raise UsageError(f"no file could be denoised: {summary}")
    print(summary)
    return 0


def _denoise_all(jobs: list[Job], denoiser: inference.Denoiser, strength_db: float | None, chunk_seconds: float,
                 plot: bool) -> tuple[list[Path], float]:
    """Denoise (and plot) each job; returns the inputs skipped and the seconds of audio denoised.
    A file named on the command line that cannot be denoised stops the run (UsageError)."""
    skipped, seconds = [], 0.0
    for job in jobs:
        try:
            duration = inference.denoise_file(denoiser, job.source, job.target, strength_db,
                                              chunk_seconds=chunk_seconds)
        except ValueError as error:
            if job.single:
                raise UsageError(str(error)) from None
            skipped.append(job.source)
            log.warning("skipped %s: %s", job.source, error)
            continue
        seconds += duration
        print(f"{job.source} -> {job.target}")
        if plot:
            _plot(job, denoiser.sample_rate, duration)
    return skipped, seconds


def _jobs(inputs: Sequence[str], output: Path, clean: Path | None) -> list[Job]:
    """A Job for every input file, checked before any work: outputs that would collide or
    overwrite an input, clean references that are missing, a named file that cannot be decoded
    or holds no samples (a named pipe is not opened here: its bytes would be gone for the
    denoising). Files under the output (an earlier run's results inside an input folder) are not
    inputs."""
    if output.suffix.lower() in audio_io.AUDIO_EXTENSIONS - {".wav"}:
        raise UsageError(f"-o {output}: the output is WAV; give a folder or a .wav file name")
    if output.suffix.lower() == ".wav":  # a folder of that name or one that cannot be written: before the model loads
        cli.output_file(output)
    else:
        cli.writable_folder(output)
    found: dict[tuple[int, int], tuple[Path, Path, bool]] = {}  # the same file given twice counts once
    for spec in inputs:
        path = audio_io.given_path(spec)
        if not path.exists():
            raise UsageError(f"path does not exist: {spec}")
        if path.is_dir():
            files = audio_io.find_audio_files([path])
            if not _under(path, output):  # an earlier run's output inside this folder is not an input
                files = [f for f in files if not _under(f, output)]
            if not files:
                raise UsageError(f"no audio files in {spec} besides the output {output}")
            for f in files:
                found.setdefault(cli.file_id(f), (f, f.relative_to(path), False))
        else:
            if not audio_io.is_stream(path):  # a pipe is read once, by the denoising
                _check_decodable(path)
            found.setdefault(cli.file_id(path), (path, Path(path.name), True))
    if output.suffix.lower() == ".wav" and len(found) != 1:
        raise UsageError(f"-o {output} names one file but there are {len(found)} inputs; give a folder")
    if clean is not None and clean.is_file() and len(found) != 1:
        raise UsageError(f"--clean {clean} is the reference of one input but there are {len(found)}; give a "
                         "folder holding the clean files at the same paths as the inputs")
    jobs = [Job(source, output if output.suffix.lower() == ".wav" else output / relative.with_suffix(".wav"),
                single, _clean_for(clean, relative)) for source, relative, single in found.values()]
    clash = next((t for t, n in collections.Counter(job.target for job in jobs).items() if n > 1), None)
    if clash is not None:
        raise UsageError(f"two inputs would both be written to {clash}; rename one or denoise them separately")
    too_long = next(((job.target, reason) for job in jobs if (reason := cli.too_long(job.target))), None)
    if too_long is not None:  # found now, not at its rename after other files are written
        raise UsageError(f"cannot write {too_long[0]}: {too_long[1]}; rename its input or give -o a shorter "
                         "file name")
    references = {cli.file_id(job.clean) for job in jobs if job.clean is not None}
    overwrite = next((job.target for job in jobs
                      if job.target.exists() and cli.file_id(job.target) in found.keys() | references), None)
    if overwrite is not None:
        raise UsageError(f"the output {overwrite} would overwrite an input or a --clean reference; give another -o")
    return jobs


def _check_decodable(path: Path, prefix: str = "") -> None:
    """UsageError (its message after `prefix`), before the model loads, for a file named on the
    command line that denoise_file would refuse (undecodable or without samples)."""
    try:
        inference.open_source(path).close()
    except ValueError as error:
        raise UsageError(f"{prefix}{error}") from None


def _under(path: Path, output: Path) -> bool:
    """Whether `path` is the output file or lies inside the output folder."""
    path, output = path.resolve(), output.resolve()
    return path == output or output in path.parents


def _clean_for(clean: Path | None, relative: Path) -> Path | None:
    """The clean reference of an input at `relative` (its path inside its input folder, or its
    name): `clean` itself when it is a file, else the file at the same relative path inside it."""
    if clean is None:
        return None
    candidate = clean / relative if clean.is_dir() else clean
    if not candidate.is_file():
        raise UsageError(f"clean reference not found: {candidate}")
    _check_decodable(candidate, "--clean reference: ")
    return candidate


def plot_title(name: str, seconds: float, shown: float | None = None) -> str:
    """The file name, and which part the figure shows (`shown` seconds; default: up to
    PLOT_SECONDS) when that is not the whole file."""
    shown = min(seconds, PLOT_SECONDS) if shown is None else shown
    if shown >= seconds - 0.01:
        return name
    for decimals in (0, 1, 2):  # the fewest that tell the two apart
        first, whole = (f"{x:.{decimals}f}" if x >= 10 else f"{x:.{decimals + 3}g}" for x in (shown, seconds))
        if first != whole:
            break
    return f"{name} (first {first} s of {whole} s)"


def _plot(job: Job, rate: int, seconds: float) -> None:
    signals = {"noisy": audio_io.read_audio(job.source, rate, 0, PLOT_SECONDS),
               "denoised": audio_io.read_audio(job.target, rate, 0, PLOT_SECONDS)}
    if job.clean is not None:
        try:
            signals["clean"] = audio_io.read_audio(job.clean, rate, 0, PLOT_SECONDS)
        except ValueError as error:  # decoding failed part-way, or samples that are not finite
            log.warning("%s: the figure leaves out the clean reference: %s", job.source, error)
        if "clean" in signals and abs(len(signals["clean"]) - len(signals["noisy"])) > rate // 100:  # in the part shown
            clean_seconds = audio_io.probe(job.clean).seconds
            log.warning("%s: the clean reference %s is %.2f s long, the input %.2f s; the figure shows the "
                        "shorter", job.source, job.clean, clean_seconds, seconds)
    length = min(len(x) for x in signals.values())
    signals = {k: np.asarray(v[:length]) for k, v in signals.items()}
    png = job.target.with_suffix(".png")
    plots.waveform_and_spectrogram(signals, rate, png, title=plot_title(job.source.name, seconds, length / rate))
    print(f"  plot: {png}")


main.prog = "python -m audio_dl.denoise"

if __name__ == "__main__":
    raise SystemExit(cli.run_main(main))
