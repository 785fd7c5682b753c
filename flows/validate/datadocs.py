"""Data Docs: each run's Great Expectations results as the static HTML site GX itself builds.

Everything lives under one folder, `site_dir` (e.g. data/validation-docs/):

    index.html, validations/, expectations/, static/   the site: open index.html in a browser
    static/vendor/                                     its scripts, styles and fonts (flows/validate/vendor.py)
    .gx-store/validations/<suite>/<run name>/<run time>/<batch>.json   the results the pages are built from
    .gx-store/expectations/<suite>.json                 each form's suite as last published
    .gx-store/rendered/<suite>.sha256                   what the suite's page was last rendered from
    .gx-store/owner-only                                every file of the site was made owner-only

The store sits inside the site on purpose: GX's index builder deletes any page whose source
result it cannot find, so pages and results must be kept, copied or removed together.
"""
from __future__ import annotations

import copy
import datetime as dt
import hashlib
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

from flows.validate import vendor
from flows.validate.suites import _gx

log = logging.getLogger("shegong")

STORE = ".gx-store"
SITE_NAME = "local_site"


@contextmanager
def _quiet(name: str):
    """Hold a GX logger at WARNING for a moment, leaving its level as it was afterwards."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _docs_context(site_dir: Path):
    """A context whose only job is to keep results and build the site, both under site_dir.

    Built directly rather than with gx.get_context(), which would also make it the process-wide
    current context that unbound suites of the validate step resolve through.
    """
    _gx()
    from great_expectations.data_context import EphemeralDataContext
    from great_expectations.data_context.types.base import (
        DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig)

    store = site_dir / STORE
    # Checkpoints and validation definitions are not used: in memory. No temporary docs site.
    defaults = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
    stores = defaults.stores
    for name, sub in ((defaults.expectations_store_name, "expectations"),
                      (defaults.validation_results_store_name, "validations")):
        # Absolute paths: nothing is resolved against the working directory.
        stores[name]["store_backend"] = {"class_name": "TupleFilesystemStoreBackend",
                                         "base_directory": str(store / sub)}
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,  # GX tutorial links mean nothing to the bureau
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site_dir)},
        "site_section_builders": {
            # No profiling pages, so no run name is ever filtered out as "profiling" (GX's default
            # splits runs between the two sections by that word).
            "profiling": "None",
            "validations": {"run_name_filter": {"matches_regex": "."}, "view": _view("PageView")},
            "expectations": {"view": _view("PageView")},
        },
        "site_index_builder": {"module_name": "flows.validate.views", "class_name": "IndexBuilder",
                               "view": _view("IndexPageView")},
    }
    config = DataContextConfig(store_backend_defaults=defaults, stores=stores, data_docs_sites={SITE_NAME: site},
                               analytics_enabled=False, progress_bars=ProgressBarsConfig(globally=False))
    # Every new context logs its (empty) list of data sources at INFO.
    with _quiet("great_expectations.datasource.fluent.config"):
        context = EphemeralDataContext(project_config=config)
    # The page header loads GX's logo from GX's servers with this id appended: a usage beacon.
    # Without an id the pages carry none.
    context.variables.data_context_id = None
    return context


def _view(name: str) -> dict:
    # GX's own page views, with their templates compiled once per process (flows/validate/views.py).
    return {"module_name": "flows.validate.views", "class_name": name}


def _batch_identifier(result) -> str:
    # What GX's own Batch.id would be for a whole-dataframe batch: "<datasource>-<asset>".
    batch = result.meta.get("active_batch_definition") or {}
    parts = [batch.get("datasource_name"), batch.get("data_asset_name") or result.asset_name]
    return "-".join(p for p in parts if p) or result.suite_name


def _suite_of(result):
    """The suite as it ran, rebuilt from the result, for the suite page each result links to."""
    from great_expectations.core import ExpectationSuite
    expectations = [r.expectation_config.to_domain_obj() for r in result.results if r.expectation_config]
    return ExpectationSuite(name=result.suite_name, expectations=expectations)


# A form's suite is the same every month (the month comes in as parameters): its page is
# rendered again only when the suite, or what renders and localises pages, is not what it was
# when the page was last written (6 of a month's 12 pages, half the site's time a month). The
# mark of each page: the suite as the store keeps it, GX's release, our views and this module,
# and the pinned assets the page links.
_MARKS = "rendered"  # under the store: <suite>.sha256
_PAGE_CODE = (Path(__file__), Path(__file__).with_name("views.py"))


def _suite_mark(context, suite) -> str:
    import great_expectations
    h = hashlib.sha256(great_expectations.__version__.encode() + vendor.lock_digest().encode())
    for path in _PAGE_CODE:
        h.update(path.read_bytes())
    h.update(context.expectations_store.serialize(suite).encode())
    return h.hexdigest()


def _suite_mark_file(site_dir: Path, name: str) -> Path:
    return site_dir / STORE / _MARKS / f"{name}.sha256"


def _suite_page_stands(site_dir: Path, name: str, mark: str) -> bool:
    """Whether the suite's page and stored suite are there, written from this very `mark`."""
    marked = _suite_mark_file(site_dir, name)
    return (marked.is_file() and marked.read_text(encoding="utf-8") == mark
            and (site_dir / "expectations" / f"{name}.html").is_file()
            and (site_dir / STORE / "expectations" / f"{name}.json").is_file())


def publish_results(results: list, site_dir: Path, run_name: str, build_index: bool = True) -> Path:
    """Write the given GX validation results (ExpectationSuiteValidationResult objects, one per form,
    as returned by batch.validate) into the Data Docs site at site_dir, keeping earlier runs' pages,
    and return the path of the site's index.html. `build_index` False: the run's pages only, the
    index left as it is until a later call builds it (it lists every stored result then): the
    months of a backfill before its last.

    `None` entries (a form with no rows, so no validation) are skipped. The results themselves are
    not changed: the stored copies carry `run_name` and the publishing time as their run id.
    """
    if not run_name or not run_name.strip() or run_name.strip(".") == "" or any(c in run_name for c in "/\\"):
        # The run name becomes a folder name of the store and the site.
        raise ValueError(f"run name {run_name!r} cannot name a folder; use e.g. '2024-03 <run id>'")
    site_dir = Path(site_dir).resolve()
    # The pages show failing values and unit names: for the owner only, like the warehouse and
    # the reports. GX creates files with the process's umask, so it is narrowed while it writes.
    old_umask = os.umask(0o077)
    try:
        return _publish(results, site_dir, run_name, build_index)
    finally:
        os.umask(old_umask)
        _site_owner_only(site_dir)


OWNER_ONLY = "owner-only"  # under the store: the site's files were all made owner-only once


def _site_owner_only(site_dir: Path) -> None:
    """Every file of the site 0600 and every folder 0700: the whole site once (those of runs
    before this rule included), then the copies of the pinned assets only, which keep their
    installed modes. All else a run adds is written under the umask above. (Walking the whole
    site every run cost a month about 1.5 ms more for each month of history: 0.064 s at month 41.)"""
    if not site_dir.is_dir():
        return
    marked = site_dir / STORE / OWNER_ONLY
    if marked.is_file():
        _owner_only(site_dir.joinpath(*vendor.SITE_FOLDER))
        return
    _owner_only(site_dir)
    if marked.parent.is_dir():
        marked.touch(mode=0o600)


def _owner_only(folder: Path) -> None:
    """Files 0600 and folders 0700 under `folder`, and `folder` itself."""
    if not folder.is_dir():
        return
    folder.chmod(0o700)
    for path in folder.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o700 if path.is_dir() else 0o600)


def _offline(site_dir: Path, since: float, keys: list, build_index: bool) -> None:
    """The pages GX just wrote (every page, the first time) pointed at the site's own copies of
    their scripts, styles and fonts instead of public CDNs."""
    first = not site_dir.joinpath(*vendor.SITE_FOLDER).is_dir()
    if not vendor.copy_into(site_dir):
        log.warning("Data Docs: the pinned scripts and styles are not installed (run `make install`); "
                    "the pages open unstyled")
    pages = None if first else _pages_of(site_dir, keys, build_index)
    for page in site_dir.rglob("*.html") if pages is None else pages:
        # A second of slack: some file systems keep modification times in whole seconds.
        if first or page.stat().st_mtime >= since - 1:
            text = page.read_text(encoding="utf-8")
            local = vendor.localise(page, site_dir, text)
            if local != text:
                page.write_text(local, encoding="utf-8")


def _pages_of(site_dir: Path, keys: list, build_index: bool) -> list[Path] | None:
    """The pages GX renders for `keys` (and the index), where GX 1.24 puts them: one per key,
    named by the key's parts. None when one of them is not there (another layout): every page of
    the site is looked at then, as the first run does. (Looking at every page cost a month about
    0.7 ms more for each month of history.) `keys` None: every page was rendered."""
    if keys is None:
        return None
    from great_expectations.data_context.types.resource_identifiers import ValidationResultIdentifier
    pages = [site_dir.joinpath("validations" if isinstance(key, ValidationResultIdentifier) else "expectations",
                               *key.to_tuple()[:-1], f"{key.to_tuple()[-1]}.html") for key in keys]
    if build_index:
        pages.append(site_dir / "index.html")
    return pages if all(page.is_file() for page in pages) else None


def _publish(results: list, site_dir: Path, run_name: str, build_index: bool = True) -> Path:
    _gx()
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier, ValidationResultIdentifier)

    context = _docs_context(site_dir)
    run_id = RunIdentifier(run_name=run_name, run_time=dt.datetime.now(dt.timezone.utc))
    keys, suites, taken = [], {}, set()
    for result in results:
        if result is None:
            continue
        if not isinstance(result, ExpectationSuiteValidationResult):
            raise TypeError(f"expected an ExpectationSuiteValidationResult, got {type(result).__name__}")
        # batch.validate leaves the run id out; the pages read the run name from meta.
        stored = copy.copy(result)
        stored.meta = {**result.meta, "run_id": run_id, "validation_time": run_id.run_time}
        if result.asset_name and isinstance(result.meta.get("batch_spec"), dict):
            # The page header reads the asset from the batch spec, which fluent batches leave out.
            stored.meta["batch_spec"] = {"data_asset_name": result.asset_name, **result.meta["batch_spec"]}
        suite_key = ExpectationSuiteIdentifier(name=result.suite_name)
        batch, n = _batch_identifier(result), 1
        while (result.suite_name, batch) in taken:  # two results of one suite in a run: keep both
            n += 1
            batch = f"{_batch_identifier(result)}-{n}"
        taken.add((result.suite_name, batch))
        key = ValidationResultIdentifier(suite_key, run_id, batch)
        context.validation_results_store.set(key, stored)
        suites[result.suite_name] = (suite_key, result)
        keys.append(key)
    rendered = []
    for suite_key, result in suites.values():
        if not build_index and (site_dir / "expectations" / f"{suite_key.name}.html").is_file():
            # A backfill's month before its last: the suite's page is rendered again, if need be, by
            # the month that builds the index. (The page shows the suite as the last month ran it,
            # rebuilt from the results: the month's own values in it, its last day in the date
            # checks, make it a new suite every month, so each month's page replaced the last.)
            continue
        suite = _suite_of(result)
        mark = _suite_mark(context, suite)
        if _suite_page_stands(site_dir, suite_key.name, mark):
            continue  # the same suite, page and pages' code as the last run that rendered it
        # Straight to the store: the suite factory's add_or_update matches every expectation
        # against the stored ones to keep their ids (slow for suites with long value sets),
        # and the pages need no ids.
        context.expectations_store.add_or_update(suite_key, suite)
        keys.append(suite_key)
        rendered.append((suite_key.name, mark))
    index = site_dir / "index.html"
    if keys or (build_index and not index.exists()):
        # Only this run's pages are rendered; the index is rebuilt from every stored result.
        # (An empty list would mean "render every page again", hence the guard.)
        since = time.time()
        context.build_data_docs(site_names=[SITE_NAME], resource_identifiers=keys or None, build_index=build_index)
        _offline(site_dir, since, keys or None, build_index)
        for name, mark in rendered:  # only once the page is written: a run stopped before renders it again
            marked = _suite_mark_file(site_dir, name)
            marked.parent.mkdir(parents=True, exist_ok=True)
            marked.write_text(mark, encoding="utf-8")
    log.debug("data docs: %d results of run %s in %s", len(keys) - len(rendered), run_name, index)
    return index
