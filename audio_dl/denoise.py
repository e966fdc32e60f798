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
from typing import Sequence

import numpy as np

from audio_dl import audio_io, cli, inference, plots
from audio_dl.errors import UsageError

log = logging.getLogger(__name__)
PLOT_SECONDS = 30.0  # figures show the first half minute


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(prog="python -m audio_dl.denoise", description=__doc__,
                                formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="audio files and/or folders (searched recursively)")
    parser.add_argument("-o", "--output", type=Path, default=Path("denoised"),
                        help="output folder, or a .wav path for a single input (default: %(default)s/)")
    parser.add_argument("--model", type=Path, default=Path("saved_models/denoiser"),
                        help="SavedModel folder, TF Serving base path (highest version) or .tflite "
                             "(default: %(default)s)")
    parser.add_argument("--strength", type=float, metavar="DB",
                        help="attenuation limit in dB: out = noisy*lim + denoised*(1-lim), lim = 10^(-DB/20) "
                             "(default: no limit)")
    parser.add_argument("--plot", action="store_true",
                        help=f"also write OUTPUT.png: waveform and spectrogram of noisy and denoised "
                             f"(the first {PLOT_SECONDS:g} s)")
    parser.add_argument("--clean", type=Path,
                        help="clean reference (file, or folder with files of the same names) added to the plot")
    parser.add_argument("--chunk-seconds", type=float, default=30.0,
                        help="audio per model call for SavedModels (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    inference.strength_to_limit(args.strength)  # UsageError now, not at the first file
    inference.positive_seconds("--chunk-seconds", args.chunk_seconds)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    jobs = _jobs(args.inputs, args.output)
    denoiser = inference.load_denoiser(args.model)
    print(f"model: {denoiser.path} ({denoiser.sample_rate} Hz)")
    skipped, seconds, started = [], 0.0, time.perf_counter()
    for source, target, single in jobs:
        try:
            duration = inference.denoise_file(denoiser, source, target, args.strength,
                                              chunk_seconds=args.chunk_seconds)
        except ValueError as error:
            if single:
                raise UsageError(str(error)) from None
            skipped.append(source)
            log.warning("skipped %s: %s", source, error)
            continue
        seconds += duration
        print(f"{source} -> {target}")
        if args.plot:
            _plot(source, target, _clean_for(args.clean, source), denoiser.sample_rate, duration)
    elapsed = time.perf_counter() - started
    print(f"denoised {len(jobs) - len(skipped)} file(s), {seconds:.1f} s of audio in {elapsed:.1f} s"
          + (f"; skipped {len(skipped)} unreadable file(s)" if skipped else ""))
    return 0


def _jobs(inputs: Sequence[str], output: Path) -> list[tuple[Path, Path, bool]]:
    """(source, target, is_a_single_named_file) for every input file."""
    jobs = []
    for spec in inputs:
        path = Path(spec)
        if not path.exists():
            raise UsageError(f"path does not exist: {spec}")
        if path.is_dir():
            files = audio_io.find_audio_files([path])
            jobs += [(f, output / f.relative_to(path).with_suffix(".wav"), False) for f in files]
        else:
            jobs.append((path, output / f"{path.stem}.wav", True))
    if output.suffix.lower() == ".wav":
        if len(jobs) != 1:
            raise UsageError(f"-o {output} names one file but there are {len(jobs)} inputs; give a folder")
        jobs = [(jobs[0][0], output, True)]
    targets = [target for _, target, _ in jobs]
    clash = next((t for t, n in collections.Counter(targets).items() if n > 1), None)
    if clash is not None:
        raise UsageError(f"two inputs would both be written to {clash}; rename one or denoise them separately")
    sources = {cli.file_id(source) for source, _, _ in jobs}  # the same file under any spelling or case
    overwrite = next((t for t in targets if t.exists() and cli.file_id(t) in sources), None)
    if overwrite is not None:
        raise UsageError(f"the output {overwrite} would overwrite an input; give another -o")
    return jobs


def _clean_for(clean: Path | None, source: Path) -> Path | None:
    if clean is None:
        return None
    candidate = clean / source.name if clean.is_dir() else clean
    if not candidate.is_file():
        raise UsageError(f"clean reference not found: {candidate}")
    return candidate


def plot_title(name: str, seconds: float) -> str:
    """The file name, and which part the figure shows when the file is longer than PLOT_SECONDS."""
    if seconds <= PLOT_SECONDS:
        return name
    return f"{name} (first {PLOT_SECONDS:g} s of {seconds:.0f} s)"


def _plot(source: Path, target: Path, clean: Path | None, rate: int, seconds: float) -> None:
    signals = {"noisy": audio_io.read_audio(source, rate, 0, PLOT_SECONDS),
               "denoised": audio_io.read_audio(target, rate, 0, PLOT_SECONDS)}
    if clean is not None:
        signals["clean"] = audio_io.read_audio(clean, rate, 0, PLOT_SECONDS)
    length = min(len(x) for x in signals.values())
    signals = {k: np.asarray(v[:length]) for k, v in signals.items()}
    png = target.with_suffix(".png")
    plots.waveform_and_spectrogram(signals, rate, png, title=plot_title(source.name, seconds))
    print(f"  plot: {png}")


main.prog = "python -m audio_dl.denoise"

if __name__ == "__main__":
    raise SystemExit(cli.run_main(main))
