"""JSON bodies that cannot crash a request: nesting deep enough to exhaust Python's recursion
limit (``[[[[…`` a few thousand deep) is a 400 like any other malformed body, not a 500."""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
