"""GX's Data Docs page views, with their templates compiled once per process.

Every site build makes new views, and each view a new Jinja environment that lexes, parses and
compiles every template again: a third of a second a month, paid again by every month of a
backfill. These views share one in-memory bytecode cache. Jinja keys the bytecode by template
name and checks it against the template's source, so a changed template is compiled anew and the
pages are the same as GX's own views write.

GX instantiates them by name from the site's config (datadocs._docs_context); nothing else
imports this module, so importing the flow does not import GX.
"""
from __future__ import annotations

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


class PageView(DefaultJinjaPageView):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = COMPILED


class IndexPageView(DefaultJinjaIndexPageView):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = COMPILED
