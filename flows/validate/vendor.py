"""The Data Docs site's third-party scripts, styles and fonts, shipped with the project.

Great Expectations writes pages that load Bootstrap, jQuery, bootstrap-table, Font Awesome, Vega
and more from seven public CDNs; where the bureau works there is no internet, so they would open
unstyled and unsortable. The same files are npm packages: datadocs-assets.toml pins each by
version and by the registry's SHA-512 of its tarball, `make install` fetches them into the
environment (`python -m flows.validate.vendor`), and every run copies them into the site and points its
pages at the copies by relative paths (flows/validate/datadocs.py), so no page requests anything.

Fetched at install rather than committed: the same trust as the Python packages (a registry and
a pinned hash, checked before anything is unpacked), and no minified third-party files in the
repository's history.
"""
from __future__ import annotations

import base64
import fnmatch
import hashlib
import io
import os
import posixpath
import re
import shutil
import sys
import tarfile
import tomllib
import urllib.request
from pathlib import Path

from flows.config import PROJECT
from flows.errors import ConfigError

LOCK = PROJECT / "datadocs-assets.toml"
# Beside the Python packages of the environment they were installed with.
ASSETS = Path(sys.prefix) / "share" / "shegong" / "datadocs"
REGISTRY = os.environ.get("SHEGONG_NPM_REGISTRY", "https://registry.npmjs.org")
SITE_FOLDER = ("static", "vendor")  # where a site keeps its copies
STAMP = ".lock-sha256"  # the lock the copies were made from
# GX's own images, which its pages load from its servers (the page header's logo, a usage beacon).
_GX_IMAGES = re.compile(r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/([\w.-]+)(\?[^\"')\s]*)?")
# Subresource integrity and CORS make a browser refuse a file:// script: the copies are checked here.
# Tried only where a run of blanks begins: from inside each run as well, a result page's
# indentation made this a third of the time the page took to localise.
_SRI = re.compile(r'(?<!\s)\s+(?:integrity|crossorigin)="[^"]*"')
# GX's own files as a page names them: its favicon path counts one folder too few on result pages.
_STATIC = re.compile(r'(?<=")(?:\./|(?:\.\./)+)static/([^"]+)(?=")')


def lock() -> dict:
    return tomllib.loads(LOCK.read_text(encoding="utf-8"))


def lock_digest() -> str:
    return hashlib.sha256(LOCK.read_bytes()).hexdigest()


def installed(folder: Path = ASSETS) -> bool:
    stamp = folder / STAMP
    return stamp.is_file() and stamp.read_text().strip() == lock_digest()


def fetch(folder: Path = ASSETS) -> Path:
    """Every pinned package's files into `folder`, as <name>@<version>/<path>; nothing when they
    are there from the same lock. A tarball whose SHA-512 differs from the pin is refused."""
    if installed(folder):
        return folder
    building = folder.with_name(folder.name + ".partial")
    shutil.rmtree(building, ignore_errors=True)
    for package in lock()["package"]:
        name, version = package["name"], package["version"]
        url = f"{REGISTRY}/{name}/-/{name.split('/')[-1]}-{version}.tgz"
        try:
            with urllib.request.urlopen(url, timeout=120) as response:
                data = response.read()
        except OSError as exc:
            raise ConfigError(f"cannot fetch {url}: {exc}; the validation site's scripts and styles come from "
                              f"the npm registry (SHEGONG_NPM_REGISTRY names a mirror)") from exc
        algorithm, _, expected = package["integrity"].partition("-")
        if base64.b64encode(hashlib.new(algorithm, data).digest()).decode() != expected:
            raise ConfigError(f"{url} does not match its pinned {algorithm} in {LOCK.name}; not installed")
        _unpack(data, package["files"], building / f"{name}@{version}")
    (building / STAMP).write_text(lock_digest() + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    building.rename(folder)
    return folder


def _unpack(data: bytes, patterns: list[str], into: Path) -> None:
    found = set()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            path = posixpath.normpath(member.name).split("/", 1)[-1]  # below the tarball's package/
            if not member.isfile() or path.startswith("..") or posixpath.isabs(path):
                continue
            for pattern in patterns:
                if fnmatch.fnmatchcase(path, pattern):
                    found.add(pattern)
                    target = into / path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(tar.extractfile(member).read())
    if missing := set(patterns) - found:
        raise ConfigError(f"{into.name} has no {', '.join(sorted(missing))}: fix the files of {LOCK.name}")


def copy_into(site: Path) -> bool:
    """The assets into the site's static/vendor/ (again only if the lock changed); True when the
    copies are there. Without them (no `make install`) the pages still ask for nothing: they open
    unstyled."""
    target = site.joinpath(*SITE_FOLDER)
    if installed(target):
        return True
    if not installed():
        return False
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(ASSETS, target)
    return True


def localise(page: Path, site: Path, text: str) -> str:
    """A page of the site with every CDN address replaced by the path of the site's own copy,
    relative to the page, so that it opens the same from any folder, with no network."""
    def relative(target: Path) -> str:
        return Path(os.path.relpath(target, page.parent)).as_posix()

    vendor = site.joinpath(*SITE_FOLDER)
    for url, local in lock()["urls"].items():
        text = text.replace(url, relative(vendor / local))

    def image(m: re.Match) -> str:
        local = site / "static" / "images" / m.group(1)
        # The dark theme's logo is not among GX's files: the light one stands in.
        return relative(local if local.exists() else site / "static" / "images" / "logo-long.png")

    text = _STATIC.sub(lambda m: relative(site / "static" / m.group(1)), text)
    return _SRI.sub("", _GX_IMAGES.sub(image, text))


if __name__ == "__main__":  # python -m flows.validate.vendor: what `make install` runs
    try:
        print(f"Data Docs assets: {fetch()}")
    except ConfigError as exc:
        sys.exit(f"flows.validate.vendor: {exc}")
