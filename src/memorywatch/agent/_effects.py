"""The sans-I/O contract between the SDK's logic and its two clients.

Every operation of the SDK (locks, tools, history, preferences, heartbeat, readiness, spans
and counters included) is written once, in ``_memory``, ``_locks``, ``_tools`` and
``_health``, as a generator that *yields effects* and receives their results. It never
touches a socket, a thread or an event loop. The sync client (``state.py``) and the asyncio
client (``aio.py``) are drivers: they carry out each effect (a script call through redis-py,
a sleep, a call of the user's tool function, a background loop) with blocking calls or with
``await``, and send the result back. So the two clients cannot drift: they run the same code.

:class:`Run` steps one operation. It also owns what both drivers would otherwise repeat:
redis-py errors become :class:`~memorywatch.agent.errors.AgentStateError` naming the
operation, and a script Redis forgot (``NOSCRIPT`` after a restart or failover) is loaded and
called again once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any, Generic, NamedTuple, TypeVar

from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from memorywatch.agent.errors import StateUnavailable, translate

T = TypeVar("T")


class Script(NamedTuple):
    """``EVALSHA`` of the SDK script ``name``; ``side`` runs it on the heartbeat's own
    connection, outside the pool (an exhausted pool must not silence its own report).

    With ``replicas`` > 0 the driver sends ``WAIT replicas replica_timeout_ms`` right behind
    it on the same connection (one round trip: WAIT counts the replicas that have that
    connection's writes) and answers :class:`Replicated`."""

    name: str
    keys: list[str]
    args: list[Any]
    op: str
    side: bool = False
    replicas: int = 0
    replica_timeout_ms: int = 0


class Replicated(NamedTuple):
    """The reply of a :class:`Script` sent with ``replicas``: its value, and how many replicas
    acknowledged the write within the timeout."""

    value: Any
    acked: int


class LoadScript(NamedTuple):
    """``SCRIPT LOAD`` of an SDK script (issued by :class:`Run` on ``NOSCRIPT``)."""

    name: str
    side: bool = False


class Command(NamedTuple):
    """One plain Redis command, e.g. ``("HGETALL", key)``."""

    args: tuple[Any, ...]
    op: str


class Sleep(NamedTuple):
    seconds: float


class Call(NamedTuple):
    """Call the user's tool function: ``fn(*args, **kwargs)``, awaited on the asyncio client."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]


class Pause(NamedTuple):
    """Inside a background loop: wait ``seconds``; the result is True when the loop was asked
    to stop meanwhile (then the loop returns)."""

    seconds: float


class Spawn(NamedTuple):
    """Run ``loop`` (an operation made of effects, :class:`Pause` included) in the
    background: a daemon thread, or an asyncio task. The result is a handle for :class:`Join`."""

    loop: Generator[Any, Any, None]
    name: str


class Join(NamedTuple):
    """Ask a spawned loop to stop at its next :class:`Pause` and wait until it has returned
    (a loop is never cancelled mid-command: its connection would be left mid-reply)."""

    handle: Any


class Deadline(NamedTuple):
    """Run ``op`` and give up waiting after ``seconds`` (raises :class:`DeadlineExceeded`)."""

    op: Generator[Any, Any, Any]
    seconds: float


class DeadlineExceeded(Exception):
    """A :class:`Deadline` passed before its operation answered."""


Op = Generator[Any, Any, T]
"""An operation: yields effects, receives their results, returns ``T``."""


class Run(Generic[T]):
    """One operation being driven: ``effect`` is what it waits for until ``done``."""

    __slots__ = ("_op", "_retry", "done", "effect", "value")

    def __init__(self, op: Op[T]) -> None:
        self._op = op
        self._retry: Script | None = None
        self.done = False
        self.value: Any = None
        self.effect: Any = None
        self._advance(op.send, None)

    def _advance(self, step: Callable[[Any], Any], arg: Any) -> None:
        try:
            self.effect = step(arg)
        except StopIteration as stop:
            self.done = True
            self.value = stop.value
            self.effect = None

    def send(self, reply: Any) -> None:
        if self._retry is not None:  # the script is loaded now: call it again
            self.effect, self._retry = self._retry, None
            return
        self._advance(self._op.send, reply)

    def throw(self, exc: BaseException) -> None:
        effect = self.effect
        if isinstance(exc, NoScriptError) and isinstance(effect, Script) and self._retry is None:
            self._retry = effect
            self.effect = LoadScript(effect.name, effect.side)
            return
        if isinstance(effect, LoadScript) and self._retry is not None:
            effect, self._retry = self._retry, None
        if isinstance(effect, Script | Command):  # never the errors of the user's function
            if isinstance(exc, RedisError):
                exc = _chained(translate(exc, effect.op), exc)
            elif isinstance(exc, RedisClusterException):
                exc = _chained(StateUnavailable(f"{effect.op}: Redis Cluster error ({exc})"), exc)
        self._advance(self._op.throw, exc)

    def answer(self, handler: Callable[[Any], Any], effect: Any) -> None:
        """Carry out ``effect`` with a blocking ``handler`` and resume with its outcome."""
        try:
            reply = handler(effect)
        except BaseException as exc:
            self.throw(exc)
        else:
            self.send(reply)


Handlers = Mapping[type, Callable[[Any], Any]]
"""Effect type -> the blocking call that carries it out (the sync client's, a saver's)."""
AsyncHandlers = Mapping[type, Callable[[Any], Awaitable[Any]]]
"""Effect type -> the coroutine function that carries it out (the asyncio client's)."""


def drive(op: Op[T], handlers: Handlers) -> T:
    """Run ``op`` to its end, each effect carried out by its handler with blocking calls."""
    run: Run[T] = Run(op)
    while not run.done:
        run.answer(handlers[type(run.effect)], run.effect)
    result: T = run.value
    return result


async def adrive(op: Op[T], handlers: AsyncHandlers) -> T:
    """Run ``op`` to its end, each effect awaited from its handler."""
    run: Run[T] = Run(op)
    while not run.done:
        effect = run.effect
        try:
            reply = await handlers[type(effect)](effect)
        except BaseException as exc:
            run.throw(exc)
        else:
            run.send(reply)
    result: T = run.value
    return result


def _chained(new: BaseException, cause: BaseException) -> BaseException:
    new.__cause__ = cause
    return new
