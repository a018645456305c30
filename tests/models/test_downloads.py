"""The one downloader against a loopback server: whole or nothing, deadlines, progress, stops.

`weight_server.serving` plays the mirror: whole answers, a byte every 0.2 s, headers then
silence. What a download leaves is read off the folder it writes into: the file when whole,
else nothing (no temporary name, no folder it made).
"""

import hashlib
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from adcorre import errors
from adcorre.models import downloads
from helpers import python_command, python_env
from weight_server import serving

# Starts as HDF5 files do, which is all the downloader looks at of a file's kind.
HDF5 = b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 40
SIGNATURES = (b"\x89HDF\r\n\x1a\n",)


def _fetch(url, target, **kwargs):
    return downloads.download(url, target, what="a.h5 (test)", signatures=SIGNATURES, **kwargs)


def test_a_whole_download_is_kept_with_its_digests(tmp_path):
    md5 = hashlib.md5(HDF5).hexdigest()
    with serving({"a.h5": HDF5}) as server:
        digests = _fetch(server.url + "a.h5", tmp_path / "cache" / "a.h5", digest="md5:" + md5,
                         progress=False)
    assert digests == {"sha256": hashlib.sha256(HDF5).hexdigest(), "md5": md5}
    assert os.listdir(tmp_path / "cache") == ["a.h5"]
    assert (tmp_path / "cache" / "a.h5").read_bytes() == HDF5


def test_bytes_unlike_the_expected_digest_are_refused_naming_both_and_not_kept(tmp_path):
    actual = hashlib.sha256(HDF5).hexdigest()
    with serving({"a.h5": HDF5}) as server:
        with pytest.raises(errors.WeightFileError) as raised:
            _fetch(server.url + "a.h5", tmp_path / "cache" / "a.h5", digest="sha256:f37072fd",
                   progress=False)
    said = str(raised.value)
    assert "a.h5 (test)" in said and f"its SHA256 is {actual}, expected f37072fd..." in said
    assert "Nothing was kept" in said and not (tmp_path / "cache").exists()


def test_a_slow_server_meets_the_deadline_with_the_address_and_what_arrived(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("ADCORRE_DOWNLOAD_TIMEOUT", "1")
    with serving({"a.h5": HDF5}) as server:
        server.mode = "slow"  # a byte every 0.2 s: 10 kB would take over half an hour
        started = time.monotonic()
        with pytest.raises(errors.WeightsUnavailableError) as raised:
            _fetch(server.url + "a.h5", tmp_path / "cache" / "a.h5", progress=False)
        took = time.monotonic() - started
    said = str(raised.value)
    assert f"Gave up downloading a.h5 (test) from {server.url}a.h5 after 1 s" in said
    assert "ADCORRE_DOWNLOAD_TIMEOUT" in said and "Nothing was kept" in said
    arrived = re.search(r": ([\d,]+) of ([\d,]+) bytes had arrived", said)
    assert arrived and int(arrived.group(2).replace(",", "")) == len(HDF5), said
    assert 1 <= int(arrived.group(1).replace(",", "")) <= 10  # about 5 bytes in 1 s
    assert took < 30 and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("text", ["0", "-3", "soon", "nan", "inf"])
def test_a_deadline_that_is_not_seconds_is_one_error(text, monkeypatch):
    monkeypatch.setenv("ADCORRE_DOWNLOAD_TIMEOUT", text)
    with pytest.raises(errors.SettingError, match="ADCORRE_DOWNLOAD_TIMEOUT.*seconds > 0"):
        downloads.deadline_seconds()


def test_progress_is_shown_before_the_first_byte_arrives(tmp_path, capsys):
    result = {}
    with serving({"a.h5": HDF5}) as server:
        server.mode, server.delay = "silent", 3.0  # headers, then 3 s of nothing
        target = tmp_path / "cache" / "a.h5"
        worker = threading.Thread(target=lambda: result.update(
            digests=_fetch(server.url + "a.h5", target)))  # progress=None: lines, not a tty
        started = time.monotonic()
        worker.start()
        shown = ""
        while "a.h5: 0.0 / 0.0 MB" not in shown and time.monotonic() - started < 2:
            time.sleep(0.05)
            shown += capsys.readouterr().err
        assert f"Downloading a.h5 from {server.url}a.h5" in shown, shown
        assert "a.h5: 0.0 / 0.0 MB" in shown and time.monotonic() - started < 2
        worker.join(timeout=60)
    assert "sha256" in result["digests"] and target.read_bytes() == HDF5


STOPPED = """
import sys
from adcorre.cli.main import main
sys.exit(main(["test", "--weights", "adcorre-rafdb", "--image", "x.jpg"]))
"""


@pytest.mark.parametrize("number, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_mid_download_removes_its_temporary_file(number, status, tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"there: the pictures are checked before the weights")
    folder = tmp_path / "home" / "weights"
    with serving({"RafDB_8696.h5": HDF5}) as server:
        server.mode = "slow"
        child = subprocess.Popen(
            python_command(STOPPED), cwd=tmp_path, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
            env=python_env(ADCORRE_HOME=str(tmp_path / "home"), ADCORRE_WEIGHTS_MIRROR=server.url,
                           CUDA_VISIBLE_DEVICES=""))
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not _partial_download(folder):
                time.sleep(0.1)
            assert _partial_download(folder), "the download never started"
            child.send_signal(number)
            _, err = child.communicate(timeout=120)
        finally:
            child.kill()
    name = signal.Signals(number).name
    assert child.returncode == status and "Traceback" not in err, err[-2000:]
    assert (f"stopped: the download of xcp.rafdb (RafDB_8696.h5) was stopped ({name}); nothing "
            "was kept") in err
    assert not (tmp_path / "home").exists()  # neither the temporary file nor the folders made


def _partial_download(folder):
    """True once a temporary file with some bytes in it sits in `folder`."""
    try:
        return any(entry.name.startswith(".tmp-") and entry.stat().st_size > 0
                   for entry in os.scandir(folder))
    except FileNotFoundError:
        return False
