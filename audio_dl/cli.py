"""Shared CLI plumbing: `--preset/--config/--set` options and the one-line error convention."""

from __future__ import annotations

import argparse
import sys
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


def run_main(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a CLI entry point; a UsageError becomes `prog: error: message` and exit code 2."""
    prog = getattr(main, "prog", None) or sys.argv[0]
    try:
        return main(argv) or 0
    except UsageError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
