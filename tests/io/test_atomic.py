"""Atomic saves: a save that is killed or fails leaves the previous file intact and loadable."""

import os
import pathlib
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

import danlu as dl
from danlu.io import files, load, save

REPO = pathlib.Path(__file__).resolve().parents[2]
posix_only = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals (SIGKILL)")

# Saves big objects in a loop: {"big": a float32 vector full of i, "tag": i} for i = 0, 1, 2, ...
SAVER = """
import sys
import danlu as dl
from danlu.io import save
path, n, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print("ready", flush=True)
for i in range(count):
    save({"big": dl.ones(n) * float(i), "tag": i}, path)
"""


def spawn_saver(path, n, count, **env):
    return subprocess.Popen([sys.executable, "-c", SAVER, str(path), str(n), str(count)],
                            env={**os.environ, "PYTHONPATH": str(REPO), **env}, stdout=subprocess.PIPE, text=True)


def check_consistent(obj, allowed_tags):
    assert obj["tag"] in allowed_tags
    big = obj["big"].numpy()
    assert big.dtype == np.float32 and (big == float(obj["tag"])).all()


def temp_files(directory):
    return sorted(p for p in os.listdir(directory) if p.endswith(".tmp"))


@posix_only
def test_killed_between_temp_file_and_rename(tmp_path):
    path = tmp_path / "model.safetensors"
    save({"big": dl.ones(10) * -1.0, "tag": -1}, path)
    marker = tmp_path / "paused"
    proc = spawn_saver(path, 2_000_000, 1, **{files.PAUSE_ENV: str(marker)})
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "the saver exited before reaching the test hook"
            assert time.monotonic() < deadline, "the saver never reached the test hook"
            time.sleep(0.02)
    finally:
        proc.kill()  # SIGKILL: no cleanup code runs in the saver
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    check_consistent(load(path), {-1})  # the previous file is untouched
    # the complete new file was waiting under a temporary name in the same directory
    (tmp,) = temp_files(tmp_path)
    assert tmp.startswith(".model.safetensors.")
    check_consistent(load(tmp_path / tmp), {0})


@posix_only
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15, 0.4])
def test_killed_at_any_moment(tmp_path, delay):
    path = tmp_path / "model.safetensors"
    save({"big": dl.ones(10) * -1.0, "tag": -1}, path)
    proc = spawn_saver(path, 3_000_000, 1000)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
    finally:
        proc.kill()
        proc.wait()
    check_consistent(load(path), {-1, *range(1000)})  # the old file or a complete new one, never a torn one


def test_failed_save_keeps_the_old_file_and_removes_its_temp(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save({"v": 1}, path)

    def broken(arrays, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(files.st_np, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save({"v": 2}, path)
    assert load(path) == {"v": 1}
    assert temp_files(tmp_path) == []


def test_success_leaves_no_temp_files_and_overwrites(tmp_path):
    path = tmp_path / "m.safetensors"
    for i in range(3):
        save({"v": i, "t": dl.ones(i)}, path)
    assert load(path)["v"] == 2
    assert os.listdir(tmp_path) == ["m.safetensors"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_permissions(tmp_path):
    fresh, reference = tmp_path / "fresh.safetensors", tmp_path / "reference"
    save(dl.ones(1), fresh)
    reference.write_bytes(b"")
    # a new file gets the permissions any new file gets under the umask (not the private 0o600 of mkstemp)
    assert stat.S_IMODE(fresh.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode)
    for mode in (0o600, 0o444):
        os.chmod(fresh, mode)
        save(dl.zeros(1), fresh)  # overwriting keeps the existing file's permissions, even read-only ones
        assert stat.S_IMODE(fresh.stat().st_mode) == mode


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_save_through_a_symlink_updates_its_target(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "m.safetensors"
    save({"v": 1}, target)
    link = tmp_path / "latest.safetensors"
    link.symlink_to(target)
    save({"v": 2}, link)
    assert link.is_symlink() and load(target) == {"v": 2} and load(link) == {"v": 2}
    assert temp_files(tmp_path) == [] and temp_files(tmp_path / "real") == []
