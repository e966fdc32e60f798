"""What C and C++ libraries write to file descriptor 2, kept off the user's terminal: the
decoders' chatter, and the log lines of the TFLite converter (absl: "W0000 00:00:1796616700.28
27601 tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.") and interpreter ("INFO: Created
TensorFlow Lite XNNPACK delegate for CPU."), which TensorFlow's own log level does not reach.

A redirect is of the process's descriptor 2, so one thread at a time holds one (tf.data decodes
in parallel): two overlapping ones would restore each other's target and silence stderr for the
rest of the process. Nested in one thread, each restores the one around it.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading

import wurlitzer

_REDIRECT = threading.RLock()
# (severity, pattern) of native log lines: absl's "I0000 ..." / "W0000 ..." and the notice (a
# warning) that it writes to stderr until initialised, TFLite's INFO lines; errors are never dropped
_LOG_LINES = ((0, re.compile(rb"I\d{4} [\d:.]+ +\d+ \S+:\d+\] |INFO: (Created|Initialized) TensorFlow Lite")),
              (1, re.compile(rb"W\d{4} [\d:.]+ +\d+ \S+:\d+\] |WARNING: All log messages before absl::InitializeLog")))


@contextlib.contextmanager
def discarded():
    """Everything written to stderr inside the block dropped (a C decoder's lines about a file it
    cannot read: the caller's own error or counted skip says what went wrong, in one line)."""
    with _REDIRECT, open(os.devnull, "w") as sink, wurlitzer.pipes(stdout=None, stderr=sink):
        yield


@contextlib.contextmanager
def log_lines_dropped():
    """What is written to stderr inside the block, passed on line by line as it comes, except the
    native log lines (_LOG_LINES) that TF_CPP_MIN_LOG_LEVEL hides: at 1 the INFO lines, at 2 or
    more the WARNING ones too (the package's default is 2 or 3: see audio_dl/__init__.py)."""
    with _REDIRECT, _LineFilter(_min_log_level()) as kept, wurlitzer.pipes(stdout=None, stderr=kept, encoding=None):
        yield


class _LineFilter:
    """A writable for wurlitzer: bytes in, whole lines out to the descriptor 2 of before the
    redirect, less the log lines under `hidden`; a last unfinished line on the way out."""

    def __init__(self, hidden: int):
        self.hidden, self.pending, self.fd = hidden, b"", -1

    def __enter__(self):
        self.fd = os.dup(2)
        return self

    def __exit__(self, *exc_info):
        try:
            self._emit(self.pending)
        finally:
            os.close(self.fd)
            self.fd = -1  # a write after this (wurlitzer's forwarder cut short by Ctrl-C) goes nowhere

    def write(self, data: bytes) -> None:
        *lines, self.pending = (self.pending + data).split(b"\n")
        for line in lines:
            self._emit(line + b"\n")

    def _emit(self, line: bytes) -> None:
        if self.fd >= 0 and not any(severity < self.hidden and pattern.match(line) for severity, pattern in _LOG_LINES):
            while line:  # a pipe may take part of it
                line = line[os.write(self.fd, line):]


def _min_log_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:  # not a number: every line shows
        return 0
