"""LangGraph checkpoint savers on the memorywatch schema: plain Redis 7, no modules.

``AgentStateSaver(state)`` and ``AsyncAgentStateSaver(state)`` keep a graph's checkpoints in
three keys per thread (``lgcp``, ``lgix``, ``lgw``) and one set per run (``lgrun``, for
``delete_for_runs``; docs/schema.md, "LangGraph checkpoints"),
on the state's own Redis client: its shards and hash tags (each thread's keys on one Cluster
slot, every operation one script), its Sentinel or Cluster connection, its durable mode.

Bounds: every key carries the thread's retention TTL (``ttl=``, default the state's
``Settings.session_ttl``), refreshed by every write and by ``get_tuple``; a thread keeps its
newest ``max_checkpoints`` checkpoints (all namespaces together), the pending writes of older
ones go with them. Each checkpoint is stored whole (every channel value), so trimming an old
one never breaks a newer one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Final, Generic, NamedTuple, TypeVar

import redis
import redis.asyncio as aredis
import redis.cluster
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from redis.asyncio.cluster import PipelineCommand
from redis.client import NEVER_DECODE
from redis.exceptions import NoScriptError, RedisClusterException
from redis.observability import recorder as observability

from memorywatch import schema
from memorywatch.agent import AgentState
from memorywatch.agent import _effects as fx
from memorywatch.agent import attributes as attr
from memorywatch.agent._direct import direct_pool, on_connection
from memorywatch.agent.aio import AgentState as AsyncAgentState
from memorywatch.agent.errors import StateMiss, StateNotDurable
from memorywatch.integrations.langgraph import _lua

T = TypeVar("T")
S = TypeVar("S", bound=AgentState | AsyncAgentState)
NUL: Final = "\0"
STORE_CHECKPOINTS: Final = attr.STORE_CHECKPOINTS
"""``gen_ai.memory.store.name`` of the savers' spans."""


def _ms(seconds: float) -> int:
    value = int(seconds * 1000)
    if value <= 0:
        raise ValueError(f"ttl must be positive, got {seconds!r}s")
    return value


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _check(name: str, value: str) -> str:
    if NUL in value:
        raise ValueError(f"a LangGraph {name} must not contain a NUL character")
    return value


def _ns(config: RunnableConfig) -> str:
    return _check("checkpoint_ns", str(config["configurable"].get("checkpoint_ns", "")))


def _thread(config: RunnableConfig | None) -> str:
    if not config or not config.get("configurable", {}).get("thread_id"):
        raise ValueError("these savers need configurable.thread_id (no listing across threads)")
    return _check("thread_id", str(config["configurable"]["thread_id"]))


def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


class _Codec:
    """Records as Redis stores them: binary, NUL-separated heads (no id holds a NUL).

    checkpoint record: ``{run id}\\0{parent id}\\0{checkpoint type}\\0{metadata type}\\0{len}\\0`` then the
    checkpoint bytes (``len`` of them) and the metadata bytes.
    write record: ``{task path}\\0{channel}\\0{type}\\0`` then the value bytes.
    """

    def __init__(self, serde: SerializerProtocol) -> None:
        self.serde = serde

    def checkpoint(
        self, checkpoint: Checkpoint, metadata: CheckpointMetadata, parent: str | None, run: str
    ) -> bytes:
        cp_type, cp_bytes = self.serde.dumps_typed(checkpoint)
        md_type, md_bytes = self.serde.dumps_typed(metadata)
        parts = (run, parent or "", cp_type, md_type, str(len(cp_bytes)), "")
        head = NUL.join(parts).encode()
        return head + cp_bytes + md_bytes

    def load_checkpoint(self, record: bytes) -> tuple[Checkpoint, CheckpointMetadata, str]:
        _, parent, cp_type, md_type, size, rest = record.split(b"\0", 5)
        cut = int(size)
        checkpoint: Checkpoint = self.serde.loads_typed((cp_type.decode(), rest[:cut]))
        metadata: CheckpointMetadata = self.serde.loads_typed((md_type.decode(), rest[cut:]))
        versions = checkpoint.get("channel_versions", {})
        values = checkpoint.get("channel_values", {})
        # A channel no longer versioned is no longer part of the state (as LangGraph's own
        # savers load only the channels the checkpoint versions).
        checkpoint["channel_values"] = {k: v for k, v in values.items() if k in versions}
        return checkpoint, metadata, parent.decode()

    def write(self, task_path: str, channel: str, value: Any) -> bytes:
        kind, raw = self.serde.dumps_typed(value)
        head = (_check("task_path", task_path), _check("channel", channel), kind, "")
        return NUL.join(head).encode() + raw

    def load_writes(self, pairs: Sequence[bytes]) -> list[PendingWrite]:
        ordered: list[tuple[tuple[str, str, int], PendingWrite]] = []
        for i in range(0, len(pairs), 2):
            _, _, task_id, idx = _text(pairs[i]).split(NUL)
            path, channel, kind, raw = pairs[i + 1].split(b"\0", 3)
            value = self.serde.loads_typed((kind.decode(), raw))
            write: PendingWrite = (task_id, channel.decode(), value)
            ordered.append((writes_sort_key(path.decode(), task_id, int(idx)), write))
        ordered.sort(key=lambda item: item[0])
        return [write for _, write in ordered]


_UPDATE: Final = attr.GEN_AI_OPERATION_UPDATE_MEMORY
_SEARCH: Final = attr.GEN_AI_OPERATION_SEARCH_MEMORY
_DELETE: Final = attr.GEN_AI_OPERATION_DELETE_MEMORY


# The savers' effects, after the SDK's (memorywatch.agent._effects): each saver operation is
# written once, in _SaverBase, as a generator yielding these; AgentStateSaver carries them out
# with blocking calls, AsyncAgentStateSaver with ``await``, and sends each reply back.
class _Eval(NamedTuple):
    """The saver script ``name`` (``_lua.SCRIPTS``) on ``keys`` (one thread's slot);
    ``durable``: the operation's name when the write waits for ``min_replicas``."""

    name: str
    keys: list[str]
    args: list[Any]
    durable: str = ""


class _Client(NamedTuple):
    """One client call, ``client.<method>(*args)``."""

    method: str
    args: tuple[Any, ...]


class _Pipeline(NamedTuple):
    """Client calls in one pipeline (no transaction); the reply is the list of their replies."""

    calls: list[tuple[str, tuple[Any, ...]]]


_Op = Generator[_Eval | _Client | _Pipeline, Any, T]
"""A saver operation: yields effects, receives their replies, returns ``T``."""


class _SaverBase(BaseCheckpointSaver[int], Generic[S]):
    """What both savers share: settings, keys, encodings, spans, every operation (as
    generators of effects) and the public forms. No I/O here: each saver's ``_run`` and
    ``_arun`` carry the effects out."""

    _state_type: ClassVar[type]
    _wrong_state: ClassVar[str]
    """The one-line error for a state of the other client."""

    def __init__(
        self,
        state: S,
        *,
        ttl: float | None = None,
        max_checkpoints: int = schema.DEFAULT_MAX_CHECKPOINTS,
        serde: SerializerProtocol | None = None,
    ) -> None:
        if not isinstance(state, self._state_type):
            raise TypeError(self._wrong_state)
        super().__init__(serde=serde)
        if max_checkpoints < 1:
            raise ValueError(f"max_checkpoints must be at least 1, got {max_checkpoints!r}")
        self.state: S = state
        self.ttl = float(ttl if ttl is not None else state.settings.session_ttl)
        self.ttl_ms = str(_ms(self.ttl))
        self.max_checkpoints = max_checkpoints
        self._tracer = state.telemetry.tracer
        self._schema_written = False
        """``{ns}:schema`` checked (written if absent) before the first script, as every SDK
        operation does: the exporter reads the shard count from it."""
        self._bind()

    def _bind(self) -> None:
        """Called last by ``__init__``: the asyncio saver takes its event loop here."""

    @property
    def _codec(self) -> _Codec:
        """Built on the current ``serde``: LangGraph's ``with_allowlist`` clones the saver
        with another serializer (its msgpack allowlist), which must be the one used."""
        return _Codec(self.serde)

    # -- keys -------------------------------------------------------------------------
    def _keys(self, thread_id: str) -> list[str]:
        sch = self.state.schema
        return [
            sch.checkpoints(thread_id),
            sch.checkpoint_index(thread_id),
            sch.checkpoint_writes(thread_id),
        ]

    # -- the operations, each written once: generators of effects both savers carry out --------
    def _put(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> _Op[RunnableConfig]:
        with self._span(_UPDATE, "put"):
            thread_id, ns = _thread(config), _ns(config)
            checkpoint_id = _check("checkpoint_id", checkpoint["id"])
            stored_metadata = get_checkpoint_metadata(config, metadata)
            run = _check("run_id", str(stored_metadata.get("run_id") or ""))
            parent = get_checkpoint_id(config)
            record = self._codec.checkpoint(checkpoint, stored_metadata, parent, run)
            member = f"{checkpoint_id}{NUL}{ns}"
            args = [self.ttl_ms, self.max_checkpoints, thread_id, 1, member, record]
            # The run's thread set goes in the same script when it is on the thread's Cluster
            # slot, else in a pipeline after it.
            keys, apart = self._keys(thread_id), None
            if run:
                sch = self.state.schema
                if sch.shard(run) == sch.shard(thread_id):
                    keys.append(sch.checkpoint_run(run))
                else:
                    apart = sch.checkpoint_run(run)
            yield _Eval("store", keys, args, schema.DURABLE_CHECKPOINT_PUT)
            if apart:
                yield from self._add_to_runs([apart], thread_id)
        return _config(thread_id, ns, checkpoint_id)

    def _put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> _Op[None]:
        with self._span(_UPDATE, "put_writes") as span:
            span.set_attribute(attr.MEMORY_ITEMS, len(writes))
            if not writes:
                return
            thread_id, ns = _thread(config), _ns(config)
            checkpoint_id = _check("checkpoint_id", str(config["configurable"]["checkpoint_id"]))
            member = f"{checkpoint_id}{NUL}{ns}"
            args: list[Any] = [self.ttl_ms]
            for idx, (channel, value) in enumerate(writes):
                special = WRITES_IDX_MAP.get(channel)
                field = f"{member}{NUL}{_check('task_id', task_id)}{NUL}{special or idx}"
                record = self._codec.write(task_path, channel, value)
                args += [field, record, int(special is not None)]
            yield _Eval("writes", self._keys(thread_id), args, schema.DURABLE_CHECKPOINT_WRITES)

    def _get_tuple(self, config: RunnableConfig) -> _Op[CheckpointTuple | None]:
        with self._span(_SEARCH, "get_tuple") as span:
            thread_id, checkpoint_id = _thread(config), get_checkpoint_id(config) or ""
            keys = [
                *self._keys(thread_id),
                self.state.schema.stats(schema.FAMILY_STATE_MISSES, thread_id),
            ]
            args = [
                _ns(config),
                _check("checkpoint_id", checkpoint_id),
                self.ttl_ms,
                schema.MISS_CHECKPOINT,
            ]
            reply = yield _Eval("get", keys, args)
            found = None
            if reply and len(reply) == 1:
                raise StateMiss(
                    schema.MISS_CHECKPOINT,
                    "checkpoint get: the thread's index lists the checkpoint but its record is "
                    "gone (evicted or deleted before its TTL)",
                )
            if reply:
                found = self._tuple(thread_id, reply[0], reply[1], reply[2:])
            span.set_attribute(attr.GEN_AI_MEMORY_SEARCH_RESULT_COUNT, int(found is not None))
        return found

    def _list(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> _Op[list[CheckpointTuple]]:
        with self._span(_SEARCH, "list") as span:
            thread_id = _thread(config)
            assert config is not None
            ns = config["configurable"].get("checkpoint_ns")
            before_id = (get_checkpoint_id(before) if before else None) or ""
            server_limit = 0 if filter or not limit else limit
            args = [int(ns is not None), ns or "", before_id, server_limit]
            reply = yield _Eval("list", self._keys(thread_id), args)
            found = self._from_list(thread_id, reply, filter, limit)
            span.set_attribute(attr.GEN_AI_MEMORY_SEARCH_RESULT_COUNT, len(found))
        return found

    def _delete_thread(self, thread_id: str) -> _Op[None]:
        with self._span(_DELETE, "delete_thread"):
            yield _Client("delete", tuple(self._keys(_check("thread_id", str(thread_id)))))

    def _copy_thread(self, source_thread_id: str, target_thread_id: str) -> _Op[None]:
        with self._span(_UPDATE, "copy_thread"):
            source = _check("thread_id", str(source_thread_id))
            found, writes = yield _Eval("list", self._keys(source), [0, "", "", 0])
            if not found:
                return
            target = _check("thread_id", str(target_thread_id))
            args = [self.ttl_ms, self.max_checkpoints, target, len(found) // 2, *found, *writes]
            yield _Eval("store", self._keys(target), args, schema.DURABLE_CHECKPOINT_PUT)
            runs = {_text(found[i].split(b"\0", 1)[0]) for i in range(1, len(found), 2)}
            run_keys = {self.state.schema.checkpoint_run(run) for run in runs if run}
            yield from self._add_to_runs(sorted(run_keys), target)

    def _add_to_runs(self, run_keys: Sequence[str], thread_id: str) -> _Op[None]:
        if not run_keys:
            return
        calls: list[tuple[str, tuple[Any, ...]]] = []
        for key in run_keys:
            calls += [("sadd", (key, thread_id)), ("pexpire", (key, int(self.ttl_ms)))]
        yield _Pipeline(calls)

    def _delete_for_runs(self, run_ids: Sequence[str]) -> _Op[None]:
        with self._span(_DELETE, "delete_for_runs"):
            runs = [_check("run_id", str(run)) for run in run_ids]
            if not runs:
                return
            run_keys = [self.state.schema.checkpoint_run(run) for run in runs]
            members = yield _Pipeline([("smembers", (key,)) for key in run_keys])
            by_thread: dict[str, list[str]] = {}
            for run, threads in zip(runs, members, strict=True):
                for thread in threads:
                    by_thread.setdefault(_text(thread), []).append(run)
            for thread_id, thread_runs in by_thread.items():
                yield _Eval("delete_runs", self._keys(thread_id), thread_runs)
            yield _Pipeline([("delete", (key,)) for key in run_keys])

    def _prune(self, thread_ids: Sequence[str], strategy: str) -> _Op[None]:
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r} (keep_latest, delete)")
        with self._span(_DELETE, "prune"):
            for thread_id in thread_ids:
                keys = self._keys(_check("thread_id", str(thread_id)))
                if strategy == "delete":
                    yield _Client("delete", tuple(keys))
                else:
                    yield _Eval("prune", keys, [])

    # -- replies --------------------------------------------------------------------------------------
    def _tuple(
        self, thread_id: str, member: bytes, record: bytes, writes: Sequence[bytes]
    ) -> CheckpointTuple:
        checkpoint_id, _, ns = _text(member).partition(NUL)
        checkpoint, metadata, parent = self._codec.load_checkpoint(record)
        return CheckpointTuple(
            config=_config(thread_id, ns, checkpoint_id),
            checkpoint=checkpoint,
            metadata=metadata,
            parent_config=_config(thread_id, ns, parent) if parent else None,
            pending_writes=self._codec.load_writes(writes),
        )

    def _from_list(
        self,
        thread_id: str,
        reply: Sequence[Any],
        filter: dict[str, Any] | None,
        limit: int | None,
    ) -> list[CheckpointTuple]:
        found, writes = reply
        by_member: dict[bytes, list[bytes]] = {}
        for i in range(0, len(writes), 2):
            member = writes[i].rsplit(b"\0", 2)[0]
            by_member.setdefault(member, []).extend((writes[i], writes[i + 1]))
        out: list[CheckpointTuple] = []
        for i in range(0, len(found), 2):
            if limit and len(out) >= limit:
                break
            tup = self._tuple(thread_id, found[i], found[i + 1], by_member.get(found[i], []))
            if filter and any(tup.metadata.get(k) != v for k, v in filter.items()):
                continue
            out.append(tup)
        return out

    @staticmethod
    def _not_durable_key(thread_key: str) -> str:
        """The ``state_not_durable`` counter hash of the shard of a thread's key (its
        ``{ns}:{N}:`` prefix), counted once after a refusal, as the SDK does."""
        prefix = thread_key[: thread_key.index("}:") + 2]
        return f"{prefix}{schema.KIND_STATS}:{schema.FAMILY_STATE_NOT_DURABLE}"

    def _not_durable(self, op: str, acked: int) -> StateNotDurable:
        wanted = self.state.settings.min_replicas
        return StateNotDurable(
            op,
            acked,
            wanted,
            f"{op}: {acked} of {wanted} replicas acknowledged the write within "
            f"{self.state.settings.replica_timeout:g}s",
        )

    @contextmanager
    def _span(self, operation: str, op: str) -> Iterator[Span]:
        """A CLIENT span per saver operation, after the GenAI memory conventions; never the
        thread id, checkpoint ids or any channel value."""
        span = self._tracer.start_span(
            f"{operation} {STORE_CHECKPOINTS}",
            kind=SpanKind.CLIENT,
            attributes={
                attr.GEN_AI_OPERATION_NAME: operation,
                attr.GEN_AI_PROVIDER_NAME: attr.DB_SYSTEM_REDIS,
                attr.GEN_AI_MEMORY_STORE_NAME: STORE_CHECKPOINTS,
                attr.GEN_AI_MEMORY_TYPE: "short_term",
                attr.GEN_AI_MEMORY_SCOPE: "session",
                attr.CHECKPOINT_OP: op,
            },
        )
        try:
            yield span
        except Exception as exc:
            span.set_attribute(attr.ERROR_TYPE, type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR))
            raise
        finally:
            span.end()

    # -- BaseCheckpointSaver: each form hands its operation to the saver's driver ------------------
    def _run(self, op: _Op[T]) -> T:
        """Carry out ``op`` and wait for its result, from sync code."""
        raise NotImplementedError

    async def _arun(self, op: _Op[T]) -> T:
        """Carry out ``op``, awaited from the event loop."""
        raise NotImplementedError

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._run(self._put(config, checkpoint, metadata))

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._arun(self._put(config, checkpoint, metadata))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._run(self._put_writes(config, writes, task_id, task_path))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._arun(self._put_writes(config, writes, task_id, task_path))

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._run(self._get_tuple(config))

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._arun(self._get_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        yield from self._run(self._list(config, filter, before, limit))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for tup in await self._arun(self._list(config, filter, before, limit)):
            yield tup

    def delete_thread(self, thread_id: str) -> None:
        self._run(self._delete_thread(thread_id))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._arun(self._delete_thread(thread_id))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and pending write of a thread (its retention starts anew)."""
        self._run(self._copy_thread(source_thread_id, target_thread_id))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and pending write of a thread (its retention starts anew)."""
        await self._arun(self._copy_thread(source_thread_id, target_thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) the runs wrote, on every thread."""
        self._run(self._delete_for_runs(run_ids))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) the runs wrote, on every thread."""
        await self._arun(self._delete_for_runs(run_ids))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep the newest checkpoint of each namespace; ``delete``: all."""
        self._run(self._prune(thread_ids, strategy))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep the newest checkpoint of each namespace; ``delete``: all."""
        await self._arun(self._prune(thread_ids, strategy))


class AgentStateSaver(_SaverBase[AgentState]):
    """A LangGraph checkpointer on a sync :class:`memorywatch.agent.AgentState`.

    ``graph = builder.compile(checkpointer=AgentStateSaver(state))``. ``ttl`` (seconds): thread
    retention, refreshed on activity (default ``state.settings.session_ttl``);
    ``max_checkpoints``: checkpoints a thread keeps (default 100). The async forms run the sync
    calls in a worker thread.
    """

    _state_type = AgentState
    _wrong_state = (
        "AgentStateSaver needs memorywatch.agent.AgentState (the sync client); "
        "for memorywatch.agent.aio.AgentState use AsyncAgentStateSaver"
    )

    def _eval(self, name: str, keys: list[str], args: list[Any], durable: str = "") -> Any:
        if not self._schema_written:
            self.state.ensure_schema()
            self._schema_written = True
        script = _lua.SCRIPTS[name]
        client: Any = self.state.client
        wanted = self.state.settings.min_replicas if durable else 0
        if wanted:
            return self._eval_durable(script, keys, args, durable, wanted)
        # Straight on a pooled connection when redis-py's wrappers have nothing to do.
        pool = None if observability.is_enabled() else direct_pool(client)
        try:
            if pool is not None:
                command = ("EVALSHA", script.sha, len(keys), *keys, *args)
                return on_connection(pool, *command, disable_decoding=True)
            return client.execute_command(
                "EVALSHA", script.sha, len(keys), *keys, *args, **{NEVER_DECODE: True}
            )
        except NoScriptError:
            return client.execute_command(
                "EVAL", script.text, len(keys), *keys, *args, **{NEVER_DECODE: True}
            )

    def _eval_durable(
        self, script: _lua.Script, keys: list[str], args: list[Any], op: str, wanted: int
    ) -> Any:
        """The script and ``WAIT`` in one pipeline, on the connection of the keys' node."""
        client: Any = self.state.client
        if isinstance(client, redis.cluster.RedisCluster):
            client = client.get_redis_connection(client.get_node_from_key(keys[0]))
        timeout_ms = int(self.state.settings.replica_timeout * 1000)
        pipe = client.pipeline(transaction=False)
        pipe.execute_command("EVAL", script.text, len(keys), *keys, *args)
        pipe.execute_command("WAIT", wanted, timeout_ms)
        value, acked = pipe.execute()
        if int(acked) < wanted:
            self.state.client.hincrby(self._not_durable_key(keys[0]), op, 1)
            raise self._not_durable(op, int(acked))
        return value

    def _run(self, op: _Op[T]) -> T:
        """Run one operation with the SDK's sync driver: each effect carried out with a
        blocking call, its reply or error sent back into the operation. The handlers are
        bound per call: ``with_allowlist`` clones the saver with ``copy.copy``."""
        handlers: fx.Handlers = {
            _Eval: lambda effect: self._eval(*effect),
            _Client: self._call,
            _Pipeline: self._pipeline,
        }
        return fx.drive(op, handlers)

    def _call(self, effect: _Client) -> Any:
        return getattr(self.state.client, effect.method)(*effect.args)

    def _pipeline(self, effect: _Pipeline) -> Any:
        pipe = self.state.client.pipeline(transaction=False)
        for method, args in effect.calls:
            getattr(pipe, method)(*args)
        return pipe.execute()

    async def _arun(self, op: _Op[T]) -> T:
        """The async forms: the operation driven in a worker thread."""
        return await asyncio.to_thread(self._run, op)


class AsyncAgentStateSaver(_SaverBase[AsyncAgentState]):
    """A LangGraph checkpointer on the asyncio :class:`memorywatch.agent.aio.AgentState`.

    Build it inside the event loop the graph runs in. The sync forms (``graph.invoke`` or
    ``get_state`` from another thread) hand the call to that loop and wait for it; called from
    the loop's own thread they raise instead of deadlocking.
    """

    _state_type = AsyncAgentState
    _wrong_state = (
        "AsyncAgentStateSaver needs memorywatch.agent.aio.AgentState (the asyncio "
        "client); for memorywatch.agent.AgentState use AgentStateSaver"
    )
    loop: asyncio.AbstractEventLoop

    def _bind(self) -> None:
        try:
            self.loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "AsyncAgentStateSaver must be built inside the running event loop of the graph "
                "(in an async function); for sync code use AgentStateSaver"
            ) from None

    async def _eval(self, name: str, keys: list[str], args: list[Any], durable: str = "") -> Any:
        if not self._schema_written:
            await self.state.ensure_schema()
            self._schema_written = True
        script = _lua.SCRIPTS[name]
        client: Any = self.state.client
        wanted = self.state.settings.min_replicas if durable else 0
        if wanted:
            return await self._eval_durable(script, keys, args, durable, wanted)
        try:
            return await client.execute_command(
                "EVALSHA", script.sha, len(keys), *keys, *args, **{NEVER_DECODE: True}
            )
        except NoScriptError:
            return await client.execute_command(
                "EVAL", script.text, len(keys), *keys, *args, **{NEVER_DECODE: True}
            )

    async def _eval_durable(
        self, script: _lua.Script, keys: list[str], args: list[Any], op: str, wanted: int
    ) -> Any:
        client: Any = self.state.client
        timeout_ms = int(self.state.settings.replica_timeout * 1000)
        replies: list[Any]
        if isinstance(client, aredis.RedisCluster):
            node = client.get_node_from_key(keys[0])
            if node is None:
                raise RedisClusterException("no node serves the slot of the thread's keys")
            commands = [
                PipelineCommand(0, "EVAL", script.text, len(keys), *keys, *args),
                PipelineCommand(1, "WAIT", wanted, timeout_ms),
            ]
            await node.execute_pipeline(commands)
            replies = [command.result for command in commands]
        else:
            pipe = client.pipeline(transaction=False)
            pipe.execute_command("EVAL", script.text, len(keys), *keys, *args)
            pipe.execute_command("WAIT", wanted, timeout_ms)
            replies = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        value, acked = replies
        if int(acked) < wanted:
            await self.state.client.hincrby(self._not_durable_key(keys[0]), op, 1)
            raise self._not_durable(op, int(acked))
        return value

    def _run(self, op: _Op[T]) -> T:
        """The sync forms: the operation handed to the saver's event loop."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None  # no loop in this thread: hand the call to the saver's loop
        if running is self.loop:
            raise asyncio.InvalidStateError(
                "AsyncAgentStateSaver: a sync call from the event loop's thread would block "
                "it; use the async form (ainvoke, aget_state) or AgentStateSaver"
            )
        return asyncio.run_coroutine_threadsafe(self._arun(op), self.loop).result()

    async def _arun(self, op: _Op[T]) -> T:
        """Run one operation with the SDK's asyncio driver: each effect awaited, its reply or
        error sent back into it (handlers bound per call, as in the sync saver)."""
        handlers: fx.AsyncHandlers = {
            _Eval: lambda effect: self._eval(*effect),
            _Client: self._call,
            _Pipeline: self._pipeline,
        }
        return await fx.adrive(op, handlers)

    async def _call(self, effect: _Client) -> Any:
        client: Any = self.state.client
        return await getattr(client, effect.method)(*effect.args)

    async def _pipeline(self, effect: _Pipeline) -> Any:
        client: Any = self.state.client
        pipe = client.pipeline(transaction=False)
        for method, args in effect.calls:
            getattr(pipe, method)(*args)
        return await pipe.execute()
