"""Data Docs: results validated in the pipeline's ephemeral context, published as GX's HTML site."""
from __future__ import annotations

import logging
import json
import os
import re
import urllib.parse
import warnings
from pathlib import Path

import pandas as pd
import pytest

from flows.validate import suites
from flows.validate.datadocs import STORE, publish_results

SUITE = "datadocs_demo"
RESULT_FORMAT = {"result_format": "COMPLETE", "unexpected_index_column_names": ["_row_id"],
                 "return_unexpected_index_query": False}


@pytest.fixture(scope="module")
def result():
    """One suite, two expectations, one failing on `headcount`, run as flows/validate/suites.py runs it."""
    gx = suites._gx()
    ctx = suites.context()
    suite = gx.ExpectationSuite(name=SUITE)
    suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column="unit_code"))
    suite.add_expectation(gx.expectations.ExpectColumnValuesToBeBetween(column="headcount", min_value=0))
    ds = ctx.data_sources.get("months")
    # Its own asset: the context is the process's one, shared with the validate tests.
    asset = ds.add_dataframe_asset(name=SUITE)
    batch_def = asset.add_batch_definition_whole_dataframe("month")
    frame = pd.DataFrame({"_row_id": [0, 1, 2], "unit_code": ["510402000000", "510403000000", "510411000000"],
                          "headcount": [3, -2, 5]})
    res = batch_def.get_batch(batch_parameters={"dataframe": frame}).validate(suite, result_format=RESULT_FORMAT)
    assert not res.success
    return res


@pytest.fixture(scope="module")
def grown(result):
    """The same suite (by name) with a third expectation, on `unit_name`, run the same way."""
    gx = suites._gx()
    suite = gx.ExpectationSuite(name=SUITE)
    suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column="unit_code"))
    suite.add_expectation(gx.expectations.ExpectColumnValuesToBeBetween(column="headcount", min_value=0))
    suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column="unit_name"))
    asset = suites.context().data_sources.get("months").add_dataframe_asset(name=f"{SUITE}_grown")
    frame = pd.DataFrame({"_row_id": [0, 1], "unit_code": ["510402000000", "510403000000"], "headcount": [3, 4],
                          "unit_name": ["东区", None]})
    batch = asset.add_batch_definition_whole_dataframe("month").get_batch(batch_parameters={"dataframe": frame})
    return batch.validate(suite, result_format=RESULT_FORMAT)


def _pages(site: Path) -> list[Path]:
    return sorted((site / "validations").rglob("*.html"))


def test_publish_keeps_every_run(result, tmp_path, monkeypatch, caplog):
    site = tmp_path / "validation-docs"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    gx_home = Path.home() / ".great_expectations"
    had_gx_home = gx_home.exists()
    runs = ["2024-03 1f0c9a52-0d1e-4c55-9a43-2f9a3c1d7e01", "2024-04 7b2d4e60-5a8f-4f0e-8c1b-93e6d2a4b5c7"]

    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Each call builds its own context from the files: the second one sees the first run
        # only through site_dir, as a later process would.
        index = publish_results([result], site, runs[0])
        assert publish_results([result, None], site, runs[1]) == index

    # Great Expectations and this module say nothing on a normal run (the Prefect test server's
    # own HTTP chatter, from other threads, is not ours to judge here).
    ours = [r for r in caplog.records if r.name.startswith(("great_expectations", "flows", "shegong"))]
    assert [r.getMessage() for r in ours if r.levelno >= logging.INFO] == []
    assert [str(w.message) for w in caught] == []
    assert list(cwd.iterdir()) == []
    assert gx_home.exists() == had_gx_home
    assert "run_id" not in result.meta  # the caller's result is left as it was

    assert index == site / "index.html" and index.is_file()
    html = index.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html>")
    for run in runs:
        assert run in html

    pages = _pages(site)
    assert len(pages) == 2
    for run, page in zip(runs, sorted(pages, key=lambda p: runs.index(p.relative_to(site).parts[2]))):
        assert page.relative_to(site).parts[:3] == ("validations", SUITE, run)
        assert urllib.parse.quote(page.relative_to(site).as_posix()) in html  # linked from the index
        text = page.read_text(encoding="utf-8")
        assert SUITE in text and run in text
        assert "headcount" in text and "Failed" in text
    # The suite page each result links to, and the JSON results the site is built from.
    assert (site / "expectations" / f"{SUITE}.html").is_file()
    assert len(list((site / STORE / "validations").rglob("*.json"))) == 2


def test_the_index_waits_for_the_run_that_builds_it_and_then_lists_every_run(result, tmp_path):
    """A backfill's months before its last add their pages only; the last month's index lists
    every run, as if each month had built it."""
    site = tmp_path / "docs"
    runs = ["2024-01 a", "2024-02 b", "2024-03 c"]
    index = publish_results([result], site, runs[0])
    first = index.read_text(encoding="utf-8")
    publish_results([result], site, runs[1], build_index=False)
    assert index.read_text(encoding="utf-8") == first and len(_pages(site)) == 2
    publish_results([result], site, runs[2])
    html = index.read_text(encoding="utf-8")
    assert all(run in html for run in runs)
    assert all(urllib.parse.quote(page.relative_to(site).as_posix()) in html for page in _pages(site))


def test_a_backfill_renders_a_changed_suite_page_with_its_last_month_only(result, grown, tmp_path):
    """A month before a backfill's last leaves a standing suite page as it is, even for a changed
    suite (each month's suite carries the month's own values); the month that builds the index
    renders it from its own suite. A site with no page yet gets one from the first month."""
    site = tmp_path / "docs"
    page = site / "expectations" / f"{SUITE}.html"
    publish_results([result], site, "2024-01 a", build_index=False)
    assert page.is_file() and "unit_name" not in page.read_text(encoding="utf-8")
    os.utime(page, ns=(1, 1))
    publish_results([grown], site, "2024-02 b", build_index=False)
    assert page.stat().st_mtime_ns == 1 and len(_pages(site)) == 2
    publish_results([grown], site, "2024-03 c")
    assert "unit_name" in page.read_text(encoding="utf-8") and len(_pages(site)) == 3


def test_a_page_survives_a_later_run_and_shows_the_failure(result, tmp_path):
    site = tmp_path / "docs"
    publish_results([result], site, "2024-03 a")
    first = _pages(site)
    publish_results([result], site, "2024-04 b")
    assert set(first) < set(_pages(site))
    text = re.sub(r"<[^>]+>", " ", first[0].read_text(encoding="utf-8"))
    # The failing row's value and its _row_id (the frames carry no personal data).
    assert re.search(r"-2\b", text) and "_row_id" in text


@pytest.mark.parametrize("bad", ["", "2024-03/x", "..", "a\\b"])
def test_a_run_name_must_name_a_folder(result, tmp_path, bad):
    with pytest.raises(ValueError):
        publish_results([result], tmp_path / "docs", bad)
    assert not (tmp_path / "docs").exists()


# -- the site of a run, offline ---------------------------------------------------------------------
ASSET = re.compile(r"""<(?:script|img)\b[^>]*\bsrc\s*=\s*["']?\s*(https?:)?//"""
                   r"""|<link\b[^>]*\bhref\s*=\s*["']?\s*(https?:)?//"""
                   r"""|url\(\s*["']?\s*(https?:)?//|@import\s+["']?\s*(https?:)?//""", re.I)


def _site(month_db) -> Path:
    site = month_db.parent / "validation"
    assert len(_pages(site)) == 6, "the fixture month's run publishes a page per form"
    return site


def test_no_page_or_stylesheet_of_a_runs_site_links_an_asset_outside_it(month_db):
    site = _site(month_db)
    pages = sorted(site.rglob("*.html"))
    assert len(pages) == 6 + 6 + 1  # results, suites, index
    # The pages and the stylesheets they link (GX also copies its style templates into static/styles/,
    # which no page links: they are inlined when a page is written, and localised with it).
    for path in pages + sorted((site / "static" / "vendor").rglob("*.css")):
        text = path.read_text(encoding="utf-8")
        assert not ASSET.search(text), f"{path.relative_to(site)}: {ASSET.search(text).group(0)}"
    for page in pages:
        # A browser refuses a file:// script with an integrity or CORS attribute: none is left.
        assert not re.search(r"\b(integrity|crossorigin)=", page.read_text(encoding="utf-8")), page.name
        # Every script, stylesheet and image a page names is a file of the site.
        for ref in re.findall(r"""<(?:script|img)\b[^>]*\bsrc="([^"]+)"|<link\b[^>]*\bhref="([^"]+)\"""",
                              page.read_text(encoding="utf-8")):
            target = (page.parent / (ref[0] or ref[1]).split("?")[0]).resolve()
            assert target.is_file() and target.is_relative_to(site.resolve()), f"{page.name}: {ref}"


def test_every_later_runs_pages_are_offline_and_owner_only_without_walking_the_site(result, grown, tmp_path,
                                                                                    monkeypatch):
    """A run after the first localises the pages it wrote (its results', a changed suite's, the
    index), found where GX puts them, and makes owner-only what it wrote: a site made owner-only
    once (its mark in the store) is not walked again."""
    import stat
    site = tmp_path / "docs"
    publish_results([result], site, "2024-01 a")
    assert (site / STORE / "owner-only").is_file()
    old = _pages(site)[0]
    old.chmod(0o644)  # not this run's: left as it is
    from flows.validate import datadocs
    found = []
    monkeypatch.setattr(datadocs, "_pages_of",
                        lambda *a, _real=datadocs._pages_of: found.append(_real(*a)) or found[-1])
    publish_results([result], site, "2024-02 b", build_index=False)
    publish_results([grown], site, "2024-03 c")
    pages = sorted(site.rglob("*.html"))
    assert len(pages) == 3 + 1 + 1  # results, the suite, the index
    for page in pages:
        assert not ASSET.search(page.read_text(encoding="utf-8")), page.relative_to(site)
    assert "unit_name" in (site / "expectations" / f"{SUITE}.html").read_text(encoding="utf-8")
    # Found where GX put them: its result page (b); its result page, the suite's and the index (c).
    assert [[p.relative_to(site).parts[0] for p in pages] for pages in found] == [
        ["validations"], ["validations", "expectations", "index.html"]]
    assert stat.S_IMODE(old.stat().st_mode) == 0o644
    wrong = [p for p in site.rglob("*")
             if p != old and stat.S_IMODE(p.stat().st_mode) != (0o700 if p.is_dir() else 0o600)]
    assert wrong == []
    (site / STORE / "owner-only").unlink()  # a site from before the mark: made owner-only whole
    publish_results([result], site, "2024-04 d", build_index=False)
    assert stat.S_IMODE(old.stat().st_mode) == 0o600


def test_integrity_and_cors_attributes_go_with_the_blanks_before_them():
    from flows.validate.vendor import _SRI
    page = ('<link href="a.css" integrity="sha384-x"   crossorigin="anonymous" rel="stylesheet">\n'
            '        <script src="b.js"\n          integrity="sha384-y"></script>   <p title="integrity"> x</p>')
    assert _SRI.sub("", page) == ('<link href="a.css" rel="stylesheet">\n'
                                  '        <script src="b.js"></script>   <p title="integrity"> x</p>')


def test_the_site_opens_styled_and_sortable_with_every_request_outside_it_blocked(month_db, tmp_path):
    from PIL import Image
    from playwright.sync_api import sync_playwright
    from test_webpage import CHROMIUM, CHROMIUM_ARGS

    site = _site(month_db)
    inside = site.resolve().as_uri() + "/"
    blocked, problems = [], []

    def route(r):
        if r.request.url.startswith(inside):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
            context.route("**/*", route)
            page = context.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            for target in (site / "index.html", _pages(site)[0]):
                page.goto(target.resolve().as_uri())
                page.wait_for_load_state("load")
                # Bootstrap's styles: a flex navbar stuck to the top, its body font.
                navbar = page.evaluate("""() => { const s = getComputedStyle(document.querySelector('nav.navbar'));
                                                  return [s.display, s.position]; }""")
                assert navbar == ["flex", "sticky"]
                assert "apple-system" in page.evaluate("getComputedStyle(document.body).fontFamily")
                # jQuery and bootstrap-table ran: the tables are wrapped, with their sort controls.
                assert page.locator("div.bootstrap-table").count() >= 1
                assert page.locator("th .sortable").count() >= 1
                shot = tmp_path / f"{target.stem}.png"
                page.screenshot(path=str(shot), full_page=True)
                assert Image.open(shot).convert("L").getextrema()[0] < 100  # drawn, not a blank page
            # The result page's icons are Font Awesome's, from the site's own font file.
            assert page.evaluate("""async () => { await document.fonts.ready;
                return [...document.fonts].some(f => f.family.includes('Font Awesome') && f.status === 'loaded'); }""")
        finally:
            browser.close()
    assert blocked == [], f"the site asked for {blocked}"
    assert problems == []


def test_assets_are_installed_only_when_their_tarball_matches_its_pin(tmp_path, monkeypatch):
    """flows.validate.vendor against a registry on this machine serving one package: a wrong SHA-512 pin
    installs nothing; the right one unpacks just the files named."""
    import base64
    import functools
    import hashlib
    import http.server
    import io
    import tarfile
    import threading

    from flows.validate import vendor
    from flows.errors import ConfigError

    css = b"body { margin: 0 }"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("package/dist/x.css", css), ("package/README.md", b"not wanted")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tgz = buf.getvalue()
    (tmp_path / "registry" / "demo" / "-").mkdir(parents=True)
    (tmp_path / "registry" / "demo" / "-" / "demo-1.0.0.tgz").write_bytes(tgz)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "registry"))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(vendor, "REGISTRY", f"http://127.0.0.1:{server.server_port}")
        lock = tmp_path / "assets.toml"
        monkeypatch.setattr(vendor, "LOCK", lock)
        pin = lambda data: "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        entry = '[[package]]\nname = "demo"\nversion = "1.0.0"\nintegrity = "{}"\nfiles = ["dist/x.css"]\n[urls]\n'
        lock.write_text(entry.format(pin(tgz + b"tampered")))
        with pytest.raises(ConfigError, match="demo-1.0.0.tgz does not match its pinned sha512"):
            vendor.fetch(tmp_path / "assets")
        assert not (tmp_path / "assets").exists()
        lock.write_text(entry.format(pin(tgz)))
        assert vendor.fetch(tmp_path / "assets") == tmp_path / "assets" and vendor.installed(tmp_path / "assets")
        assert sorted(p.relative_to(tmp_path / "assets").as_posix() for p in (tmp_path / "assets").rglob("*")
                      if p.is_file()) == [".lock-sha256", "demo@1.0.0/dist/x.css"]
        assert (tmp_path / "assets" / "demo@1.0.0" / "dist" / "x.css").read_bytes() == css
    finally:
        server.shutdown()


def test_the_index_of_remembered_results_is_the_index_of_every_result_read_again(tmp_path):
    """The index builder remembers what it read of each stored result (flows/validate/views.py),
    in its process and, for the next process, in the site's summaries: a site built either way
    lists every run as one whose index read every stored result again, success and failure each
    where it was. A result file changed on disk is read again."""
    from flows.validate import views
    gx = suites._gx()
    suite = gx.ExpectationSuite(name="datadocs_index")
    suite.add_expectation(gx.expectations.ExpectColumnValuesToBeBetween(column="headcount", min_value=0))
    batch_def = suites.context().data_sources.get("months").add_dataframe_asset(name="datadocs_index") \
        .add_batch_definition_whole_dataframe("month")
    good, bad = (batch_def.get_batch(batch_parameters={"dataframe": pd.DataFrame({"headcount": [n]})})
                 .validate(suite, result_format="BASIC") for n in (3, -3))

    def shown(index: Path) -> str:
        # Run times differ between the sites; nothing else may.
        return re.sub(r"'_run_time_sort': [\d.]+|\d{8}T\d{6}\.\d+Z|\d{4}-\d\d-\d\d[ T][\d:.]+", "T", index.read_text())

    def site(root: Path, forget: str) -> str:
        for month, res in zip(("01", "02", "03", "04"), (good, bad, good, bad)):
            if forget:  # a new process: nothing remembered in it
                views._SEEN.clear()
            if forget == "all":
                (root / ".gx-store" / views.SUMMARIES).unlink(missing_ok=True)
            index = publish_results([res], root, f"2024-{month} run")
        return shown(index)

    every_time = site(tmp_path / "read", forget="all")
    remembered = site(tmp_path / "remembered", forget="")
    assert len([k for k in views._SEEN if k[0].startswith(str(tmp_path / "remembered"))]) == 4
    summarised = site(tmp_path / "summarised", forget="process")
    assert remembered == every_time and summarised == every_time
    assert [m for m in re.findall(r"'_validation_success_text': '(\w+)'", remembered)] == \
        ["Failed", "Success", "Failed", "Success"]  # newest first
    summaries = json.loads((tmp_path / "summarised" / ".gx-store" / views.SUMMARIES).read_text())
    assert sorted(e["success"] for e in summaries.values()) == [False, False, True, True]
    # A result file changed on disk (its size and time differ): the index reads it again.
    [first] = (tmp_path / "summarised" / ".gx-store" / "validations").rglob("*/2024-01 run/*/*.json")
    stored = json.loads(first.read_text())
    assert stored["success"] is True
    first.write_text(json.dumps({**stored, "success": False}, indent=1))
    views._SEEN.clear()
    index = publish_results([good], tmp_path / "summarised", "2024-05 run")
    assert re.findall(r"'_validation_success_text': '(\w+)'", shown(index)) == \
        ["Success", "Failed", "Success", "Failed", "Failed"]


def test_a_suite_page_is_written_again_only_when_the_suite_or_what_renders_it_changes(result, grown, tmp_path,
                                                                                      monkeypatch):
    """A form's suite is the same every month: its page stands until the suite, GX, our views or
    the pinned assets change, or the page is gone. Each run's result page is written all the same."""
    from flows.validate import vendor
    site = tmp_path / "docs"
    page = site / "expectations" / f"{SUITE}.html"
    publish_results([result], site, "2024-01 a")
    assert page.is_file() and "unit_name" not in page.read_text(encoding="utf-8")

    def untouched_by(run: str, res) -> bool:
        os.utime(page, ns=(1, 1))
        publish_results([res], site, run)
        assert any(p.relative_to(site).parts[2] == run for p in _pages(site))  # its result page, always
        assert run in (site / "index.html").read_text(encoding="utf-8")
        return page.stat().st_mtime_ns == 1

    assert untouched_by("2024-02 b", result)
    assert not untouched_by("2024-03 c", grown)  # a suite with another expectation
    assert "unit_name" in page.read_text(encoding="utf-8")
    assert untouched_by("2024-04 d", grown)
    monkeypatch.setattr(vendor, "lock_digest", lambda: "another pin")  # what the page links changed
    assert not untouched_by("2024-05 e", grown)
    assert untouched_by("2024-06 f", grown)
    page.unlink()
    publish_results([grown], site, "2024-07 g")
    assert page.is_file() and "unit_name" in page.read_text(encoding="utf-8")
