"""Serve the piano ("Make me a tune") and denoiser listening pages.

    python -m audio_dl.app                      # http://127.0.0.1:8000
    python -m audio_dl.app --port 9000 --melody-model saved_models/melody --denoiser-model saved_models/denoiser

Binds to 127.0.0.1 unless --host says otherwise (with a warning: the app has no authentication).
"""

from __future__ import annotations

import ipaddress
import logging
import sys
from typing import Sequence

from audio_dl import cli
from audio_dl.app.server import create_app, load_models


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(prog="python -m audio_dl.app", description=__doc__,
                                formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=cli.port_number, default=8000, help="default: %(default)s")
    parser.add_argument("--melody-model", type=cli.given_path, default=cli.shipped_model("melody"),
                        help="melody export, base path or training run folder (default: %(default)s)")
    parser.add_argument("--denoiser-model", type=cli.given_path, default=cli.shipped_model("denoiser"),
                        help="denoiser export, base path, training run folder or .tflite (default: %(default)s)")
    return parser


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    if not is_loopback(args.host):
        print(f"WARNING: binding {args.host}: anyone who can reach this address can use the app "
              "(no authentication, uploads are processed on this machine)", file=sys.stderr)
    cli.check_port_free(args.host, args.port, "the app")  # before the slow loading
    models = load_models(args.melody_model, args.denoiser_model)
    for name, problem in (("melody", models.melody_problem), ("denoiser", models.denoiser_problem)):
        if problem:
            print(f"WARNING: {name} page disabled: {problem}", file=sys.stderr)
    with cli.http_server(create_app(models), args.host, args.port, "the app") as serving:
        print(f"serving on http://{args.host}:{args.port}/  (Ctrl+C to stop)")
        serving.join()  # in the main thread, where Ctrl-C and SIGTERM reach cli.run_main
    return 0


main.prog = "python -m audio_dl.app"

if __name__ == "__main__":
    raise SystemExit(cli.run_main(main))
