"""Safe YAML reading that remembers where every value came from.

A :class:`Document` is plain data (dicts, lists, scalars) plus, for every
path into it, the file and line it was read from. That is what lets a
validation error deep inside a scenario say ``scenario.yaml:14: pools.gpu.count``.

Only YAML's safe tags are accepted: a ``!!python/object`` tag, or any other
tag that would construct an object, is an error. Every size is bounded before
it costs much: a file's bytes before it is parsed; its nodes, the entries of one
list or mapping and the depth of nesting while PyYAML composes them (so a file
holding a million-item list fails at the item past the limit); and the values
that aliases and merge keys expand to, so a "billion laughs" document fails fast
instead of eating memory.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from accelsim.errors import ConfigError

Path_ = tuple[str | int, ...]

MAX_FILE_BYTES = 2**20  # a config file, read as bytes before anything is parsed
MAX_WRITTEN_NODES = 20_000  # nodes as written (aliases included), counted while composing
MAX_ITEMS = 5_000  # entries of one list or mapping
MAX_NODES = 200_000  # values once aliases and merge keys are expanded
MAX_DEPTH = 64

_SAFE_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}


@dataclass(frozen=True)
class Loc:
    source: str
    line: int | None


@dataclass
class Document:
    """Data read from YAML with the location of every path in it."""

    data: Any
    locs: dict[Path_, Loc] = field(default_factory=dict)
    source: str = "<memory>"

    def loc(self, path: Path_) -> Loc:
        """The location of the deepest known prefix of ``path``."""
        for end in range(len(path), -1, -1):
            found = self.locs.get(tuple(path[:end]))
            if found is not None:
                return found
        return Loc(self.source, None)


def dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path)


def read_text(path: Path) -> str:
    """Read a config file as UTF-8, with errors that name the file. Only regular files are
    read, and never more than MAX_FILE_BYTES (so a device or a FIFO cannot exhaust memory)."""
    source = str(path)
    try:
        if path.is_dir():
            raise ConfigError.single(source, "is a directory, expected a YAML file")
        if not path.exists():
            raise ConfigError.single(source, "file not found")
        if not path.is_file():
            raise ConfigError.single(source, "is not a regular file")
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError.single(source, f"cannot read: {reason}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError.single(
            source, f"larger than {MAX_FILE_BYTES} bytes, too big for a config"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError.single(
            source, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})", line=line
        ) from None


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting while it composes: the node past MAX_WRITTEN_NODES,
    the entry past MAX_ITEMS in one list or mapping, or a node nested deeper than
    MAX_DEPTH is an error at its line, before the rest of the document is read."""

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source
        self.nodes = 0
        self.depth = 0

    def _limit(self, message: str) -> ConfigError:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1
        return ConfigError.single(self.source, message, line=line)

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self.nodes += 1
        if self.nodes > MAX_WRITTEN_NODES:
            raise self._limit(f"holds more than {MAX_WRITTEN_NODES} values, too many for a config")
        if isinstance(parent, SequenceNode) and index >= MAX_ITEMS:
            raise self._limit(f"a list of more than {MAX_ITEMS} items, too long for a config")
        if isinstance(parent, MappingNode) and index is None and len(parent.value) >= MAX_ITEMS:
            raise self._limit(f"a mapping of more than {MAX_ITEMS} keys, too long for a config")
        if self.check_event(AliasEvent):
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self._limit(f"nested deeper than {MAX_DEPTH} levels")
        node = super().compose_node(parent, index)
        self.depth -= 1
        return node


def parse_yaml(text: str, source: str) -> Document:
    """Parse YAML text into a :class:`Document`; every failure is a ConfigError."""
    try:
        loader = _BoundedLoader(text, source)
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, source) from None
    try:
        try:
            node = loader.get_single_node()
        except yaml.reader.ReaderError as exc:
            raise _reader_error(exc, text, source) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            reason = exc.problem or exc.context or "malformed YAML"
            raise ConfigError.single(source, f"invalid YAML: {reason}", line=line) from None
        except yaml.YAMLError as exc:
            raise ConfigError.single(source, f"invalid YAML: {exc}") from None
        except RecursionError:
            raise ConfigError.single(
                source, f"invalid YAML: nested deeper than {MAX_DEPTH} levels"
            ) from None
        if node is None:
            return Document({}, {(): Loc(source, 1)}, source)
        builder = _Builder(loader, source)
        data = builder.build(node, (), 0)
        return Document(data, builder.locs, source)
    finally:
        loader.dispose()


def _reader_error(exc: yaml.reader.ReaderError, text: str, source: str) -> ConfigError:
    position = max(0, min(int(exc.position), len(text)))
    line = text[:position].count("\n") + 1
    return ConfigError.single(
        source, f"invalid YAML: character {exc.character!r} is not allowed", line=line
    )


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, source: str) -> None:
        self.loader = loader
        self.source = source
        self.locs: dict[Path_, Loc] = {}
        self.count = 0

    def fail(self, node: Node, message: str, path: Path_) -> ConfigError:
        return ConfigError.single(
            self.source, message, line=node.start_mark.line + 1, field=dotted(path)
        )

    def build(self, node: Node, path: Path_, depth: int, line: int | None = None) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(node, f"document expands to more than {MAX_NODES} values", path)
        if depth > MAX_DEPTH:
            raise self.fail(node, f"nested deeper than {MAX_DEPTH} levels", path)
        self.locs[path] = Loc(self.source, line or node.start_mark.line + 1)
        if isinstance(node, MappingNode):
            if node.tag != "tag:yaml.org,2002:map":
                raise self.fail(node, f"tag {node.tag!r} is not allowed", path)
            # Merge keys (<<) are expanded here, not by PyYAML, so that every merged
            # value counts against MAX_NODES: a nested-merge bomb fails fast.
            merged: dict[str, Any] = {}
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    sources = (
                        value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                    )
                    for source in sources:
                        if not isinstance(source, MappingNode):
                            raise self.fail(source, "a merge (<<) takes mappings only", path)
                        for key, value in self.build(source, path, depth + 1).items():
                            merged.setdefault(key, value)  # earlier sources win
                    continue
                if not isinstance(key_node, ScalarNode):
                    raise self.fail(key_node, "mapping keys must be plain scalars", path)
                key = self.scalar(key_node, path)
                if not isinstance(key, str | int | float | bool) or key is None:
                    raise self.fail(key_node, f"unusable key {key!r}", path)
                key = str(key)
                if key in out:
                    raise self.fail(key_node, f"duplicate key {key!r}", (*path, key))
                out[key] = self.build(
                    value_node, (*path, key), depth + 1, key_node.start_mark.line + 1
                )
            self.locs[path] = Loc(self.source, line or node.start_mark.line + 1)
            # The mapping's own keys override merged ones.
            return {**merged, **out}
        if isinstance(node, SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                raise self.fail(node, f"tag {node.tag!r} is not allowed", path)
            return [self.build(v, (*path, i), depth + 1) for i, v in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        return self.scalar(node, path)

    def scalar(self, node: ScalarNode, path: Path_) -> Any:
        if node.tag not in _SAFE_SCALAR_TAGS:
            raise self.fail(node, f"tag {node.tag!r} is not allowed", path)
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError, KeyError, TypeError) as exc:
            reason = (
                exc if not isinstance(exc, KeyError) else f"not a {node.tag.rsplit(':', 1)[-1]}"
            )
            raise self.fail(node, f"cannot read value: {reason}", path) from None


def load_yaml(path: Path) -> Document:
    return parse_yaml(read_text(path), str(path))


def merge(base: Document, over: Document) -> Document:
    """Deep-merge ``over`` onto ``base``: mappings merge key by key, anything else replaces."""

    locs = dict(base.locs)

    def go(a: Any, b: Any, path: Path_) -> Any:
        if isinstance(a, dict) and isinstance(b, dict):
            out = dict(a)
            for key, value in b.items():
                out[key] = go(a[key], value, (*path, key)) if key in a else value
                if key not in a or not (isinstance(a[key], dict) and isinstance(value, dict)):
                    _replace_locs(locs, over.locs, (*path, key))
            return out
        return b

    data = go(copy.deepcopy(base.data), copy.deepcopy(over.data), ())
    locs[()] = over.locs.get((), Loc(over.source, None))
    return Document(data, locs, over.source)


def _replace_locs(locs: dict[Path_, Loc], new: dict[Path_, Loc], prefix: Path_) -> None:
    n = len(prefix)
    for key in [k for k in locs if k[:n] == prefix]:
        del locs[key]
    for key, value in new.items():
        if key[:n] == prefix:
            locs[key] = value


def split_assignment(assignment: str) -> tuple[list[str], str]:
    """The field path (split at dots) and the value text of a ``dotted.path=value``
    override; a malformed one is a ConfigError blamed on ``--set``."""
    source = f"--set {assignment}"
    if "=" not in assignment:
        raise ConfigError.single(source, "expected PATH=VALUE, e.g. simulation.seed=7")
    path_text, _, value_text = assignment.partition("=")
    parts = path_text.strip().split(".")
    if not path_text.strip() or any(not p for p in parts):
        raise ConfigError.single(source, f"bad field path {path_text!r}")
    return parts, value_text


def apply_override(doc: Document, assignment: str) -> Document:
    """Apply one ``dotted.path=value`` override; the value is read as YAML. Every node the
    override creates or replaces is located at ``--set PATH=VALUE``, so an error in it is
    blamed on the override, not on the file."""
    source = f"--set {assignment}"
    parts, value_text = split_assignment(assignment)
    value_doc = parse_yaml(value_text, source)
    data = copy.deepcopy(doc.data)
    if not isinstance(data, dict):
        raise ConfigError.single(source, "the document is not a mapping")
    node: Any = data
    path: list[str | int] = []
    created: Path_ | None = None
    for i, part in enumerate(parts):
        key: str | int = part
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError.single(
                    source, f"no list item {part!r}", field=dotted(tuple(path))
                )
            key = int(part)
        elif not isinstance(node, dict):
            raise ConfigError.single(source, "is not a mapping", field=dotted(tuple(path)))
        if i == len(parts) - 1:
            node[key] = value_doc.data
        else:
            if isinstance(node, dict) and not isinstance(node.get(key), dict | list):
                node[key] = {}
                created = created or (*path, key)
            node = node[key]
        path.append(key)
    full: Path_ = tuple(path)
    # The first node the override created (or else the field it sets) and all below it.
    replaced = created if created is not None else full
    locs = dict(doc.locs)
    _replace_locs(locs, {replaced: Loc(source, None)}, replaced)
    return Document(data, locs, doc.source)
