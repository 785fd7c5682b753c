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
time, batch), and the key and the store's folder are what it is remembered by.

GX instantiates these by name from the site's config (datadocs._docs_context); nothing else
imports this module, so importing the flow does not import GX.
"""
from __future__ import annotations

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


class _RememberedResults:
    """A data context whose get_validation_result answers from _SEEN for a result read before."""

    def __init__(self, context) -> None:
        self._context = context

    def __getattr__(self, name):
        return getattr(self._context, name)

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
            result = self._context.get_validation_result(**asked)
            if not isinstance(result, ExpectationSuiteValidationResult):
                return result  # not found: nothing to remember
            shown = {k: result.meta[k] for k in ("batch_kwargs", "batch_spec", "active_batch_definition")
                     if k in result.meta}
            _SEEN[key] = ExpectationSuiteValidationResult(success=result.success, results=[],
                                                          suite_name=result.suite_name, meta=shown)
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
