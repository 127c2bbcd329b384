"""A small real file system for disk-full tests: a tmpfs of a few MiB mounted on a temporary
folder (or, where tmpfs cannot be mounted, an ext4 image on a loop device), which a filler
file fills to the last byte and which is unmounted afterwards.

Mounting needs root; ``SmallDisk.mount`` raises ``Unavailable`` with the reason otherwise, and
the ``disk`` fixture turns that into a skip that says why. A test module imports ``disk`` and
``database_url`` (which replaces the shared fixture: the test's SQLite file on the small disk)
to use them.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

_STEPS = (1 << 20, 4096, 1)  # fill in big pieces, then down to the very last byte


class Unavailable(Exception):
    """No small file system could be mounted here (not root, no tmpfs, no loop device)."""


class SmallDisk:
    """``size_mib`` of real disk at ``path``; ``fill()`` takes every free byte, ``free()``
    gives it back."""

    def __init__(self, path: Path, size_mib: int):
        self.path, self.size_mib = Path(path), size_mib
        self.filler = self.path / "filler"
        self._image: Path | None = None

    def mount(self) -> SmallDisk:
        self.path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            raise Unavailable("mounting a small file system needs root (this runs as uid "
                              f"{os.geteuid()})")
        tmpfs = _run("mount", "-t", "tmpfs", "-o", f"size={self.size_mib}m", "tmpfs",
                     str(self.path))
        if tmpfs is None:
            return self
        self._image = self.path.with_name(self.path.name + ".img")
        with open(self._image, "wb") as image:
            image.truncate(self.size_mib << 20)
        problems = [f"tmpfs: {tmpfs}"]
        for step in (("mkfs.ext4", "-q", "-F", str(self._image)),
                     ("mount", "-o", "loop", str(self._image), str(self.path))):
            failed = _run(*step)
            if failed is not None:
                problems.append(f"{step[0]}: {failed}")
                self._image.unlink(missing_ok=True)
                raise Unavailable("could not mount a small file system: " + "; ".join(problems))
        return self

    def fill(self) -> int:
        """Write the filler until the file system refuses another byte; returns its size."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for step in _STEPS:
                piece = b"\0" * step
                while True:
                    try:
                        if os.write(fd, piece) < step:
                            break
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def available(self) -> int:
        return shutil.disk_usage(self.path).free

    def unmount(self) -> None:
        if _run("umount", str(self.path)) is not None:
            _run("umount", "-l", str(self.path))  # something still holds a file open
        if self._image is not None:
            self._image.unlink(missing_ok=True)


def _run(*command: str) -> str | None:
    """Run ``command``; None when it worked, else what it said."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except OSError as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    return (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"


@pytest.fixture
def disk(tmp_path):
    """A 48 MiB file system of its own, unmounted after the test."""
    small = SmallDisk(tmp_path / "disk", 48)
    try:
        small.mount()
    except Unavailable as exc:
        pytest.skip(str(exc))
    yield small
    small.unmount()


@pytest.fixture
def database_url(backend, disk, sqlite_template) -> str:
    """The test's SQLite database, on the small disk (SQLite only)."""
    assert backend == "sqlite", "a small disk holds a SQLite file"
    path = disk.path / "mailer.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"
