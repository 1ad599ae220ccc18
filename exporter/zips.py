"""Reading produced zips: their XML members and the errors reading them can raise."""

from __future__ import annotations

import zipfile
import zlib

#: Errors raised while reading a zip or one of its members.
READ_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    RuntimeError,
    NotImplementedError,
)


def xml_members(archive: zipfile.ZipFile) -> list[str]:
    """The XML files of a zip, in the order they were written."""
    return [
        info.filename
        for info in archive.infolist()
        if not info.is_dir() and info.filename.lower().endswith(".xml")
    ]


def describe_read_error(exc: BaseException) -> str:
    """A short reason for a failed read: the OS's words when there are some."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
