"""What C and C++ libraries write to file descriptor 2, kept off the user's terminal: the
decoders' chatter, and the log lines of the TFLite converter (absl: "W0000 00:00:1796616700.28
27601 tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.") and interpreter ("INFO: Created
TensorFlow Lite XNNPACK delegate for CPU."), which TensorFlow's own log level does not reach.

The redirect is of the process's descriptor 2, so one thread at a time holds it: two
overlapping redirects (tf.data decodes in parallel) would restore each other's target and
silence stderr for the rest of the process.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import threading

import wurlitzer

_REDIRECT = threading.Lock()
# severity of a native log line: absl's "I0000 ..." / "W0000 ..." (and its notice, a warning, that
# it writes to stderr until initialised), TFLite's "INFO: ..."; errors are never dropped
_LOG_LINES = ((0, re.compile(r"I\d{4} [\d:.]+ +\d+ \S+:\d+\] |INFO: ")),
              (1, re.compile(r"W\d{4} [\d:.]+ +\d+ \S+:\d+\] |WARNING: All log messages before absl::InitializeLog")))


@contextlib.contextmanager
def discarded():
    """Everything written to stderr inside the block dropped (a C decoder's lines about a file it
    cannot read: the caller's own error or counted skip says what went wrong, in one line)."""
    with _REDIRECT, open(os.devnull, "w") as sink, wurlitzer.pipes(stdout=None, stderr=sink):
        yield


@contextlib.contextmanager
def log_lines_dropped():
    """What is written to stderr inside the block, passed on after it except the native INFO and
    WARNING log lines that TF_CPP_MIN_LOG_LEVEL hides (1: INFO, 2 or more: WARNING too; the
    package's default is 2 or 3, see audio_dl/__init__.py). Errors and Python's output are kept."""
    captured = io.StringIO()
    try:
        with _REDIRECT, wurlitzer.pipes(stdout=None, stderr=captured):
            yield
    finally:
        hidden = _min_log_level()
        kept = [line for line in captured.getvalue().splitlines(keepends=True)
                if not any(severity < hidden and pattern.match(line) for severity, pattern in _LOG_LINES)]
        sys.stderr.write("".join(kept))
        sys.stderr.flush()


def _min_log_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:  # not a number: every line shows
        return 0
