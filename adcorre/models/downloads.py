"""The one downloader: a file arrives whole, checked, within its deadline, or not at all.

`download(url, target, ...)` streams the answer into a temporary name beside `target` and
renames it only when every check passed: the size the server announced, the first bytes of the
kind of file it must be (an HTML login page is not an HDF5 file), and the digest, where one is
expected. Whatever fails, nothing is left: not the file, not its temporary name, not a folder
the download made. A stop by SIGTERM (or Ctrl+C) during the transfer removes the temporary file
too and ends as Ctrl+C does (`DownloadStopped`, exit status 128 + the signal's number).

The whole download has a deadline, `$ADCORRE_DOWNLOAD_TIMEOUT` seconds (default an hour: a
90 MB file at 25 kB/s), and a server silent for 60 s (or the deadline, when shorter) is given
up at once. Progress is on stderr from the start: a bar on a terminal, else a line every 10 s.

Example:
>>> deadline_seconds() > 0, digest_matches("sha256:f37072fd", "f37072fd" + "0" * 56)
(True, True)

This module imports nothing of ours but `atomic_files`, `signal_stops` and `errors`.
"""

import contextlib
import hashlib
import http.client
import math
import os
import signal
import sys
import time
import urllib.error
import urllib.request

from adcorre import signal_stops
from adcorre.atomic_files import atomic_path
from adcorre.errors import SettingError, WeightFileError, WeightsUnavailableError, first_line

TIMEOUT_VARIABLE = "ADCORRE_DOWNLOAD_TIMEOUT"
DEFAULT_TIMEOUT_S = 3600.0
# A read that gets no byte for this long gives up (or for the deadline, when that is shorter).
SILENCE_S = 60.0
_CHUNK = 1 << 16
_HEAD = 16  # the first bytes kept to tell the kind of file


class CacheWriteError(OSError):
    """The folder could not take the download (full, read-only): the disk's failure."""


class DownloadStopped(KeyboardInterrupt):
    """A download stopped by SIGTERM or Ctrl+C: its temporary file is gone. A
    `KeyboardInterrupt`, so the commands end it as they end Ctrl+C (`cli.common.run_task`)."""

    def __init__(self, signal_number, what):
        self.signal_number = signal_number
        name = signal.Signals(signal_number).name
        super().__init__(f"the download of {what} was stopped ({name}); nothing was kept")


def deadline_seconds():
    """`$ADCORRE_DOWNLOAD_TIMEOUT` as seconds (default `DEFAULT_TIMEOUT_S`).

    Raises:
        SettingError: the variable holds no positive number.
    """
    text = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise SettingError(f"{TIMEOUT_VARIABLE}={text!r}: expected a number of seconds > 0 "
                           f"(the deadline of a whole download; default {DEFAULT_TIMEOUT_S:g}).")
    return value


def digest_matches(expected, actual):
    """True when the hex digest `actual` is the one `expected` (`"algorithm:hex"`, the hex
    whole or a prefix of it) names."""
    return actual.lower().startswith(expected.split(":", 1)[1].lower())


def is_prefix(digest):
    """True when `digest` (`"algorithm:hex"`) holds only the first digits of its hex."""
    algorithm, value = digest.split(":", 1)
    return len(value) < 2 * hashlib.new(algorithm).digest_size


def expected_digest(digest):
    """`digest`'s hex for messages, a prefix marked as such (`f37072fd...`)."""
    value = digest.split(":", 1)[1]
    return value + "..." if is_prefix(digest) else value


def file_digest(path, algorithm="sha256"):
    """The hex digest of a file's bytes, read a megabyte at a time."""
    return _hash_file(hashlib.new(algorithm), path)


def git_blob_id(path):
    """The id git gives the file's bytes (SHA-1 over `blob <size>\\0` and the bytes)."""
    return _hash_file(hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode()), path)


def _hash_file(hasher, path):
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def download(url, target, *, what, signatures, digest=None, progress=None, advice=""):
    """Fetches `url` to `target`, whole and checked, or leaves nothing.

    Args:
        url: an `http(s)://` or `file://` address.
        target: the file to write (its folder is made when missing, and removed again when
            the download fails and it is empty).
        what: the file in words for messages and the progress (`"xcp.rafdb (RafDB_8696.h5)"`).
        signatures: the byte strings a whole file of its kind starts with.
        digest: `"algorithm:hex"` the file must match (hex whole or a prefix), or None.
        progress: None: a bar on a terminal, lines elsewhere; True: the bar; False: nothing.
        advice: a sentence that ends every error (what the user can do instead).

    Returns:
        `{algorithm: hex digest}` of the bytes kept: `sha256` always, and `digest`'s algorithm.

    Raises:
        WeightsUnavailableError: unreachable, HTTP error, cut short, past the deadline, not
            that kind of file (the message names the address and what arrived).
        WeightFileError: the bytes are not the file whose digest is expected (both digests
            named).
        CacheWriteError: the folder cannot take the file.
        DownloadStopped: SIGTERM or Ctrl+C during the transfer.
    """
    deadline = deadline_seconds()
    algorithms = {"sha256"} | ({digest.split(":", 1)[0]} if digest else set())
    with _folder_made_for(target), _stopping_cleanly(what), atomic_path(target) as temporary:
        transfer = _Transfer(url, what, advice, deadline, algorithms,
                             _Progress(target, progress))
        with open(temporary, "wb", buffering=0) as out:  # unbuffered: a full disk fails a write
            transfer.fetch(out)
        transfer.check(signatures, digest)
        return {name: hasher.hexdigest() for name, hasher in transfer.hashers.items()}


class _Transfer:
    """One download's state: what arrived, its digests, and the errors that name them."""

    def __init__(self, url, what, advice, deadline, algorithms, progress):
        self.url, self.what, self.advice, self.deadline = url, what, advice, deadline
        self.hashers = {name: hashlib.new(name) for name in sorted(algorithms)}
        self.progress = progress
        self.received, self.expected, self.head = 0, None, b""
        self.started = time.monotonic()

    def fetch(self, out):
        request = urllib.request.Request(self.url, headers={"User-Agent": "adcorre"})
        try:
            with urllib.request.urlopen(request, timeout=min(SILENCE_S, self.deadline)) as answer:
                length = answer.headers.get("Content-Length")
                self.expected = int(length) if length and length.isdigit() else None
                self.progress.start(self.url, self.expected)
                self._copy(answer, out)
        except CacheWriteError:
            raise  # the disk, not the network: said as such, exit status 1
        except urllib.error.HTTPError as error:
            raise WeightsUnavailableError(
                f"Could not download {self.what} from {self.url}: HTTP {error.code} "
                f"({error.reason}). {self.advice}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
            if self._late():
                raise self._past_deadline() from None
            reason = getattr(error, "reason", None) or first_line(error)
            raise WeightsUnavailableError(
                f"Could not download {self.what} from {self.url} ({reason}; {self._arrived()} "
                f"had arrived); offline? {self.advice}") from None
        finally:
            self.progress.finish(self.received)

    def _copy(self, answer, out):
        read = getattr(answer, "read1", answer.read)  # read1: whatever has arrived, at once
        while True:
            if self._late():
                raise self._past_deadline()
            chunk = read(_CHUNK)
            if not chunk:
                return
            try:
                written = 0
                while written < len(chunk):  # a raw write may take only part of it
                    written += out.write(chunk[written:])
            except OSError as error:
                raise CacheWriteError(
                    error.errno, f"Could not write {self.what} into the weights cache "
                    f"{os.path.dirname(out.name)} ({first_line(error)}); free space there or "
                    "set ADCORRE_HOME to a folder that has it. Nothing was kept") from None
            for hasher in self.hashers.values():
                hasher.update(chunk)
            if len(self.head) < _HEAD:
                self.head = (self.head + chunk)[:_HEAD]
            self.received += len(chunk)
            self.progress.update(self.received)

    def check(self, signatures, digest):
        """The size announced, the first bytes of the kind, the digest: or one error."""
        if self.expected is not None and self.received != self.expected:
            raise WeightsUnavailableError(
                f"The download of {self.what} from {self.url} was cut short: {self.received} of "
                f"{self.expected} bytes. Nothing was kept; run again. {self.advice}")
        if not self.head.startswith(tuple(signatures)):
            looks = "an HTML page" if self.head.lstrip()[:1] == b"<" else "not that kind of file"
            raise WeightsUnavailableError(
                f"What {self.url} sent for {self.what} is {looks} (a login page or an error "
                f"page?). Nothing was kept. {self.advice}")
        if digest:
            algorithm = digest.split(":", 1)[0]
            actual = self.hashers[algorithm].hexdigest()
            if not digest_matches(digest, actual):
                raise WeightFileError(
                    f"What {self.url} sent for {self.what} is not the file published: its "
                    f"{algorithm.upper()} is {actual}, expected {expected_digest(digest)}. "
                    f"Nothing was kept. {self.advice}")

    def _late(self):
        return time.monotonic() - self.started >= self.deadline

    def _arrived(self):
        total = f" of {self.expected:,}" if self.expected is not None else ""
        return f"{self.received:,}{total} bytes"

    def _past_deadline(self):
        return WeightsUnavailableError(
            f"Gave up downloading {self.what} from {self.url} after {self.deadline:g} s "
            f"({TIMEOUT_VARIABLE}): {self._arrived()} had arrived. Nothing was kept; set "
            f"{TIMEOUT_VARIABLE} to more seconds on a slow line. {self.advice}")


class _Progress:
    """What a download shows on stderr: a bar on a terminal (redrawn at most every 0.25 s),
    elsewhere a line every 10 s; the first at once, before any byte arrives."""

    def __init__(self, target, style):
        self.name = os.path.basename(target)
        self.bar = sys.stderr.isatty() if style is None else style
        self.shown = style is not False
        self.every = 0.25 if self.bar else 10.0
        self.expected, self.last = None, -math.inf

    def start(self, url, expected):
        self.expected = expected
        if self.shown:
            print(f"Downloading {self.name} from {url}", file=sys.stderr, flush=True)
            self.update(0)

    def update(self, received, force=False):
        now = time.monotonic()
        if not self.shown or (now - self.last < self.every and not force):
            return
        self.last = now
        mb, total = received / 1e6, (f" / {self.expected / 1e6:.1f}" if self.expected else "")
        if self.bar:
            done = received / self.expected if self.expected else 0.0
            text = f"\r{self.name}: [{'#' * int(30 * done):<30}] {mb:6.1f}{total} MB"
            print(text, end="", file=sys.stderr, flush=True)
        else:
            print(f"{self.name}: {mb:.1f}{total} MB", file=sys.stderr, flush=True)

    def finish(self, received):
        if self.shown and self.last > -math.inf:
            self.update(received, force=True)
            if self.bar:
                print(file=sys.stderr, flush=True)


@contextlib.contextmanager
def _folder_made_for(target):
    """Makes `target`'s folder; when what follows fails, removes the folders it made (if
    empty), so a failed first download leaves no empty cache folder behind."""
    folder = os.path.dirname(os.path.abspath(target))
    missing = []
    while not os.path.isdir(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    try:
        yield
    except BaseException:
        for made in missing:  # the deepest first
            with contextlib.suppress(OSError):
                os.rmdir(made)
        raise


@contextlib.contextmanager
def _stopping_cleanly(what):
    """SIGTERM (and SIGHUP) stop the download as Ctrl+C does (`signal_stops`: the one handler
    every command uses): `DownloadStopped` raised where the transfer is, so the temporary file is
    removed on the way out (Python's default SIGTERM leaves it). Inside a training run, the
    run's stop is the one raised: it says how to resume."""
    try:
        with signal_stops.signals_stop(lambda number: DownloadStopped(number, what)):
            yield
    except KeyboardInterrupt as interrupt:
        if type(interrupt) is not KeyboardInterrupt:
            raise  # a signal's stop, already worded (or training's RunStopped: theirs to say)
        raise DownloadStopped(signal.SIGINT, what) from None
