"""File helpers shared by every command: atomic writes and strict YAML/JSON loading with one-line errors.

Loading is strict on purpose (hostile or mistyped files fail before anything is computed or written):

* YAML is read as YAML 1.2 core scalars (``true``/``false``, decimal integers, decimal floats incl. ``1e-3``,
  ``.inf``/``.nan``, ``null``); everything else is text. A plain scalar that YAML 1.1 would read differently
  (``1:00`` = 60, ``yes``/``no``/``on``/``off``, ``010`` = 8, ``0x1F``, ``1_000``) is refused, naming the field.
* YAML anchors and aliases (``&a`` / ``*a``, the "billion laughs" expansion) and tags other than the plain
  ``!!str``/``!!int``/``!!float``/``!!bool``/``!!null``/``!!seq``/``!!map`` are refused.
* Duplicate keys (YAML and JSON), nesting deeper than :data:`MAX_DEPTH`, integers with more than
  :data:`MAX_INT_DIGITS` digits (YAML; Python's own 4300 for JSON) and files over :data:`MAX_FILE_BYTES` are
  refused.

NaN and infinities are loaded as floats so that the schemas can name the field and its valid range;
:func:`check_plain` bounds free-form values (sizes, depth, plain types, finite numbers) before they are reused.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from itertools import accumulate
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from jaq.errors import JaqError

#: Deepest nesting of mappings/lists accepted in a loaded file (jaq's own files nest about 8 levels).
MAX_DEPTH = 64
#: Longest integer literal accepted in YAML, in digits (below Python's 4300-digit conversion limit, which JSON
#: meets; the schemas then name the field and its range).
MAX_INT_DIGITS = 4000
#: Largest file :func:`load_json` / :func:`load_yaml` read (bytes).
MAX_FILE_BYTES = 256 << 20


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename). The file gets the
    permissions an ordinary ``open(path, "w")`` would (0666 less the umask), not the temp file's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------------------------------------------

def _read_text(path: Path) -> str:
    """The UTF-8 text of ``path``; missing, oversized or non-UTF-8 files are one-line errors."""
    if not path.is_file():
        raise JaqError(f"file not found: {path} (check the path)")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise JaqError(f"{path} is {size} bytes; jaq reads files up to {MAX_FILE_BYTES} bytes")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise JaqError(f"{path} is not a UTF-8 text file") from None


def _join(where: str, key: Any) -> str:
    """Dotted path of ``key`` below ``where`` (``a.b``, ``a[3]``)."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else str(key)


def _short(where: str, limit: int = 60) -> str:
    """``where`` cut to ``limit`` characters for a one-line message (deep paths run to thousands)."""
    return where if len(where) <= limit else where[:limit] + "..."


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _json_nesting(text: str) -> int:
    """Deepest nesting of JSON text (strings skipped; regex + accumulate at C speed, no recursion)."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


def _check_json_nesting(text: str, source: Path) -> None:
    """Refuse JSON text nested deeper than :data:`MAX_DEPTH` before parsing it (the parser would recurse)."""
    if _json_nesting(text) <= MAX_DEPTH:
        return
    depth = 0
    for m in _JSON_TOKEN.finditer(text):  # locate the first level too deep
        depth += _BRACKET_STEP.get(m.group(), 0)
        if depth > MAX_DEPTH:
            line = text.count("\n", 0, m.start()) + 1
            col = m.start() - text.rfind("\n", 0, m.start())
            raise JaqError(f"nested deeper than {MAX_DEPTH} levels in {source} (line {line} column {col}); "
                           f"jaq's files are flat records")


class _DuplicateKey(Exception):
    def __init__(self, key: str):
        self.key = key


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for k, v in pairs:
        if k in d:
            raise _DuplicateKey(k)
        d[k] = v
    return d


def load_json(path: str | os.PathLike) -> Any:
    """Load a JSON file; a missing, malformed or hostile file (see the module docstring) is a one-line
    :class:`JaqError`."""
    path = Path(path)
    text = _read_text(path)
    _check_json_nesting(text, path)
    try:
        obj = json.loads(text, object_pairs_hook=_json_object)
    except json.JSONDecodeError as e:
        raise JaqError(f"malformed JSON in {path} at line {e.lineno} column {e.colno}: {e.msg}") from None
    except _DuplicateKey as e:
        raise JaqError(f"duplicate key {e.key!r} in {path}: give each key once per object") from None
    except ValueError as e:  # Python's own limit on integer literals (4300 digits)
        raise JaqError(f"number too long in {path}: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise JaqError(f"nested deeper than {MAX_DEPTH} levels in {path}; jaq's files are flat records") from None
    return obj


# -- strict YAML ------------------------------------------------------------------------------------------------

_T = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL, _SEQ, _MAP = (_T + n for n in ("str", "int", "float", "bool", "null", "seq",
                                                                "map"))
#: YAML 1.2 core schema scalars (decimal only; no leading zeros, no underscores, no base 60).
_CORE = [
    (_NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), list("~nN") + [""]),
    (_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")),
    (_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")),
    (_FLOAT, re.compile(r"^(?:[-+]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
                        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+0123456789.")),
]
_YAML11 = yaml.resolver.Resolver()


class _Refused(yaml.YAMLError):
    """A YAML construct jaq does not accept; ``where`` is the dotted path of the value."""

    def __init__(self, problem: str, where: str, mark):
        self.problem, self.where, self.mark = problem, _short(where), mark


def _tag_name(tag: str) -> str:
    """``tag:yaml.org,2002:binary`` -> ``!!binary`` (as written in the file)."""
    return "!!" + tag[len(_T):] if tag.startswith(_T) else tag


def _core_tag(value: str) -> str:
    for tag, rx, _ in _CORE:
        if rx.match(value):
            return tag
    return _STR


def _plain_value(value: str, tag: str) -> Any:
    """The Python value of a scalar already checked against the core regexes."""
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return value.lower() == "true"
    if tag == _INT:
        return int(value)
    if tag == _FLOAT:
        low = value.lower()
        if low.endswith(".inf"):
            return -math.inf if low.startswith("-") else math.inf
        if low == ".nan":
            return math.nan
        return float(value)
    return value


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalars, no anchors/aliases, no other tags, no duplicate keys, bounded
    depth; every refusal names the dotted path of the value (see the module docstring)."""

    yaml_implicit_resolvers: dict = {}
    yaml_constructors: dict = {}

    def __init__(self, stream):
        super().__init__(stream)
        self._path: list[Any] = []

    def _where(self) -> str:
        where = ""
        for k in self._path:
            where = _join(where, k)
        return where

    def _refuse(self, problem: str, mark) -> None:
        raise _Refused(problem, self._where(), mark)

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._refuse(f"YAML alias *{event.anchor} refused: jaq does not expand anchors/aliases (write the value "
                         f"out)", event.start_mark)
        if event.anchor is not None:
            self._refuse(f"YAML anchor &{event.anchor} refused: jaq does not expand anchors/aliases (remove it)",
                         event.start_mark)
        if len(self._path) >= MAX_DEPTH:
            self._refuse(f"nested deeper than {MAX_DEPTH} levels; jaq's files are flat records", event.start_mark)
        if isinstance(event, yaml.ScalarEvent):
            node = self.compose_scalar_node(None)
            self._check_scalar(node, event)
            return node
        return super().compose_node(parent, index)

    def _check_scalar(self, node: ScalarNode, event) -> None:
        """Refuse tags other than the core ones, scalars YAML 1.1 reads differently, over-long integers."""
        if node.tag not in (_STR, _INT, _FLOAT, _BOOL, _NULL):
            self._refuse(f"YAML tag {_tag_name(node.tag)} refused (use plain values)", node.start_mark)
        if node.tag != _STR and _core_tag(node.value) != node.tag:
            self._refuse(f"{node.value!r} is not a valid {node.tag[len(_T):]} (write a plain decimal value)",
                         node.start_mark)
        if event.implicit[0] and node.tag == _STR:
            old = _YAML11.resolve(ScalarNode, node.value, (True, False))
            if old in (_INT, _FLOAT, _BOOL):
                v11 = yaml.safe_load(node.value)
                hint = "true or false" if old == _BOOL else "the number in plain decimal (no leading 0, ':' or '_')"
                self._refuse(f"{node.value} is ambiguous: YAML 1.1 reads it as {v11!r}, jaq (YAML 1.2) as text; "
                             f"write {hint}, or quote it for text", node.start_mark)
        if node.tag == _INT and len(node.value.lstrip("+-")) > MAX_INT_DIGITS:
            self._refuse(f"integer with {len(node.value)} digits; jaq accepts at most {MAX_INT_DIGITS}",
                         node.start_mark)

    def compose_sequence_node(self, anchor):
        start = self.get_event()
        tag = start.tag if start.tag not in (None, "!") else _SEQ
        if tag != _SEQ:
            self._refuse(f"YAML tag {_tag_name(tag)} refused (use plain lists)", start.start_mark)
        node = SequenceNode(tag, [], start.start_mark, None, flow_style=start.flow_style)
        while not self.check_event(yaml.SequenceEndEvent):
            self._path.append(len(node.value))
            node.value.append(self.compose_node(node, len(node.value)))
            self._path.pop()
        node.end_mark = self.get_event().end_mark
        return node

    def compose_mapping_node(self, anchor):
        start = self.get_event()
        tag = start.tag if start.tag not in (None, "!") else _MAP
        if tag != _MAP:
            self._refuse(f"YAML tag {_tag_name(tag)} refused (use plain mappings)", start.start_mark)
        node = MappingNode(tag, [], start.start_mark, None, flow_style=start.flow_style)
        seen: set[tuple[str, str]] = set()
        while not self.check_event(yaml.MappingEndEvent):
            key_event = self.peek_event()
            key = self.compose_node(node, None)
            if not isinstance(key, ScalarNode):
                self._refuse("mapping keys must be plain names", key_event.start_mark)
            if (key.tag, key.value) in seen:
                self._path.append(key.value)
                self._refuse(f"duplicate key {key.value!r}: give each key once per mapping", key.start_mark)
            seen.add((key.tag, key.value))
            self._path.append(key.value)
            value = self.compose_node(node, key)
            self._path.pop()
            node.value.append((key, value))
        node.end_mark = self.get_event().end_mark
        return node

    def construct_scalar_value(self, node: ScalarNode) -> Any:
        return _plain_value(node.value, node.tag)

    def construct_plain_map(self, node: MappingNode):
        data: dict[Any, Any] = {}
        yield data
        for k, v in node.value:
            data[self.construct_object(k)] = self.construct_object(v)


for _tag, _rx, _first in _CORE:
    _StrictLoader.add_implicit_resolver(_tag, _rx, _first)
for _tag in (_STR, _INT, _FLOAT, _BOOL, _NULL):
    _StrictLoader.add_constructor(_tag, _StrictLoader.construct_scalar_value)
_StrictLoader.add_constructor(_SEQ, yaml.SafeLoader.construct_yaml_seq)
_StrictLoader.add_constructor(_MAP, _StrictLoader.construct_plain_map)


def load_yaml(path: str | os.PathLike) -> Any:
    """Load a YAML file strictly (see the module docstring); every problem is a one-line :class:`JaqError`."""
    path = Path(path)
    text = _read_text(path)
    loader = _StrictLoader(text)
    try:
        obj = loader.get_single_data()
    except _Refused as e:
        where = f" (line {e.mark.line + 1} column {e.mark.column + 1})" if e.mark is not None else ""
        raise JaqError(f"{e.problem} in {path}{where}", e.where or None) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        context = getattr(e, "context", None)
        problem = f"{context}, {problem}" if context else problem
        raise JaqError(f"malformed YAML in {path}{where}: {problem}") from None
    except RecursionError:
        raise JaqError(f"nested deeper than {MAX_DEPTH} levels in {path}; jaq's files are flat records") from None
    finally:
        loader.dispose()
    return obj


class _StrictDumper(yaml.SafeDumper):
    """SafeDumper whose output :func:`load_yaml` reads back unchanged: no anchors/aliases, and text that either
    YAML 1.1 or YAML 1.2 would read as a number/bool/null (``yes``, ``1e5``, ``010``) is quoted."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def resolve(self, kind, value, implicit):
        tag = super().resolve(kind, value, implicit)
        if kind is ScalarNode and implicit[0] and _core_tag(value) != tag:
            return _T + "ambiguous"  # differs from the node's tag, so the emitter quotes the text
        return tag


def dump_yaml(obj: Any) -> str:
    """YAML text of plain data (keys in insertion order) that :func:`load_yaml` loads back equal to ``obj``."""
    return yaml.dump(obj, Dumper=_StrictDumper, sort_keys=False, allow_unicode=True)


# ---------------------------------------------------------------------------------------------------------------
# Free-form values
# ---------------------------------------------------------------------------------------------------------------

def check_plain(value: Any, where: str, *, max_items: int = 100_000, max_depth: int = 16,
                max_str: int = 65_536) -> Any:
    """A plain copy of a free-form value (``scales``, ``provenance.extra``, ``space``...) after checking it:
    only mappings with text keys, lists, text, booleans, null, 64-bit integers and finite floats; at most
    ``max_items`` values in all, ``max_depth`` levels and ``max_str`` characters per text. Problems are one-line
    :class:`JaqError` naming the dotted field."""
    count = [0]

    def walk(v: Any, at: str, depth: int) -> Any:
        count[0] += 1
        if count[0] > max_items:
            raise JaqError(f"more than {max_items} values; this field holds small records only", where)
        if depth > max_depth:
            raise JaqError(f"nested deeper than {max_depth} levels", _short(at))
        if v is None or isinstance(v, bool):
            return v
        if isinstance(v, int):
            if not -(1 << 63) <= v < (1 << 63):
                raise JaqError(f"a {v.bit_length()}-bit integer; integers here must fit 64 bits", at)
            return int(v)
        if isinstance(v, float):
            if not math.isfinite(v):
                raise JaqError(f"{v} is not a finite number", at)
            return float(v)
        if isinstance(v, str):
            if len(v) > max_str:
                raise JaqError(f"text of {len(v)} characters; at most {max_str}", at)
            return str(v)
        if isinstance(v, dict):
            out = {}
            for k, c in v.items():
                if not isinstance(k, str) or len(k) > 256:
                    raise JaqError(f"keys must be text of at most 256 characters, got {str(k)[:40]!r}", at)
                out[k] = walk(c, _join(at, k), depth + 1)
            return out
        if isinstance(v, (list, tuple)):
            return [walk(c, f"{at}[{i}]", depth + 1) for i, c in enumerate(v)]
        raise JaqError(f"expected plain data (mapping, list, text, number, true/false, null), got "
                       f"{type(v).__name__}", at)

    return walk(value, where, 0)


def load_structured(path: str | os.PathLike) -> Any:
    """Load ``.json`` as JSON and anything else as YAML."""
    return load_json(path) if str(path).endswith(".json") else load_yaml(path)
