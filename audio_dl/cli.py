"""Shared CLI plumbing: `--preset/--config/--set` options and the one-line error convention."""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path
from typing import Callable, Sequence

from audio_dl.errors import UsageError


class ArgumentParser(argparse.ArgumentParser):
    """argparse that exits with code 2 and one line for every misuse (argparse's own convention)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_config_options(parser: argparse.ArgumentParser, presets: Sequence[str], default: str = "default") -> None:
    group = parser.add_argument_group("configuration (applied in this order)")
    group.add_argument("--preset", default=default, choices=sorted(presets),
                       help="named recipe to start from (default: %(default)s)")
    group.add_argument("--config", metavar="FILE",
                       help="JSON file of config values, e.g. a run's config.json")
    group.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                       help="override one config value; tuples are comma-separated "
                            "(e.g. --set snr_db=-5,10). Repeatable.")


def add_run_options(parser: argparse.ArgumentParser, family: str) -> None:
    """--run-dir, --export-base, --publish, --quiet of the training CLIs (family: denoiser, melody)."""
    group = parser.add_argument_group("run and export")
    group.add_argument("--run-dir", type=Path,
                       help=f"where config, logs, checkpoints and the export go (default: runs/{family}-PRESET); "
                            "an interrupted run in it is resumed")
    group.add_argument("--export-base", type=Path, default=Path("saved_models") / family,
                       help="TF Serving base path to publish to (default: %(default)s)")
    group.add_argument("--publish", choices=("auto", "always", "never"), default="auto",
                       help="auto: publish as the next version unless a shipped model is there; "
                            "always: publish even above a shipped model; never: keep it in the run dir")
    group.add_argument("--quiet", action="store_true", help="no Keras progress bar (one line per epoch)")


def add_strategy_option(parser: argparse.ArgumentParser) -> None:
    from audio_dl.distribute import STRATEGIES  # noqa: PLC0415 - imports TensorFlow: only the training CLIs need it

    parser.add_argument("--strategy", choices=STRATEGIES, default="auto",
                        help="auto: all local GPUs when there are several; mirrored: MirroredStrategy; "
                             "multiworker: MultiWorkerMirroredStrategy over the cluster in TF_CONFIG "
                             "(default: %(default)s)")


# a path that is missing, of the wrong kind or not writable: the user's to fix
_PATH_MISUSE = {errno.ENOENT, errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS}


def run_main(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a CLI entry point; a UsageError, or an OSError on a path the user gave (an output folder
    that is a file, a folder that cannot be written), becomes `prog: error: message` and exit code 2."""
    prog = getattr(main, "prog", None) or sys.argv[0]
    try:
        return main(argv) or 0
    except UsageError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.filename is None or error.errno not in _PATH_MISUSE:  # a real failure: keep its traceback
            raise
        reason = "exists and is not a folder" if error.errno == errno.EEXIST else error.strerror
        print(f"{prog}: error: {error.filename}: {reason}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
