"""Continue a folk tune: a primer in, the model's continuation out as MIDI, WAV and a piano roll.

    python -m audio_dl.generate_melody "G4 G4 G4 D4 E4 E4 D4:2"          # Old MacDonald, 1 beat each
    python -m audio_dl.generate_melody primer.mid --temperature 0.8 --seed 3 -o out/tune
    python -m audio_dl.generate_melody "A4:0.5 B4:0.5 C5" --top-k 5 --max-notes 200

A note string is NAME[:BEATS] words (beats in quarter notes, default 1; R is a rest). The model
stops at its END token (the tune is over) or after --max-notes notes. Writes OUT.mid, OUT.wav and
OUT.png (x in beats, y in pitch; the primer red, the continuation blue).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from typing import Sequence

import soundfile

from audio_dl import audio_io, cli, midi_io, plots
from audio_dl.atomic import staged_file
from audio_dl.compose import MAX_NOTES, TEMPERATURES, MelodyGenerator, check_sampling
from audio_dl.data.melody import MIDI_SUFFIXES
from audio_dl.errors import UsageError

log = logging.getLogger(__name__)
RENDER_RATE = 22050
QPM = (20.0, 500.0)  # quarter notes per minute the MIDI and WAV are written at
DEFAULT_QPM = 120.0  # of a note-string primer
OUTPUT_SUFFIXES = (".mid", ".midi", ".wav", ".png")  # -o NAME.<any of these> writes NAME.mid, NAME.wav, NAME.png


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(prog="python -m audio_dl.generate_melody", description=__doc__,
                                formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("primer", help="a MIDI file, or notes such as \"G4 G4 G4 D4 E4 E4 D4:2\"")
    parser.add_argument("-o", "--output", default="melody",
                        help="output path, with or without a .mid/.midi/.wav/.png suffix, or a folder: writes "
                             "PATH.mid, PATH.wav, PATH.png (default: %(default)s)")
    parser.add_argument("--model", type=cli.given_path, default=cli.shipped_model("melody"),
                        help="SavedModel folder, TF Serving base path or training run folder (the "
                             "highest version; default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help=f"{TEMPERATURES[0]:g}..{TEMPERATURES[1]:g}; lower is safer (default: %(default)s)")
    parser.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest tokens (0: all)")
    parser.add_argument("--max-notes", type=int, default=256,
                        help=f"stop after this many notes, at most {MAX_NOTES} (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same tune; 0..2**31-1 (default: %(default)s)")
    parser.add_argument("--qpm", type=float,
                        help=f"tempo of the MIDI/WAV, quarter notes per minute, {QPM[0]:g}..{QPM[1]:g} (default: a MIDI "
                             f"primer's own tempo, else {DEFAULT_QPM:g})")
    return parser


def output_paths(text: str, inputs: Sequence[Path]) -> dict[str, Path]:
    """{".mid"|".wav"|".png": path} for -o: a stem (a .mid/.midi/.wav/.png suffix is dropped, any
    other suffix of letters and digits, such as .flac, is refused; "tune_0.7" and "St. Patrick"
    keep their dot) or a folder, one that exists or one written with a trailing slash (then
    FOLDER/melody.*); each checked by cli.output_file."""
    if not text.strip():
        raise UsageError("-o needs a file name, e.g. out/tune")  # Path("") is the current folder
    output = Path(text)
    if output.is_dir() or text.endswith(("/", os.sep)):
        output = output / "melody"
    ending = output.suffix.lower()
    if ending not in OUTPUT_SUFFIXES and re.fullmatch(r"\.\w*[a-z]\w*", ending):  # "St. Patrick" is a title
        raise UsageError(f"-o {text}: cannot write {output.suffix} files; give a name ending in "
                         f"{', '.join(OUTPUT_SUFFIXES)} or no suffix (each writes NAME.mid, NAME.wav and NAME.png)")
    stem = output.with_suffix("") if ending in OUTPUT_SUFFIXES else output
    if stem.name in ("", ".", ".."):
        raise UsageError(f"-o {str(output)!r} needs a file name, e.g. out/tune")
    return {suffix: cli.output_file(Path(f"{stem}{suffix}"), inputs) for suffix in (".mid", ".wav", ".png")}


def names_a_midi_file(primer: str) -> bool:
    """Whether the primer argument is a MIDI file's name, by a suffix a corpus reads (else it is a note string)."""
    return primer.lower().endswith(MIDI_SUFFIXES)


def read_primer(text: str, steps_per_quarter: int) -> list[midi_io.Note]:
    if names_a_midi_file(text):
        if not Path(text).is_file():
            raise UsageError(f"primer {text} is a folder, not a MIDI file" if Path(text).is_dir()
                             else f"primer file not found: {text}")
        try:
            notes, stats = midi_io.read_melody(text, steps_per_quarter, max_steps=10**6, max_chord_share=1.0)
        except midi_io.MelodySkipped as skipped:
            raise UsageError(f"{text} holds no usable melody ({skipped})") from None
        if dropped := stats.dropped_text():
            log.warning("primer %s: dropped %s (the primer is the top line of the file's first pitched voice, "
                        "on a 1/%d-note grid)", text, dropped, 4 * steps_per_quarter)
        return notes
    try:
        return midi_io.parse_note_string(text, steps_per_quarter)
    except UsageError:
        if os.path.isdir(text):  # False, not an OSError, for a note string too long to be a path
            raise UsageError(f"primer {text} is a folder; give a MIDI file or notes such as \"G4 A4 B4:2\"") from None
        if os.path.isfile(text):
            raise UsageError(f"primer {text} is not a MIDI file: MIDI primers end in {', '.join(MIDI_SUFFIXES)}") from None
        raise


def primer_qpm(text: str) -> float:
    """The tempo to write a continuation of this primer at: a MIDI primer's own where its melody
    starts (brought into QPM's range, with a warning), else DEFAULT_QPM."""
    if not names_a_midi_file(text):
        return DEFAULT_QPM
    qpm = midi_io.starting_qpm(text)
    kept = min(max(qpm, QPM[0]), QPM[1])
    if abs(kept - qpm) > 0.01:  # MIDI keeps whole microseconds per quarter: 90 reads back as 90.00009
        log.warning("primer %s is at %.6g qpm; writing at %g (give --qpm to choose)", text, qpm, kept)
    return kept


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_sampling(args.temperature, args.top_k, args.seed, args.max_notes,
                   names=cli.flag_names("temperature", "top_k", "seed", "max_notes"))
    if args.qpm is not None and not QPM[0] <= args.qpm <= QPM[1]:
        raise UsageError(f"--qpm must be in [{QPM[0]:g}, {QPM[1]:g}] (got {args.qpm:g})")
    paths = output_paths(args.output, [Path(args.primer)] if names_a_midi_file(args.primer) else [])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    generator = MelodyGenerator.from_export(args.model)
    cfg = generator.cfg
    primer = read_primer(args.primer, cfg.steps_per_quarter)
    qpm = args.qpm if args.qpm is not None else primer_qpm(args.primer)
    result = generator.continue_tune(primer, args.temperature, args.top_k, args.seed, max_notes=args.max_notes)
    generated, ended = result.generated, result.ended
    notes = result.primer + generated
    with contextlib.ExitStack() as stack:  # all three land together, or none
        staged = {suffix: stack.enter_context(staged_file(path)) for suffix, path in paths.items()}
        midi_io.to_pretty_midi(notes, cfg.steps_per_quarter, qpm).write(str(staged[".mid"]))
        soundfile.write(audio_io.native_path(staged[".wav"]),
                        midi_io.render_audio(notes, cfg.steps_per_quarter, qpm, RENDER_RATE), RENDER_RATE)
        plots.piano_roll(result.primer, generated, cfg.steps_per_quarter, staged[".png"],
                         title=f"temperature {args.temperature:g}, seed {args.seed}", continued_from=result.primer_steps)
    how = ("ended by itself" if ended else f"stopped at --max-notes {args.max_notes}"
           if len(generated) == args.max_notes else "stopped at the step limit")
    shift = f", primer transposed {result.transposed:+d}" if result.transposed else ""
    print(f"{len(result.primer)} primer notes + {len(generated)} generated ({how}{shift}) -> "
          f"{paths['.mid']}, .wav, .png")
    return 0


main.prog = "python -m audio_dl.generate_melody"

if __name__ == "__main__":
    raise SystemExit(cli.run_main(main))
