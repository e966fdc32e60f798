"""Compare the denoiser with the noisy input and the usual alternatives on held-out audio.

    python -m audio_dl.evaluate_denoiser --clean CLEAN_DIR --noisy NOISY_DIR
    python -m audio_dl.evaluate_denoiser --clean SPEECH_DIR --noise NOISE_DIR --snr -5 0 5 10 --seed 0

With --noise, mixtures are built deterministically from the seed (each clean file at every SNR,
a noise file and offset drawn per mixture). Methods: the model (--model), the noisy input,
noisereduce (spectral gating), spectral subtraction (pyroomacoustics) and, with --fcn16, the
demo's network. Narrowband PESQ, STOI and SI-SDR per file and per SNR: a table on stdout,
rows in OUT/metrics.csv, averages in OUT/summary.json.
"""

from __future__ import annotations

import csv
import glob
import logging
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf

from audio_dl import atomic, audio_io, cli, evaluate, inference
from audio_dl.atomic import staged_file
from audio_dl.config import json_text
from audio_dl.data.augment import audible, mix_at_snr
from audio_dl.errors import UsageError

log = logging.getLogger(__name__)

DEFAULT_SNRS = (-5.0, 0.0, 5.0, 10.0)
MAX_SNR_DB = 100.0  # far beyond real recordings; a few hundred dB overflow float32 powers in the model


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(prog="python -m audio_dl.evaluate_denoiser", description=__doc__,
                                formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clean", required=True, nargs="+", help="folders (or globs/lists) of clean speech")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--noisy", type=cli.given_path, help="folder of noisy versions, same relative names as --clean")
    source.add_argument("--noise", nargs="+",
                        help="folders, files (or globs/lists) of noise recordings to mix with --clean "
                             "(each decoded once, up front)")
    parser.add_argument("--snr", type=float, nargs="+",
                        help=f"SNRs in dB for --noise, each in [-{MAX_SNR_DB:g}, {MAX_SNR_DB:g}] (default: "
                             f"{_numbers(DEFAULT_SNRS)})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mixtures (default: %(default)s)")
    parser.add_argument("--model", type=cli.given_path, default=cli.shipped_model("denoiser"),
                        help="the denoiser to judge (default: %(default)s)")
    parser.add_argument("--fcn16", type=cli.given_path, help="an exported fcn16 model to compare with")
    parser.add_argument("--limit", type=int, help="use at most this many clean files of each --clean path")
    parser.add_argument("-o", "--output", type=cli.given_path, default=Path("evaluation"),
                        help="folder for metrics.csv and summary.json (default: %(default)s)")
    return parser


def load_noises(noise_files, rate: int, skipped: list) -> list[tuple[str, np.ndarray]]:
    """(path, float32 [n] at `rate`) for every noise file that decodes to finite sound; the rest
    (unreadable, NaN, silence or a constant: it would leave the speech "mixed" at no SNR) are
    appended to `skipped` and logged."""
    noises = []
    for path in noise_files:
        try:
            noise = audio_io.read_audio(path, rate)
        except ValueError as error:
            _skip(skipped, path, error)
            continue
        if not audible(tf.constant(noise)):  # the level mix_at_snr takes for silence
            _skip(skipped, path, "silence or a constant: nothing to mix at an SNR")
            continue
        noises.append((str(path), noise))
    return noises


_CROP_DRAWS = 1000  # a noise crop drawn this often, all silent: the noise files hardly sound


def mixtures(clean_files, noises: list[tuple[str, np.ndarray]], snrs, seed: int, rate: int, skipped: list):
    """(folder/file+noise, snr, clean, noisy) for each clean file at each SNR (the folder is the
    speaker in a speaker-per-folder corpus), with `noises` from load_noises; deterministic from
    `seed`. A noise crop that is digital silence or a constant (a silent stretch of a recording)
    is drawn again. Clean files that cannot be decoded are appended to `skipped`."""
    rng = np.random.default_rng(seed)
    for path in clean_files:
        clean = _read_or_skip(path, rate, skipped)
        if clean is None:
            continue
        for snr in snrs:
            for _ in range(_CROP_DRAWS):
                noise_path, noise = noises[rng.integers(len(noises))]
                offset = int(rng.integers(max(1, len(noise))))
                crop = tf.constant(np.resize(np.roll(noise, -offset), len(clean)))  # looped when short
                if audible(crop):
                    break
            else:
                raise UsageError(f"{_CROP_DRAWS} crops of {len(clean) / rate:.1f} s from the noise files were all "
                                 "silence or a constant: give noise files that sound most of the time")
            noisy, _ = mix_at_snr(tf.constant(clean), crop, tf.constant(snr, tf.float32))
            yield f"{path.parent.name}/{path.name}+{Path(noise_path).stem}", snr, clean, noisy.numpy()


def noisy_pairs(clean_files, clean_root: Path, noisy_root: Path, skipped: list) -> list[tuple[Path, Path, Path]]:
    """(clean path, its name relative to clean_root, noisy path) for every clean file: the noisy
    file at the same relative path, or of the same stem with any audio extension. A clean file
    without one that does not decode (its header read) needs none: it is appended to `skipped`,
    as pairs() would have. UsageError, before the model runs, at the first one without a partner
    that decodes, and before any decoding when no clean file has a partner (a mistyped --noisy)."""
    found, missing = [], []
    for path in clean_files:
        relative = _relative(path, clean_root)
        noisy_path = _noisy_partner(noisy_root, relative)
        if noisy_path is None:
            missing.append((path, relative))
        else:
            found.append((path, relative, noisy_path))
    for path, relative in missing:
        if not found or _read_or_skip(path, None, skipped) is not None:
            raise UsageError(f"no noisy file for {len(missing)} of {len(clean_files)} clean files in {noisy_root}, "
                             f"e.g. {relative}")
    return found


def unpaired_noisy_files(clean_root: Path, noisy_root: Path) -> list[Path]:
    """The audio files under noisy_root that noisy_pairs pairs with no clean file of clean_root
    (a folder or one file), such as a second file of one stem (a.wav beside a.flac)."""
    partners = {_noisy_partner(noisy_root, _relative(path, clean_root))
                for path in audio_io.find_audio_files([clean_root])}
    return [path for path in audio_io.find_audio_files([noisy_root]) if path not in partners]


def _relative(path: Path, root: Path) -> Path:
    """A clean file's name inside its --clean folder (its file name when --clean is the file)."""
    return path.relative_to(root) if root.is_dir() else Path(path.name)


def _noisy_partner(noisy_root: Path, relative: Path) -> Path | None:
    """The noisy file of the clean file at `relative`: at the same relative path, else the first
    (by name) of the same stem with any audio extension; None when there is none."""
    same_stem = sorted(c for c in (noisy_root / relative.parent).glob(glob.escape(relative.stem) + ".*")
                       if c.stem == relative.stem and c.suffix.lower() in audio_io.AUDIO_EXTENSIONS)  # not take.1.wav
    return next((c for c in [noisy_root / relative, *same_stem] if c.is_file()), None)


def pairs(matched: list[tuple[Path, Path, Path]], rate: int, skipped: list):
    """(relative name, None, clean, noisy) of each pair of noisy_pairs, cut to the shorter one;
    pairs where either file cannot be decoded or is empty are appended to `skipped`."""
    for path, relative, noisy_path in matched:
        clean, noisy = _read_or_skip(path, rate, skipped), _read_or_skip(noisy_path, rate, skipped)
        if clean is None or noisy is None:
            continue
        if abs(len(clean) - len(noisy)) > rate // 100:
            log.warning("%s: the clean and noisy files differ in length (%.2f s, %.2f s); compared over the "
                        "shorter", relative, len(clean) / rate, len(noisy) / rate)
        length = min(len(clean), len(noisy))
        yield str(relative), None, clean[:length], noisy[:length]


def _read_or_skip(path, rate: int | None, skipped: list) -> np.ndarray | None:
    try:
        audio = audio_io.read_audio(path, rate)
    except ValueError as error:
        _skip(skipped, path, error)
        return None
    if not audio.size:
        _skip(skipped, path, "no samples")
        return None
    return audio


def _skip(skipped: list, path, reason) -> None:
    skipped.append(Path(path))
    log.warning("skipped %s: %s", path, reason)


def _numbers(values) -> str:
    return " ".join(f"{v:g}" for v in values)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.output.exists() and not args.output.is_dir():
        raise UsageError(f"-o {args.output} is a file; give a folder for metrics.csv and summary.json")
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be >= 1")
    if args.snr is not None and args.noisy is not None:
        raise UsageError("--snr sets the SNRs of the mixtures made with --noise; --noisy files are scored as they are")
    if args.snr is None:
        args.snr = list(DEFAULT_SNRS)
    if not all(math.isfinite(snr) and abs(snr) <= MAX_SNR_DB for snr in args.snr):
        raise UsageError(f"--snr takes dB in [-{MAX_SNR_DB:g}, {MAX_SNR_DB:g}] "
                         f"(got {_numbers(args.snr)})")
    repeated = sorted({snr for snr in args.snr if args.snr.count(snr) > 1})
    if repeated:
        raise UsageError(f"--snr repeats {_numbers(repeated)} dB: each SNR once (its mixtures would be scored twice)")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0 (got {args.seed})")
    if args.noisy is not None:  # before the model loads
        if len(args.clean) != 1:
            raise UsageError("--noisy takes one folder, paired with exactly one --clean folder")
        cli.existing_folder(args.noisy, "a folder of noisy files (--noisy)")
    cli.writable_folder(args.output)  # an unwritable place fails now, not after the evaluation; made when written
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    model = inference.load_denoiser(args.model)
    rate = model.sample_rate
    methods = {"noisy": lambda x, sr: x, "model": lambda x, sr: inference.denoise_array(model, x),
               "noisereduce": evaluate.noisereduce_baseline,
               "spectral_subtraction": evaluate.spectral_subtraction_baseline}
    if args.fcn16:
        try:
            fcn16 = inference.load_denoiser(args.fcn16)
        except UsageError as error:
            raise UsageError(f"--fcn16: {error}") from None
        methods["fcn16"] = lambda x, sr: inference.denoise_array(fcn16, x)
    clean_files, skipped = [], []
    for spec in args.clean:
        infos, bad = audio_io.probe_all(audio_io.find_audio_files([spec]))
        clean_files += [Path(i.path) for i in infos][: args.limit]
        skipped += bad
    if not clean_files:
        raise UsageError(f"no readable audio in {' '.join(args.clean)}")
    if args.noise:
        noise_files, bad = audio_io.probe_all(audio_io.find_audio_files(args.noise))
        skipped += bad
        noises = load_noises([i.path for i in noise_files], rate, skipped)
        if not noises:
            raise UsageError(f"no usable noise in {' '.join(args.noise)}")
        items = mixtures(clean_files, noises, args.snr, args.seed, rate, skipped)
    else:
        clean_root, noisy_root = audio_io.given_path(args.clean[0]), args.noisy  # "~/x" too (--noisy: its argparse type)
        items = pairs(noisy_pairs(clean_files, clean_root, noisy_root, skipped), rate, skipped)
        unpaired = unpaired_noisy_files(clean_root, noisy_root)
        if unpaired:
            log.warning("%d noisy file(s) in %s are paired with no clean file (same relative path and stem) and "
                        "are not scored, e.g. %s", len(unpaired), noisy_root, unpaired[0].relative_to(noisy_root))
    rows = evaluate.evaluate_methods(items, methods, rate)
    if not rows:
        raise UsageError(f"nothing to evaluate: all {len(skipped)} file(s) were skipped")
    summary = evaluate.summarize(rows)
    print(evaluate.format_comparison(summary))
    if skipped:
        print(f"\nskipped {len(skipped)} unreadable, empty or silent file(s)")
    undefined = {(row["file"], row["snr_db"]) for row in rows if any(np.isnan(row[m]) for m in evaluate.METRICS)}
    if undefined:
        print(f"\n{len(undefined)} of {len(rows) // len(methods)} clean/noisy pairs have a metric that is undefined there "
              "(a silent reference, no utterance for PESQ, under 0.4 s of sound for STOI): that metric's "
              "averages leave them out for every method")
    with staged_file(args.output / "metrics.csv") as staging, open(staging, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "file": audio_io.printable_name(row["file"])} for row in rows)
    scored = {"model": str(model.path), "pairs": len(rows) // len(methods), "skipped": len(skipped)}
    atomic.write_text(args.output / "summary.json", json_text({**scored, "summary": summary}))
    print(f"\nwrote {args.output / 'metrics.csv'} and {args.output / 'summary.json'}")
    return 0


main.prog = "python -m audio_dl.evaluate_denoiser"

if __name__ == "__main__":
    raise SystemExit(cli.run_main(main))
