"""Shared CLI plumbing: `--preset/--config/--set` options and the one-line error convention."""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import errno
import os
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable, Sequence

from audio_dl.atomic import WRITE_FAILURES  # a full disk, a failing device or mount: one line, exit 1
from audio_dl.errors import TERMINATION, Terminated, UsageError
from audio_dl import paths

_CHECKOUT = Path(__file__).resolve().parent.parent  # holds this package: the repository, for pip install -e


class ArgumentParser(argparse.ArgumentParser):
    """argparse that exits with code 2 and one line for every misuse (argparse's own convention).
    Under run_main, a tool that has loaded TensorFlow checks its temporary folder once its
    arguments parse (require_utf8_temporary_folder): a misuse, or --help, is answered first."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        if _CHECK_TEMPORARY_FOLDER.get():
            _CHECK_TEMPORARY_FOLDER.set(False)
            require_utf8_temporary_folder()
        return parsed


# set by run_main for a tool that traces functions; the tool's ArgumentParser checks once its arguments parse
_CHECK_TEMPORARY_FOLDER = contextvars.ContextVar("check_temporary_folder", default=False)


def add_config_options(parser: argparse.ArgumentParser, presets: Sequence[str], default: str = "default",
                       example: str = "snr_db=-5,10") -> None:
    group = parser.add_argument_group("configuration (applied in this order)")
    group.add_argument("--preset", default=default, choices=sorted(presets),
                       help="named recipe to start from (default: %(default)s)")
    group.add_argument("--config", metavar="FILE",
                       help="JSON file of config values, e.g. a run's config.json")
    group.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                       help="override one config value; tuples are comma-separated "
                            f"(e.g. --set {example}). Repeatable.")


def add_run_options(parser: argparse.ArgumentParser, family: str) -> None:
    """--run-dir, --export-base, --publish, --quiet of the training CLIs (family: denoiser, melody)."""
    group = parser.add_argument_group("run and export")
    group.add_argument("--run-dir", type=folder_path,
                       help=f"where config, logs, checkpoints and the export go (default: runs/{family}-PRESET); "
                            "an interrupted run in it is resumed")
    group.add_argument("--export-base", type=folder_path, default=family_base(family),
                       help="TF Serving base path to publish to (default: %(default)s)")
    group.add_argument("--publish", choices=("auto", "always", "never"), default="auto",
                       help="auto: publish as the next version unless a shipped model is there; "
                            "always: publish even above a shipped model; never: keep it in the run dir")
    group.add_argument("--quiet", action="store_true", help="no Keras progress bar (one line per epoch)")


def family_base(family: str) -> Path:
    """The TF Serving base path of a model family in the current folder: saved_models/<family>."""
    return Path("saved_models") / family


def shipped_model(family: str) -> Path:
    """Default model of the tools that read one: saved_models/<family> in the current folder, else
    the shipped one of the checkout this package runs from (an editable install), so a tool run
    from the folder of one's recordings still finds it."""
    here = family_base(family)
    checkout = _CHECKOUT / here
    return checkout if not here.exists() and checkout.is_dir() else here


def flag_names(*keys: str) -> dict[str, str]:
    """{"top_k": "--top-k", ...}: the flags of settings a library function checks, for its messages."""
    return {key: "--" + key.replace("_", "-") for key in keys}


def given_path(text: str) -> Path:
    """argparse type of paths.given_path: an empty path is refused at once, a quoted ~/ expanded."""
    try:
        return paths.given_path(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def folder_path(text: str) -> Path:
    """argparse type of a folder to write into: refused at once if it is empty, a file or under a
    path that cannot be looked up (not after a run)."""
    path = given_path(text)
    try:
        nearest = _nearest_existing(path)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if nearest == path and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    return path


def writable_folder(path: Path) -> Path:
    """`path` if it is a folder this process can write into, or one it can create (checked before
    a long run by making and removing a probe folder in it, or in its nearest existing parent, and
    by asking the file system whether it takes the names of the folders still to be made)."""
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise UsageError(f"cannot write into {path}: {existing} is a file, not a folder")
    reason = too_long(path)
    if reason is not None:
        raise UsageError(f"cannot write into {path}: {reason}; give a shorter name")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".write-check-", dir=existing))
    except OSError as error:
        where = f"into {path}" if existing == path else f"into {existing} (to make {path} there)"
        raise UsageError(f"cannot write {where}: making a folder there failed ({error.strerror})") from None
    return path


# what a lookup fails with where the path does not exist (ENAMETOOLONG: a name the file system cannot hold)
_MISSING = {errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG}


def _nearest_existing(path: Path) -> Path:
    """`path` or its nearest parent that exists (the current folder for a relative path). A name
    the file system cannot even look up (too long: ENAMETOOLONG) does not exist; one it cannot
    look up for another reason (a symbolic link loop, a folder this process may not search) is a
    UsageError naming it, as the write would fail after the work (a failing device: its OSError)."""
    nearest = Path(".")
    for folder in reversed((path, *path.parents)):  # from the top: the first that fails is the one to name
        try:
            folder.stat()
        except OSError as error:
            if error.errno in _MISSING:
                break
            if error.errno in WRITE_FAILURES:  # run_main's one line, exit 1
                raise
            where = "" if folder == path else f" {folder}:"
            raise UsageError(f"cannot write {path}:{where} {error.strerror}") from None
        nearest = folder
    return nearest


def too_long(path: Path) -> str | None:
    """Why the file system would refuse `path` as too long, or None: a name of the folders still to
    be made or its own over NAME_MAX bytes (255 UTF-16 units on Windows), or the whole path over
    PATH_MAX bytes (each asked of the nearest existing folder; 255 and no path limit where they
    cannot be asked). None too when `path` exists."""
    existing = _nearest_existing(path)
    name_max, path_max = _limit(existing, "PC_NAME_MAX", 255), _limit(existing, "PC_PATH_MAX", None)
    if path_max is not None and len(os.fsencode(os.path.abspath(path))) >= path_max:  # the limit counts its NUL
        return f"the path is longer than the file system's {path_max} bytes"
    to_make = [p.name for p in reversed([path, *path.parents]) if existing in p.parents]
    long_name = next((name for name in to_make if _name_length(name) > name_max), None)
    return None if long_name is None else f"the name {long_name} is too long for the file system"


def _limit(folder: Path, name: str, default: int | None) -> int | None:
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows), or no answer
        return default


def _name_length(name: str) -> int:
    """A name's length as the file system counts it: bytes, or UTF-16 units on Windows (NTFS)."""
    return len(name.encode("utf-16-le")) // 2 if os.name == "nt" else len(os.fsencode(name))


def existing_folder(path: Path, what: str) -> Path:
    """`path` if it is a folder; UsageError saying it is missing or a file (`what` names the folder)."""
    if not path.is_dir():
        raise UsageError(f"{path} is a file, not {what}" if path.exists() else f"path does not exist: {path}")
    return path


def file_id(path: Path) -> tuple[int, int]:
    """(device, inode): the same file under any spelling or case."""
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def output_file(path: Path, inputs: Sequence[Path] = ()) -> Path:
    """An output file checked before any work: not a folder, not one of `inputs` (the same file
    under any spelling), a name the file system takes (asked even where the folder is still to be
    made), in a folder this process can write or create (created only when the file is written,
    so a run that fails later leaves no new folder); raises UsageError."""
    reason = too_long(path)  # first: looking such a path up raises
    if reason is not None and _nearest_existing(path).is_dir():  # (under a file: writable_folder says so)
        raise UsageError(f"cannot write {path}: {reason}; give a shorter name")
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give a file name")
    if path.exists() and file_id(path) in {file_id(i) for i in inputs if i.exists()}:
        raise UsageError(f"{path} would overwrite an input; give another output")
    writable_folder(path.parent)
    return path


def port_number(text: str) -> int:
    """argparse type of a TCP port: 1..65535."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1..65535)")
    return int(text)


def _bound_socket(host: str, port: int, what: str) -> socket.socket:
    """A TCP socket bound to host:port (IPv6 for an address with ':', as werkzeug chooses), or
    UsageError naming `what` (another server holds the port, or the host is not this machine's)."""
    from werkzeug.serving import get_sockaddr, select_address_family  # noqa: PLC0415 - only the servers need it

    family = select_address_family(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
    try:
        sock.bind(get_sockaddr(host, port, family))
    except OSError as error:
        sock.close()
        raise UsageError(f"cannot serve {what} on {host}:{port}: {error.strerror or error}") from None
    return sock


def check_port_free(host: str, port: int, what: str) -> None:
    """UsageError if nothing can listen on host:port; checked before a slow model load."""
    _bound_socket(host, port, what).close()


@contextlib.contextmanager
def http_server(app, host: str, port: int, what: str):
    """Serve the WSGI `app` on host:port from a daemon thread (UsageError if the port cannot be
    bound) and yield that thread; shut the server down on the way out. The caller waits in the main
    thread, where Ctrl-C and SIGTERM reach run_main (exit 130, 143): werkzeug's serve_forever, run
    in the main thread, swallows them."""
    from werkzeug.serving import make_server  # noqa: PLC0415

    with _bound_socket(host, port, what) as sock:  # bound here, once: no second bind that could fail
        sock.listen()
        server = make_server(host, port, app, threaded=True, fd=sock.fileno())  # on a duplicate of it
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        server.shutdown()
        server.server_close()


def report_interrupts_while_loading() -> None:
    """Ctrl-C before run_main has started (while a tool imports: TensorFlow takes seconds) ends the
    process as run_main would, `python -m audio_dl.<tool>: interrupted` and exit code 130, not with
    runpy's traceback. The package installs this when it is loaded for `python -m`; the hook acts
    only while the module run as __main__ is one of this package's."""
    previous = sys.excepthook

    def one_line(kind, value, traceback):
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if not (issubclass(kind, KeyboardInterrupt) and spec and spec.name.startswith(f"{__package__}.")):
            previous(kind, value, traceback)
            return
        print(f"python -m {spec.name.removesuffix('.__main__')}: interrupted", file=sys.stderr)
        sys.exit(130)  # returning would let Python end by raising SIGINT again (status -2)

    sys.excepthook = one_line


def add_strategy_option(parser: argparse.ArgumentParser) -> None:
    from audio_dl.distribute import STRATEGIES  # noqa: PLC0415 - imports TensorFlow: only the training CLIs need it

    parser.add_argument("--strategy", choices=STRATEGIES, default="auto",
                        help="auto: all local GPUs when there are several; mirrored: MirroredStrategy; "
                             "multiworker: MultiWorkerMirroredStrategy over the cluster in TF_CONFIG "
                             "(default: %(default)s)")


# a path that is missing, of the wrong kind, not writable or a symbolic link loop: the user's to fix
_PATH_MISUSE = {errno.ENOENT, errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS,
                errno.ENAMETOOLONG, errno.ELOOP}


def _terminate(signum, frame):
    TERMINATION.set()
    raise Terminated


@contextlib.contextmanager
def _sigterm_unwinds():
    """While the block runs in the main thread, SIGTERM raises Terminated instead of killing the
    process on the spot (which would leave staged files behind)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def require_utf8_temporary_folder() -> None:
    """UsageError when there is no temporary folder, or its path (TMPDIR) is not UTF-8: TensorFlow's
    autograph and TFLite converter write there and would fail with a traceback, at the first traced
    function (a training's, after its data is read)."""
    from audio_dl import audio_io  # noqa: PLC0415 - numpy and soundfile: not before run_main catches Ctrl-C

    try:
        folder = tempfile.gettempdir()
    except FileNotFoundError:  # none of TMPDIR, /tmp, ... can be written
        raise UsageError("no temporary folder can be written (TensorFlow writes temporary files there); "
                         "set TMPDIR to a folder this process can write") from None
    audio_io.require_utf8_path(folder, "the temporary folder {path} is not a UTF-8 path, and TensorFlow writes "
                                       "temporary files there; set TMPDIR to another folder")


def run_main(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a CLI entry point; a UsageError, or an OSError on a path the user gave (an output folder
    that is a file, a folder that cannot be written), becomes `prog: error: message` and exit code 2;
    a write or lookup that fails for lack of space, on a failing device or on a mount gone
    (WRITE_FAILURES), that line and exit code 1. A tool that has loaded TensorFlow is refused where
    TensorFlow cannot trace functions (require_utf8_temporary_folder), once its arguments parse
    (ArgumentParser.parse_args), unless its main says main.traces_functions = False.
    Ctrl-C and SIGTERM end it with one line (exit codes 130 and 143) after partial outputs are removed."""
    prog = getattr(main, "prog", None) or sys.argv[0]
    if getattr(sys.stdout, "errors", None) == "strict":  # a UTF-8 locale's: a file name that is not UTF-8
        sys.stdout.reconfigure(errors="backslashreplace")  # prints escaped (as stderr does), not a traceback
    TERMINATION.clear()
    check = _CHECK_TEMPORARY_FOLDER.set("tensorflow" in sys.modules and getattr(main, "traces_functions", True))
    try:
        with _sigterm_unwinds():
            code = main(argv) or 0
        if TERMINATION.is_set():  # Python printed "Exception ignored in ... __del__" and went on
            raise Terminated
        return code
    except UsageError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.filename is None or error.errno not in _PATH_MISUSE | WRITE_FAILURES:  # a bug: keep its traceback
            raise
        reason = "exists and is not a folder" if error.errno == errno.EEXIST else error.strerror
        print(f"{prog}: error: {error.filename}: {reason}", file=sys.stderr)
        return 2 if error.errno in _PATH_MISUSE else 1
    except Terminated:
        print(f"{prog}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    finally:
        _CHECK_TEMPORARY_FOLDER.reset(check)
