"""Personal data: ID numbers become a keyed one-way hash the moment they are read.

The key never lives in the repository: it comes from SHEGONG_ID_KEY (the key itself) or from
the file named by SHEGONG_ID_KEY_FILE (default `.secrets/id-hash.key`, git-ignored). Without the
key nobody can test a guessed ID number against the warehouse, which a plain hash would allow
(ID numbers are few enough to enumerate).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from flows.errors import KeyMissingError

DEFAULT_KEY_FILE = Path(".secrets/id-hash.key")


def key_file() -> Path:
    return Path(os.environ.get("SHEGONG_ID_KEY_FILE", DEFAULT_KEY_FILE))


def load_key() -> bytes:
    env = os.environ.get("SHEGONG_ID_KEY")
    if env:
        if len(env) < 32:
            raise KeyMissingError("SHEGONG_ID_KEY is shorter than 32 characters; use `shegong keygen` "
                                  "to make a strong key")
        return env.encode()
    path = key_file()
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        raise KeyMissingError(f"no key for hashing ID numbers: {path} does not exist and SHEGONG_ID_KEY "
                              f"is not set. Create one with `shegong keygen` (and keep it: the same "
                              f"person hashes the same only under the same key).") from None
    if len(key) < 32:
        raise KeyMissingError(f"the key in {path} is shorter than 32 characters; make a new one with "
                              f"`shegong keygen --force` and rerun every month")
    return key


def make_key_file(path: Path | None = None, force: bool = False) -> tuple[Path, bool]:
    """Write a new random key readable by its owner only; (path, created?)."""
    path = path or key_file()
    if path.exists() and not force:
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    return path, True


def person_key(key: bytes, id_number: str) -> str:
    """HMAC-SHA256 of the normalised ID number, 128 bits in hex: one person, one key."""
    return hmac.new(key, id_number.encode(), hashlib.sha256).hexdigest()[:32]


def key_id(key: bytes) -> str:
    """A fingerprint of the key (not the key): rows hashed under another key cannot be reused."""
    return hmac.new(key, b"shegong key id", hashlib.sha256).hexdigest()[:16]
