"""Atomic writes reach the disk in the right order: the file's data, then the rename, then the
folder's entry (a power cut between a rename and the data's flush can leave an empty file under
the final name on ext4 and XFS; docs/reliability.md, "Writes")."""

import os

import pytest

from adcorre import atomic_files


@pytest.fixture()
def disk_log(monkeypatch):
    """Every os.fsync and os.replace of the test, in order, as ("fsync", path) / ("replace",
    source, target): an fsync is recorded with the file or folder its descriptor names."""
    log = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(descriptor):
        log.append(("fsync", os.path.realpath(f"/proc/self/fd/{descriptor}")))
        fsync(descriptor)

    def recording_replace(source, target):
        log.append(("replace", os.path.realpath(source), os.path.realpath(target)))
        replace(source, target)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    return log


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name descriptors")
def test_a_write_flushes_the_data_before_the_rename_and_the_folder_after(tmp_path, disk_log):
    target = tmp_path / "model.h5"
    atomic_files.write_bytes(target, b"weights")

    assert target.read_bytes() == b"weights"
    renames = [entry for entry in disk_log if entry[0] == "replace"]
    assert len(renames) == 1
    _, temporary, final = renames[0]
    assert final == os.path.realpath(target)
    where = disk_log.index(renames[0])
    assert ("fsync", temporary) in disk_log[:where], disk_log
    assert ("fsync", os.path.realpath(tmp_path)) in disk_log[where + 1:], disk_log


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name descriptors")
def test_a_written_folder_has_every_file_flushed_before_the_rename(tmp_path, disk_log):
    target = tmp_path / "export"
    with atomic_files.atomic_path(target) as temporary:
        os.makedirs(os.path.join(temporary, "variables"))
        for name in ("saved_model.pb", os.path.join("variables", "data")):
            with open(os.path.join(temporary, name), "wb") as handle:
                handle.write(b"x")

    where = next(i for i, entry in enumerate(disk_log) if entry[0] == "replace")
    flushed_before = {entry[1] for entry in disk_log[:where]}
    staged = disk_log[where][1]
    assert {os.path.join(staged, "saved_model.pb"),
            os.path.join(staged, "variables", "data")} <= flushed_before
    assert sorted(os.listdir(target)) == ["saved_model.pb", "variables"]


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_files.atomic_path(tmp_path / "report.csv") as temporary:
            with open(temporary, "w") as handle:
                handle.write("half")
            raise RuntimeError("the disk filled up")
    assert os.listdir(tmp_path) == []
