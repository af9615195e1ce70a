"""One event, one log line: control characters in a message are escaped, never written.

Anything a request brings (a ``target=``, a path, a query) or a server answers (an error text)
can reach a log message. A newline in it would start a second line that a log reader takes
for a real event: a forged ``level=ERROR`` line, or a hidden one. The formatter escapes every
C0 and C1 control character (newline, carriage return, escape, ...) and the Unicode line
separators, the way ``repr`` does, in the whole formatted line.
"""

from __future__ import annotations

import logging
import re
from typing import Final

_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape(text: str) -> str:
    """``text`` with every control character as a ``\\n``/``\\xNN``/``\\uNNNN`` escape."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class OneLineFormatter(logging.Formatter):
    """A formatter whose every record is exactly one line (tracebacks included)."""

    def format(self, record: logging.LogRecord) -> str:
        return escape(super().format(record))
