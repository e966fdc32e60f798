"""Evaluate a melody model on a folder of MIDI tunes, against pitch n-gram baselines.

    python -m audio_dl.evaluate_melody --midi-dir DIR [--model saved_models/melody] [-o report.json]
    python -m audio_dl.evaluate_melody --midi-dir airds          # Aird's Airs (never trained on; also: essen)
    python -m audio_dl.evaluate_melody --validation-split        # the tunes its training held out

Reports, on the tunes of DIR (or of the model's validation split): teacher-forced token NLL and
accuracy; next-pitch accuracy and bits per note at note onsets; the same for smoothed
(Witten-Bell) pitch n-grams of order 3 and 5 fitted on the model's training tunes; and for
--generate N tunes generated from scratch: the share that end by themselves within 4x the
training corpus' median length, pitch-class and interval distribution distances, and how much
they copy from the training tunes next to the same for the real tunes scored. Text table + JSON.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Sequence

from audio_dl import atomic, cli
from audio_dl.compose import MelodyGenerator, check_sampling, export_scorer, load_melody_export
from audio_dl.config import MelodyConfig, json_text
from audio_dl.data import melody as melody_data
from audio_dl.errors import UsageError
from audio_dl.melody_training import (
    count_training_tunes,
    evaluate_tunes,
    format_report,
    generation_statistics,
    held_out_tunes,
)

log = logging.getLogger(__name__)


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(prog="python -m audio_dl.evaluate_melody", description=__doc__,
                                formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    tunes = parser.add_mutually_exclusive_group(required=True)
    tunes.add_argument("--midi-dir", action="append", metavar="DIR",
                       help="tunes to score: a folder or glob of MIDI, or 'airds' / 'essen' or a collection's name "
                            "such as airdsAirs (repeatable)")
    tunes.add_argument("--validation-split", action="store_true",
                       help="score the tunes the model's training held out for validation (of its corpus, or "
                            "of --train-midi-dir), as its model card does")
    parser.add_argument("--model", type=cli.given_path, default=cli.shipped_model("melody"),
                        help="SavedModel folder, TF Serving base path or training run folder (the "
                             "highest version; default: %(default)s)")
    parser.add_argument("--train-midi-dir", action="append", metavar="DIR",
                        help="the model's training tunes, for the n-grams and the copy check "
                             "(default: the corpus in the model's config.json)")
    parser.add_argument("--max-tunes", type=int, default=1000, help="score at most this many tunes (default: %(default)s)")
    parser.add_argument("--generate", type=int, default=100, help="tunes to generate (0: skip; default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=1.0, help="of the generated tunes (default: %(default)s)")
    parser.add_argument("-o", "--output", type=cli.given_path, default=Path("melody_evaluation.json"),
                        help="JSON file for the metrics (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_tunes < 1 or args.generate < 0:
        raise UsageError("--max-tunes must be >= 1 and --generate >= 0")
    check_sampling(args.temperature, names=cli.flag_names("temperature"))
    if args.output.suffix.lower() != ".json":  # never a tune of --midi-dir, whatever its folder
        raise UsageError(f"-o {args.output}: give the .json file for the metrics, e.g. melody_evaluation.json")
    midi_dirs = args.midi_dir or []
    output = cli.output_file(args.output, [Path(spec) for spec in midi_dirs + (args.train_midi_dir or [])])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    loaded, cfg, version = load_melody_export(args.model)
    cfg = dataclasses.replace(cfg, max_eval_tunes=args.max_tunes, generated_tunes=max(args.generate, 1))
    if args.validation_split:
        corpus = training_corpus(cfg, args.train_midi_dir, version)
        train, tunes, what = corpus.train, corpus.val[: args.max_tunes], "the validation split"
        note = f"{corpus.report.summary()}; scored {len(tunes)} of its {len(corpus.val)} validation tunes"
    else:
        tunes, note = held_out_tunes(tuple(midi_dirs), cfg)
        what = ", ".join(midi_dirs)
        if not tunes:  # said before the training corpus (minutes to read) is loaded
            raise UsageError(f"no tune of {what} can be scored ({note})")
        train = training_corpus(cfg, args.train_midi_dir, version).train
    print(f"model {version}; scoring {what}: {note}")
    seen = count_training_tunes(tunes, train)
    if seen:
        log.warning("%d of the %d tunes scored are in the model's training split: their scores are not held-out",
                    seen, len(tunes))
    metrics = {"scored": {"description": what, "training_tunes": seen,
                          **evaluate_tunes(export_scorer(loaded), cfg, train, tunes)}}
    if args.generate:
        generator = MelodyGenerator.from_export(version)
        metrics["generation"] = generation_statistics(generator, cfg, train, tunes, args.temperature)
    print(format_report(metrics, compared_with="scored" if seen else "held-out"))
    atomic.write_text(output, json_text({"model": str(version), **metrics}))
    print(f"wrote {output}")
    return 0


def training_corpus(cfg: MelodyConfig, train_midi_dir: list[str] | None, version: Path) -> melody_data.MelodyCorpus:
    """The corpus the model was trained on, split as in training: `train_midi_dir`, or the corpus
    its config.json names (a relative path there is relative to where it was trained: UsageError
    naming --train-midi-dir when it is not found from here)."""
    given = (f"--train-midi-dir {' '.join(train_midi_dir)}" if train_midi_dir
             else f"midi_dir in {version / 'config.json'}")
    try:
        return melody_data.load_corpus(dataclasses.replace(cfg, midi_dir=tuple(train_midi_dir or cfg.midi_dir)))
    except melody_data.NoTuneInRange as error:  # the range is the model's: not one to widen here
        raise UsageError(f"no tune of {given} lies inside the model's pitch range {error.range_name} "
                         f"({error.summary}); give the tunes it was trained on") from None
    except UsageError as error:
        if train_midi_dir:
            raise
        raise UsageError(f"the model's training tunes, {given}: {error}; give them with --train-midi-dir") from None


main.prog = "python -m audio_dl.evaluate_melody"

if __name__ == "__main__":
    raise SystemExit(cli.run_main(main))
