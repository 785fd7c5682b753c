"""Named exceptions. Messages say what went wrong and what to do next."""
from __future__ import annotations

import re

# C0 and C1 control characters, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str | None) -> str:
    """Text from a sender (a file or sheet name) as it may appear in a log line or a message:
    control characters escaped, so that a name cannot colour a terminal or start a new log line."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", text or "")


class ShegongError(Exception):
    """Base class: the run cannot go on (as opposed to a bad file, which is recorded)."""


class ConfigError(ShegongError):
    """A setting, data file or schema of the project is missing or wrong."""


class KeyMissingError(ConfigError):
    """No key for hashing ID numbers."""


class RunLockedError(ShegongError):
    """Another run holds the warehouse."""


class StorageError(ShegongError):
    """The warehouse folder cannot take a run: full, read-only, or not writable by this user."""


class WarehouseOpenError(ShegongError):
    """The published warehouse is open read-write elsewhere, or changes made that way are not in
    it yet (a .wal beside it): publishing a month would lose them."""


class Interrupted(BaseException):
    """The run was told to stop (SIGINT or SIGTERM). A BaseException, as KeyboardInterrupt is:
    no `except Exception` of the run may carry on past it."""


class FileRejected(Exception):
    """A whole file or sheet cannot be read; recorded with its reason and the run goes on.

    `zh` is the message for the sender, `en` the log line for us.
    """

    def __init__(self, zh: str, en: str):
        super().__init__(en)
        self.zh = zh
        self.en = en

