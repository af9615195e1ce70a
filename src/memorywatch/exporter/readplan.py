"""Commands for one pipelined round trip, each queued beside the function that decodes it.

Queuing and decoding walk the same list of entries, so no reply is ever read by its
position in the pipeline: adding, removing or reordering a command cannot shift the replies
another decoder reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from memorywatch.exporter.roundtrip import Command, round_trip

Decode = Callable[[Any], None]


@dataclass(frozen=True)
class _Entry:
    args: tuple[Any, ...]
    options: dict[str, Any]
    decode: Decode
    required: bool


@dataclass
class ReadPlan:
    """Entries to queue on a redis-py pipeline (plain or cluster) and decode after it ran.

    A decoder receives its command's reply, or None when that command failed; an entry
    added with ``required=True`` raises its error instead (the read cannot go on without it).
    """

    entries: list[_Entry] = field(default_factory=list)

    def add(self, decode: Decode, *args: Any, required: bool = False, **options: Any) -> None:
        """Queue ``args`` (a command and its arguments); ``options`` reach redis-py's reply
        parser as they do from its command methods (e.g. ``withscores=True`` for ZRANGE)."""
        self.entries.append(_Entry(args, options, decode, required))

    def queue(self, pipe: Any) -> int:
        """Queue every entry on `pipe`; returns how many replies they add."""
        for entry in self.entries:
            pipe.execute_command(*entry.args, **entry.options)
        return len(self.entries)

    def commands(self) -> list[Command]:
        """Every entry as a `roundtrip.Command`."""
        return [(entry.args, entry.options) for entry in self.entries]

    def decode(self, replies: Sequence[Any]) -> None:
        if len(replies) != len(self.entries):
            raise ValueError(f"{len(replies)} replies for {len(self.entries)} commands")
        for entry, reply in zip(self.entries, replies, strict=True):
            if isinstance(reply, Exception):
                if entry.required:
                    raise reply
                reply = None
            entry.decode(reply)

    def run(self, client: Any) -> None:
        """Queue, execute in one round trip (none when empty) and decode."""
        if not self.entries:
            return
        if type(client) is redis.Redis:  # one node: no Pipeline object (roundtrip.py)
            self.decode(round_trip(client, self.commands()))
            return
        pipe = client.pipeline(transaction=False)
        self.queue(pipe)
        self.decode(pipe.execute(raise_on_error=False))
