"""GX's Data Docs page views, with their templates compiled once per process.

Every site build makes new views, and each view a new Jinja environment that lexes, parses and
compiles every template again: a third of a second a month, paid again by every month of a
backfill. These views share one in-memory bytecode cache. Jinja keys the bytecode by template
name and checks it against the template's source, so a changed template is compiled anew and the
pages are the same as GX's own views write.

The index builder, too, reads every stored result of every earlier run on each build, to show
whether it succeeded: month 41 of a backfill would read 246 results to add six. IndexBuilder
remembers, per process, what the index shows of each result it has read (its success and batch
description, not its rows). A stored result never changes under its key (suite, run name, run
time, batch), and the key and the store's folder are what it is remembered by. Across processes
(a rerun, the scheduled month: each reads every stored result once, 0.7 s on a 41-month site), it
is kept in SUMMARIES beside the store's folders, each entry also keyed by its result file's size
and modification time, so that a result changed or replaced on disk is read again.

GX instantiates these by name from the site's config (datadocs._docs_context); nothing else
imports this module, so importing the flow does not import GX.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from great_expectations.core import ExpectationSuiteValidationResult
from great_expectations.render.renderer.site_builder import DefaultSiteIndexBuilder
from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
from jinja2 import BytecodeCache


class InMemoryBytecode(BytecodeCache):
    def __init__(self) -> None:
        self.code: dict[str, bytes] = {}

    def load_bytecode(self, bucket) -> None:
        if bucket.key in self.code:
            bucket.bytecode_from_string(self.code[bucket.key])

    def dump_bytecode(self, bucket) -> None:
        self.code[bucket.key] = bucket.bytecode_to_string()


COMPILED = InMemoryBytecode()


class _CompiledOnce:
    # Named parameters: GX passes a class only those of its runtime values that __init__ names.
    def __init__(self, custom_styles_directory=None, custom_views_directory=None) -> None:
        super().__init__(custom_styles_directory, custom_views_directory)
        self.env.bytecode_cache = COMPILED


class PageView(_CompiledOnce, DefaultJinjaPageView):
    pass


class IndexPageView(_CompiledOnce, DefaultJinjaIndexPageView):
    pass


# (store folder, suite, run name, run time, batch) -> what the index shows of that result
_SEEN: dict[tuple, ExpectationSuiteValidationResult] = {}
KEYWORDS = {"batch_identifier", "expectation_suite_name", "run_id", "validation_results_store_name"}
SHOWN = ("batch_kwargs", "batch_spec", "active_batch_definition")
SUMMARIES = "index-summaries.json"  # in the folder that holds the results store's folder


def _summary_file(folder: str) -> Path:
    return Path(folder).parent / SUMMARIES


def _load_summaries(folder: str) -> dict:
    try:
        data = json.loads(_summary_file(folder).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


class _RememberedResults:
    """A data context whose get_validation_result answers from _SEEN for a result read before."""

    def __init__(self, context) -> None:
        self._context = context
        self._summaries: dict[str, dict] = {}  # store folder -> its SUMMARIES, as read or grown
        self._grown: set[str] = set()

    def __getattr__(self, name):
        return getattr(self._context, name)

    def _file_state(self, store, asked) -> list | None:
        """The size and modification time of the result's file, or None if it cannot be told."""
        try:
            from great_expectations.data_context.types.resource_identifiers import (
                ExpectationSuiteIdentifier, ValidationResultIdentifier)
            key = ValidationResultIdentifier(ExpectationSuiteIdentifier(name=asked["expectation_suite_name"]),
                                             asked["run_id"], asked["batch_identifier"])
            path = os.path.join(store.store_backend.full_base_directory,
                                store.store_backend._convert_key_to_filepath(key.to_tuple()))
            st = os.stat(path)
            return [st.st_size, st.st_mtime_ns]
        except (AttributeError, KeyError, OSError, TypeError, ValueError):
            return None

    def save(self) -> None:
        """Write the summaries this build added (owner only, like the rest of the site)."""
        for folder in self._grown:
            path = _summary_file(folder)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(self._summaries[folder], ensure_ascii=False, sort_keys=True), encoding="utf-8")
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        self._grown.clear()

    def get_validation_result(self, **asked):
        # GX's index builder asks by keywords: batch_identifier, expectation_suite_name, run_id and
        # validation_results_store_name. Anything else (a partial key) goes to GX as it is.
        run_id, batch = asked.get("run_id"), asked.get("batch_identifier")
        store = self._context.stores[asked.get("validation_results_store_name")
                                     or self._context.validation_results_store_name]
        folder = getattr(store.store_backend, "full_base_directory", None)
        if folder is None or run_id is None or batch is None or asked.keys() - KEYWORDS:
            return self._context.get_validation_result(**asked)
        key = (str(folder), asked.get("expectation_suite_name"), run_id.run_name, str(run_id.run_time), str(batch))
        if key not in _SEEN:
            if str(folder) not in self._summaries:
                self._summaries[str(folder)] = _load_summaries(str(folder))
            summaries, name = self._summaries[str(folder)], json.dumps(key[1:], ensure_ascii=False)
            state = self._file_state(store, asked)
            kept = summaries.get(name)
            if state is not None and isinstance(kept, dict) and kept.get("file") == state:
                _SEEN[key] = ExpectationSuiteValidationResult(success=kept["success"], results=[],
                                                              suite_name=kept["suite_name"], meta=kept["meta"])
                return _SEEN[key]
            result = self._context.get_validation_result(**asked)
            if not isinstance(result, ExpectationSuiteValidationResult):
                return result  # not found: nothing to remember
            shown = {k: result.meta[k] for k in SHOWN if k in result.meta}
            _SEEN[key] = ExpectationSuiteValidationResult(success=result.success, results=[],
                                                          suite_name=result.suite_name, meta=shown)
            if state is not None:
                try:
                    entry = {"file": state, "success": result.success, "suite_name": result.suite_name, "meta": shown}
                    json.dumps(entry)  # read back from the store's JSON, so it is; if not, not kept
                except (TypeError, ValueError):
                    return _SEEN[key]
                summaries[name] = entry
                self._grown.add(str(folder))
        return _SEEN[key]


class IndexBuilder(DefaultSiteIndexBuilder):
    # GX's __init__ sets data_context (and GX passes only the arguments __init__ names): the
    # context it is given is wrapped as it is set.
    @property
    def data_context(self):
        return self._remembering

    @data_context.setter
    def data_context(self, context) -> None:
        self._remembering = _RememberedResults(context)

    def build(self, *args, **kwargs):
        built = super().build(*args, **kwargs)
        self._remembering.save()
        return built
