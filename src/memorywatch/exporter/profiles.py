"""Key profiles: which library wrote a Redis key, what agent memory it holds, whether it
must expire.

A profile is a list of glob patterns (``*`` any run of characters, ``?`` one, the rest
literal), each mapped to a key class of one vocabulary (`names.KEY_CLASSES`) and a TTL
rule. The built-in ones follow each library's own source (docs/profiles.md cites file and
version); users add theirs in YAML (`load_file`). Our own schema is the `memorywatch`
profile: its keys are parsed by exporter/keyclass.py under the configured namespace, so
its foreign keys are still schema errors.

Bounded by construction: label values are profile names (built-in, or from a file of at
most `MAX_FILE_PROFILES`) and classes of the fixed vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from memorywatch import names, schema
from memorywatch.exporter.keyclass import needs_ttl, parse_key
from memorywatch.yamlfile import load_yaml

MEMORYWATCH: Final = "memorywatch"
TTL_REQUIRED: Final = "required"
"""A key of this pattern without a TTL is a leak: counted in memorywatch_keys_without_ttl."""
TTL_OPTIONAL: Final = "optional"
"""The library leaves the TTL to its user (or keeps the key for good): no expectation."""
TTL_RULES: Final = (TTL_REQUIRED, TTL_OPTIONAL)
MAX_FILE_PROFILES: Final = 16
MAX_PATTERNS: Final = 64
_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
Slot = tuple[str, str]
"""(profile, key class): the labels of every keyspace series."""
UNCLAIMED: Final[Slot] = (names.PROFILE_NONE, names.KEY_CLASS_OTHER)


class ProfileError(ValueError):
    """A profile file or name that cannot be used; the message is one line."""


@dataclass(frozen=True)
class KeyPattern:
    glob: str
    key_class: str
    ttl: str = TTL_OPTIONAL
    redis_type: str | None = None
    """The type the library writes; another type under the pattern is not its key. None for
    the JSON documents of the libraries that need RedisJSON: their names are specific enough,
    and a Redis without the module cannot hold their type at all."""


@dataclass(frozen=True)
class Profile:
    name: str
    patterns: tuple[KeyPattern, ...]
    source: str = ""
    """Where the layout comes from (library, file, version)."""

    @property
    def classes(self) -> tuple[str, ...]:
        """The classes its series are zero-filled with (ours: the schema's)."""
        if self.name == MEMORYWATCH:
            return schema.KEY_CLASSES
        return tuple(dict.fromkeys(p.key_class for p in self.patterns))

    @property
    def ttl_classes(self) -> tuple[str, ...]:
        """The classes whose keys must carry a TTL (ours: published for every schema class,
        the SDK's own keys being checked kind by kind)."""
        if self.name == MEMORYWATCH:
            return schema.KEY_CLASSES
        return tuple(dict.fromkeys(p.key_class for p in self.patterns if p.ttl == TTL_REQUIRED))


@dataclass(frozen=True)
class Match:
    """What the classifier says of one key name."""

    profile: str
    key_class: str
    ttl_required: bool
    redis_type: str | None = None
    kind: str | None = None
    """The schema's key kind (memorywatch profile only)."""
    foreign: bool = False
    """Under the memorywatch namespace but not a shape the schema defines."""


MUST_EXPIRE: Final = frozenset(
    {
        names.KEY_CLASS_HISTORY,
        names.KEY_CLASS_CHECKPOINT,
        names.KEY_CLASS_CACHE,
        names.KEY_CLASS_LOCK,
        names.KEY_CLASS_TOOL,
    }
)
"""The classes the built-in profiles expect a TTL on, whatever the library's default:
conversations, graph state, caches, locks and tool records that never expire grow Redis until
maxmemory (the libraries mostly default to no TTL, which is the leak their users report).
Preferences, long-term memory and indexes are kept on purpose."""


def _p(glob: str, key_class: str, redis_type: str | None) -> KeyPattern:
    ttl = TTL_REQUIRED if key_class in MUST_EXPIRE else TTL_OPTIONAL
    return KeyPattern(glob, key_class, ttl, redis_type)


HIST, PREFS, LOCK = names.KEY_CLASS_HISTORY, names.KEY_CLASS_PREFERENCES, names.KEY_CLASS_LOCK
CKPT, LTM = names.KEY_CLASS_CHECKPOINT, names.KEY_CLASS_LONG_TERM_MEMORY
CACHE, INDEX, OTHER = names.KEY_CLASS_CACHE, names.KEY_CLASS_INDEX, names.KEY_CLASS_OTHER
BUILTIN: Final[dict[str, Profile]] = {
    p.name: p
    for p in (
        Profile(MEMORYWATCH, (), "memorywatch.schema (docs/schema.md), by exporter/keyclass.py"),
        Profile(
            "openai_agents",
            (
                _p("agents:session:*:messages", HIST, "list"),
                _p("agents:session:*:counter", INDEX, "string"),
                _p("agents:session:*", HIST, "hash"),
            ),
            "openai-agents 0.24.0 src/agents/extensions/memory/redis_session.py (RedisSession)",
        ),
        Profile(
            "langchain",
            (
                _p("message_store:*", HIST, "list"),
                _p("doc:cache:*", CACHE, "hash"),
            ),
            "langchain-community 0.4.2 chat_message_histories/redis.py, cache.py",
        ),
        Profile(
            "langchain_redis",
            (
                _p("chat:*:*", HIST, None),
                _p("llmcache:*", CACHE, "hash"),
                _p("redis:*:*", CACHE, None),
            ),
            "langchain-redis 0.2.6 chat_message_history.py, cache.py (redisvl 0.26 caches)",
        ),
        Profile(
            "langgraph",
            (
                _p("checkpoint_write:*", CKPT, None),
                _p("checkpoint_latest:*", INDEX, "string"),
                _p("checkpoint_blob:*", CKPT, None),
                _p("checkpoint:*", CKPT, None),
                _p("write_keys_zset:*", INDEX, "zset"),
                _p("write_registry:*", INDEX, "zset"),
                _p("store_vectors:*", LTM, None),
                _p("store:*", LTM, None),
                _p("toolcache:*", CACHE, "hash"),
                _p("conversation_memory:*", HIST, "hash"),
            ),
            "langgraph-checkpoint-redis 0.5.2 checkpoint/redis/base.py, store/redis/base.py",
        ),
        Profile(
            "agent_memory_server",
            (
                _p("working_memory:migration:*", OTHER, "string"),
                _p("working_memory:*", HIST, None),
                _p("memory_idx:*", LTM, "hash"),
                _p("extraction_debounce:*", LOCK, "string"),
                _p("extraction_pending:*", LOCK, "string"),
                _p("summary_view:index", INDEX, "set"),
                _p("summary_view:*:summary:*", LTM, "string"),
                _p("summary_view:*", OTHER, "string"),
                _p("memory-server:*", OTHER, None),
            ),
            "agent-memory-server 0.15.2 agent_memory_server/utils/keys.py, working_memory.py",
        ),
        Profile(
            "mem0",
            (_p("mem0:*:*", LTM, "hash"),),
            "mem0ai 2.2.1 mem0/vector_stores/redis.py",
        ),
        Profile(
            "adk",
            (
                _p("session:*", HIST, "string"),
                _p("app::*", INDEX, "set"),
                _p("app:*", PREFS, "hash"),
                _p("user:*:*", PREFS, "hash"),
            ),
            "google-adk-community 0.5.0 sessions/redis_session_service.py (RedisSessionService)",
        ),
    )
}
"""Filled from the libraries' sources; docs/profiles.md cites each."""


LUA_MAGIC: Final = frozenset("^$()%.[]*+-?")
LUA_ONE_CHAR: Final = b"[%z\x01-\x7f\xc2-\xf4][\x80-\xbf]*"
"""One UTF-8 character (a lead byte and its continuation bytes): what ``?`` means in the
Python classifier, which matches decoded key names."""


def glob_lua(glob: str) -> bytes:
    """The anchored Lua pattern of a glob, as the sampler's script matches key names (bytes,
    sent as an argument): ``*`` any run of bytes, ``?`` one UTF-8 character, the rest literal
    with Lua's magic characters escaped."""
    out = [b"^"]
    for char in glob:
        if char == "*":
            out.append(b".*")
        elif char == "?":
            out.append(LUA_ONE_CHAR)
        elif char in LUA_MAGIC:
            out.append(b"%" + char.encode())
        else:
            out.append(char.encode())
    out.append(b"$")
    return b"".join(out)


def glob_regex(glob: str) -> str:
    """The regex of a glob: ``*`` any run of characters, ``?`` one, the rest literal."""
    out = []
    for char in glob:
        out.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
    return "".join(out)


class Classifier:
    """Key name -> `Match`: the memorywatch schema under `namespace` first, then the
    profiles in order (the first pattern that matches wins); None when no profile claims
    the key. One compiled alternation for all patterns, so a key costs one regex match."""

    def __init__(self, namespace: str, profiles: Sequence[Profile]) -> None:
        self.namespace = namespace
        self._prefix = namespace + ":"
        self.profiles = tuple(p for p in profiles if p.name != MEMORYWATCH)
        self._patterns: list[tuple[str, KeyPattern]] = [
            (profile.name, pattern) for profile in self.profiles for pattern in profile.patterns
        ]
        alternation = "|".join(
            f"(?P<g{i}>{glob_regex(pattern.glob)})" for i, (_, pattern) in enumerate(self._patterns)
        )
        self._regex = re.compile(alternation, re.DOTALL) if self._patterns else None

    @property
    def rules(self) -> tuple[tuple[str, KeyPattern], ...]:
        """(profile, pattern) in the order they are tried (the first match wins)."""
        return tuple(self._patterns)

    def classify(self, key: str) -> Match | None:
        if key.startswith(self._prefix):
            parsed = parse_key(key, self.namespace)
            if parsed is None:
                return Match(MEMORYWATCH, names.KEY_CLASS_OTHER, False, foreign=True)
            key_class, kind, redis_type = parsed
            return Match(MEMORYWATCH, key_class, needs_ttl(kind), redis_type, kind)
        if self._regex is None:
            return None
        found = self._regex.fullmatch(key)
        if found is None or found.lastgroup is None:
            return None
        profile, pattern = self._patterns[int(found.lastgroup[1:])]
        return Match(profile, pattern.key_class, pattern.ttl == TTL_REQUIRED, pattern.redis_type)


def _fail(where: str, message: str) -> ProfileError:
    return ProfileError(f"{where}: {message}")


def _pattern(raw: Any, where: str) -> KeyPattern:
    if not isinstance(raw, Mapping):
        raise _fail(where, "each pattern is a mapping with match, class and ttl")
    unknown = sorted(set(raw) - {"match", "class", "ttl", "type"})
    if unknown:
        raise _fail(where, f"unknown key {unknown[0]!r} (known: class, match, ttl, type)")
    glob = raw.get("match")
    if not isinstance(glob, str) or not glob or len(glob) > 256 or not glob.isprintable():
        raise _fail(where, "match must be a printable glob of 1 to 256 characters")
    if glob.strip("*?") == "":
        raise _fail(where, f"match {glob!r} would claim every key: give it a literal part")
    key_class = raw.get("class")
    if key_class not in names.KEY_CLASSES:
        raise _fail(where, f"class {key_class!r} is not one of {', '.join(names.KEY_CLASSES)}")
    ttl = raw.get("ttl", TTL_OPTIONAL)
    if ttl not in TTL_RULES:
        raise _fail(where, f"ttl {ttl!r} is not one of {', '.join(TTL_RULES)}")
    redis_type = raw.get("type")
    types = ("string", "hash", "list", "set", "zset", "stream", "ReJSON-RL")
    if redis_type is not None and redis_type not in types:
        raise _fail(where, f"type {redis_type!r} is not one of {', '.join(types)}")
    return KeyPattern(glob, str(key_class), str(ttl), redis_type)


def parse_profiles(document: Any, where: str) -> tuple[Profile, ...]:
    """Profiles from a YAML document: ``profiles: [{name, patterns: [{match, class, ttl}]}]``."""
    if not isinstance(document, Mapping) or set(document) != {"profiles"}:
        raise _fail(where, "the file holds one key, profiles, a list of profiles")
    raw_profiles = document["profiles"]
    if not isinstance(raw_profiles, list) or not raw_profiles:
        raise _fail(where, "profiles must be a non-empty list")
    if len(raw_profiles) > MAX_FILE_PROFILES:
        raise _fail(where, f"at most {MAX_FILE_PROFILES} profiles per file")
    out: list[Profile] = []
    for index, raw in enumerate(raw_profiles):
        at = f"{where}: profiles[{index}]"
        if not isinstance(raw, Mapping) or set(raw) - {"name", "patterns", "source"}:
            raise ProfileError(f"{at}: a profile has name, patterns and optionally source")
        name = raw.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ProfileError(f"{at}: name must match [a-z][a-z0-9_]{{0,31}}")
        if name in BUILTIN or name == names.PROFILE_NONE or name in {p.name for p in out}:
            raise ProfileError(f"{at}: name {name!r} is taken")
        patterns = raw.get("patterns")
        if not isinstance(patterns, list) or not 1 <= len(patterns) <= MAX_PATTERNS:
            raise ProfileError(f"{at}: patterns must be a list of 1 to {MAX_PATTERNS}")
        parsed = tuple(_pattern(p, f"{at}.patterns[{i}]") for i, p in enumerate(patterns))
        out.append(Profile(name, parsed, str(raw.get("source", where))))
    return tuple(out)


def load_file(path: Path) -> tuple[Profile, ...]:
    source = f"--key-profile-file {path}"
    return parse_profiles(load_yaml(path, source, ProfileError), source)


def resolve(
    chosen: Sequence[str], files: Sequence[Path]
) -> tuple[tuple[Profile, ...], tuple[str, ...]]:
    """Every known profile (files' first, then the built-ins) and the chosen names, checked."""
    from_files: list[Profile] = []
    for path in files:
        for profile in load_file(path):
            if profile.name in {p.name for p in from_files}:
                raise ProfileError(
                    f"--key-profile-file {path}: profile {profile.name!r} is defined twice"
                )
            from_files.append(profile)
    known = (*from_files, *BUILTIN.values())
    known_names = [p.name for p in known]
    for name in chosen:
        if name not in known_names:
            raise ProfileError(
                f"--key-profile {name!r}: not a profile (known: {', '.join(known_names)})"
            )
    return known, tuple(dict.fromkeys(chosen))
