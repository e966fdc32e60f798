"""Train the folk melody model (folkNet) and export it for TF Serving and TFLite.

    python -m audio_dl.train_melody                         # default corpus: O'Neill's, Ryan's, misc folk
    python -m audio_dl.train_melody --midi-dir DIR          # any folder of MIDI files
    python -m audio_dl.train_melody --set epochs=40 --set lstm_units=512

The default corpus is converted from music21's ABC collections on first use (see
`python -m audio_dl.datasets folk-corpus`). The run directory keeps config, TensorBoard logs,
checkpoints and the export; running the same command again after an interruption resumes it.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import sys
from pathlib import Path
from typing import Sequence

from audio_dl import cli, export
from audio_dl.config import MELODY_PRESETS, MelodyConfig, make_config
from audio_dl.melody_training import train_melody


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(prog="python -m audio_dl.train_melody", description=__doc__,
                                formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    cli.add_config_options(parser, MELODY_PRESETS, default="folknet", example="transpose=-3,3")
    parser.add_argument("--midi-dir", action="append", metavar="DIR",
                        help="train on this folder (or glob) of MIDI files instead (repeatable)")
    cli.add_run_options(parser, "melody")
    cli.add_strategy_option(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = make_config(MelodyConfig, args.preset, args.config, args.overrides)
    if args.midi_dir:
        cfg = dataclasses.replace(cfg, midi_dir=tuple(args.midi_dir))
    export.check_publish_target(args.export_base, args.publish, "melody")  # now, not after the training
    run_dir = args.run_dir or Path("runs") / f"melody-{args.preset}"
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    command = shlex.join(["python", "-m", "audio_dl.train_melody", *(sys.argv[1:] if argv is None else argv)])
    print(f"run directory: {run_dir} (config, TensorBoard logs, checkpoints, export)")
    result = train_melody(cfg, run_dir, verbose=2 if args.quiet else 1, command=command, strategy=args.strategy)
    if result.export_dir is None:
        print(f"this worker finished training ({result.run_dir}); the chief evaluates and exports")
        return 0
    print(f"\nexported and verified {result.export_dir}")
    export.publish_run(result.export_dir, run_dir, args.export_base, args.publish)
    return 0


main.prog = "python -m audio_dl.train_melody"

if __name__ == "__main__":
    raise SystemExit(cli.run_main(main))
