"""Train the speech denoiser and export it for TF Serving and TFLite.

    python -m audio_dl.train_denoiser                       # bundled real data, default recipe
    python -m audio_dl.train_denoiser --preset matlab       # the MATLAB demo's network and options
    python -m audio_dl.train_denoiser --set speech=DIR --set noise=DIR --set snr_db=-5,10

The run directory keeps config, TensorBoard logs, checkpoints and the export; running the same
command again after an interruption resumes it. The export is published to the TF Serving base
path (--export-base) as a new version only while that holds no shipped model, or with --publish.
"""

from __future__ import annotations

import glob
import itertools
import logging
import shlex
import sys
from pathlib import Path
from typing import Sequence

from audio_dl import cli, export
from audio_dl.config import DENOISER_PRESETS, DenoiserConfig, make_config
from audio_dl.errors import UsageError
from audio_dl.training import train_denoiser


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(prog="python -m audio_dl.train_denoiser", description=__doc__,
                                formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    cli.add_config_options(parser, DENOISER_PRESETS)
    cli.add_run_options(parser, "denoiser")
    cli.add_strategy_option(parser)
    parser.add_argument("--mixed-precision", action="store_true",
                        help="mixed_float16 compute (for GPUs; DSP layers stay float32; exports are float32)")
    return parser


def _before_glob(spec: str) -> str:
    """The folders of a path before its first glob component (data/denoiser/speech of
    data/denoiser/speech/*/*.flac); the path itself when it has none."""
    return str(Path(*itertools.takewhile(lambda part: not glob.has_magic(part), Path(spec).parts)))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = make_config(DenoiserConfig, args.preset, args.config, args.overrides)
    missing = [p for p in map(_before_glob, (*cfg.speech, *cfg.noise))
               if p.startswith("data/denoiser") and not Path(p).exists()]
    if missing:
        raise UsageError(f"{missing[0]} does not exist: build the corpus first with "
                         "`python -m audio_dl.datasets denoiser-corpus data/denoiser`")
    export.check_publish_target(args.export_base, args.publish, "denoiser")  # now, not after the training
    run_dir = args.run_dir or Path("runs") / f"denoiser-{args.preset}"
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    command = shlex.join(["python", "-m", "audio_dl.train_denoiser", *(sys.argv[1:] if argv is None else argv)])
    print(f"run directory: {run_dir} (config, TensorBoard logs, checkpoints, export)")

    result = train_denoiser(cfg, run_dir, mixed_precision=args.mixed_precision,
                            verbose=2 if args.quiet else 1, command=command, strategy=args.strategy)
    if result.export_dir is None:
        print(f"this worker finished training ({result.run_dir}); the chief evaluates and exports")
        return 0
    if result.skipped_files:
        print(f"skipped {result.skipped_files} unreadable, corrupt, empty or misnamed (not UTF-8) audio files")
    print(f"\nexported and verified {result.export_dir} "
          f"(SavedModel max error {result.export_errors['saved_model_max_abs_error']:.1e}, "
          f"TFLite {result.export_errors['tflite_max_abs_error']:.1e})")
    target = export.publish_run(result.export_dir, run_dir, args.export_base, args.publish)
    if target is not None:
        print(f"TFLite model: {target / export.TFLITE_NAME}")
    return 0


main.prog = "python -m audio_dl.train_denoiser"

if __name__ == "__main__":
    raise SystemExit(cli.run_main(main))
