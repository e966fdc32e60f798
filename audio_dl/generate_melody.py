"""Continue a folk tune: a primer in, the model's continuation out as MIDI, WAV and a piano roll.

    python -m audio_dl.generate_melody "G4 G4 G4 D4 E4 E4 D4:2"          # Old MacDonald, 1 beat each
    python -m audio_dl.generate_melody primer.mid --temperature 0.8 --seed 3 -o out/tune
    python -m audio_dl.generate_melody "A4:0.5 B4:0.5 C5" --top-k 5 --max-notes 200

A note string is NAME[:BEATS] words (beats in quarter notes, default 1; R is a rest). The model
stops at its END token (the tune is over) or after --max-notes notes. Writes OUT.mid, OUT.wav and
OUT.png (x in beats, y in pitch; the primer red, the continuation blue).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Sequence

import soundfile

from audio_dl import cli, midi_io, plots
from audio_dl.compose import MelodyGenerator
from audio_dl.errors import UsageError

RENDER_RATE = 22050


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(prog="python -m audio_dl.generate_melody", description=__doc__,
                                formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("primer", help="a MIDI file, or notes such as \"G4 G4 G4 D4 E4 E4 D4:2\"")
    parser.add_argument("-o", "--output", type=Path, default=Path("melody"),
                        help="output path without suffix: writes .mid, .wav, .png (default: %(default)s)")
    parser.add_argument("--model", type=Path, default=Path("saved_models/melody"),
                        help="SavedModel folder or TF Serving base path (default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=1.0, help="> 0; lower is safer (default: %(default)s)")
    parser.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest tokens (0: all)")
    parser.add_argument("--max-notes", type=int, default=256, help="stop after this many notes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same tune (default: %(default)s)")
    parser.add_argument("--qpm", type=float, default=120.0, help="tempo of the MIDI/WAV, quarter notes per minute")
    return parser


def read_primer(text: str, steps_per_quarter: int) -> list[midi_io.Note]:
    if text.lower().endswith((".mid", ".midi")):
        if not Path(text).is_file():
            raise UsageError(f"primer file not found: {text}")
        try:
            notes, _ = midi_io.read_melody(text, steps_per_quarter, max_steps=10**6, max_chord_share=1.0)
        except midi_io.MelodySkipped as skipped:
            raise UsageError(f"{text} holds no usable melody ({skipped})") from None
        return notes
    return midi_io.parse_note_string(text, steps_per_quarter)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not (math.isfinite(args.temperature) and args.temperature > 0):
        raise UsageError(f"--temperature must be a number > 0 (got {args.temperature:g})")
    if args.top_k < 0 or args.max_notes < 1 or args.qpm <= 0:
        raise UsageError("--top-k must be >= 0, --max-notes >= 1 and --qpm > 0")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    generator = MelodyGenerator.from_export(args.model)
    cfg = generator.cfg
    primer = read_primer(args.primer, cfg.steps_per_quarter)
    result = generator.continue_tune(primer, args.temperature, args.top_k, args.seed, max_notes=args.max_notes)
    generated, ended = result.generated, result.ended
    stem = args.output.with_suffix("") if args.output.suffix in (".mid", ".wav", ".png") else args.output
    paths = {suffix: Path(f"{stem}{suffix}") for suffix in (".mid", ".wav", ".png")}  # "tune_0.7" keeps its dot
    stem.parent.mkdir(parents=True, exist_ok=True)
    notes = result.primer + generated
    midi_io.to_pretty_midi(notes, cfg.steps_per_quarter, args.qpm).write(str(paths[".mid"]))
    soundfile.write(paths[".wav"], midi_io.render_audio(notes, cfg.steps_per_quarter, args.qpm, RENDER_RATE),
                    RENDER_RATE)
    plots.piano_roll(result.primer, generated, cfg.steps_per_quarter, paths[".png"],
                     title=f"temperature {args.temperature:g}, seed {args.seed}")
    how = ("ended by itself" if ended else f"stopped at --max-notes {args.max_notes}"
           if len(generated) == args.max_notes else "stopped at the step limit")
    shift = f", primer transposed {result.transposed:+d}" if result.transposed else ""
    print(f"{len(result.primer)} primer notes + {len(generated)} generated ({how}{shift}) -> "
          f"{paths['.mid']}, .wav, .png")
    return 0


main.prog = "python -m audio_dl.generate_melody"

if __name__ == "__main__":
    raise SystemExit(cli.run_main(main))
