"""Named exceptions. Messages say what went wrong and what to do next."""


class ShegongError(Exception):
    """Base class: the run cannot go on (as opposed to a bad file, which is recorded)."""


class ConfigError(ShegongError):
    """A setting, data file or schema of the project is missing or wrong."""


class KeyMissingError(ConfigError):
    """No key for hashing ID numbers."""


class RunLockedError(ShegongError):
    """Another run holds the warehouse."""


class FileRejected(Exception):
    """A whole file or sheet cannot be read; recorded with its reason and the run goes on.

    `zh` is the message for the sender, `en` the log line for us.
    """

    def __init__(self, zh: str, en: str):
        super().__init__(en)
        self.zh = zh
        self.en = en
