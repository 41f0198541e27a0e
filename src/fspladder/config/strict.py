"""The strict builder under the run configuration: a dataclass from a plain mapping, every problem listed.

Knows no key of the schema (:mod:`.schema` declares them with :func:`num`, and ``_check`` methods for what
relates keys to each other); :mod:`.parse` reads YAML and ``--set`` overrides into :func:`build`. Both use
this module, so neither imports the other's way back.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from ..errors import ProblemsError

__all__ = ["ConfigError", "Range", "num", "build", "numeric_fields", "config_to_dict", "apply_overrides"]


class ConfigError(ProblemsError):
    """One or more problems in a configuration; ``problems`` lists them all."""

    heading = "invalid configuration"


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric key (each item of a list key): finite, ``lo <= v <= hi`` (or ``<`` where open)."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def holds(self, v: float) -> bool:
        if not math.isfinite(v):
            return False
        return (v > self.lo if self.lo_open else v >= self.lo) and (v < self.hi if self.hi_open else v <= self.hi)

    def __str__(self) -> str:
        def fmt(x: float) -> str:
            return f"{x:g}" if abs(x) < 1e6 else f"{x:.0e}"

        return (f"a finite number in {'(' if self.lo_open else '['}{fmt(self.lo)}, "
                f"{fmt(self.hi)}{')' if self.hi_open else ']'}")


def num(default: Any, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Any:
    """A numeric config field with its allowed range (for a list, of each item)."""
    kw = {"default_factory": lambda: list(default)} if isinstance(default, list) else {"default": default}
    return field(metadata={"range": Range(lo, hi, lo_open, hi_open)}, **kw)



def _literal_ok(value: Any, options: tuple) -> bool:
    # `1 in (True, False)` holds in Python; a config's 1 is not its true, so compare types too.
    return any(value == o and type(value) is type(o) for o in options)


def _type_ok(value: Any, tp: Any) -> tuple[bool, Any]:
    """Check ``value`` against annotation ``tp``; returns (ok, converted value)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, v = _type_ok(value, arg)
            if ok:
                return True, v
        return False, value
    if tp is type(None):
        return value is None, value
    if origin is Literal:
        opts = typing.get_args(tp)
        if _literal_ok(value, opts):
            return True, value
        # YAML 1.1 (PyYAML) reads an unquoted off / on as false / true: where the option is that word, the user
        # typed the word (`--set amp=off`), so it is taken as written
        word = {False: "off", True: "on"}.get(value) if isinstance(value, bool) else None
        return (True, word) if word in opts else (False, value)
    if origin is list:
        if not isinstance(value, list):
            return False, value
        (arg,) = typing.get_args(tp)
        out = []
        for v in value:
            ok, c = _type_ok(v, arg)
            if not ok:
                return False, value
            out.append(c)
        return True, out
    if origin is dict:
        return isinstance(value, dict), value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        if isinstance(value, str):  # PyYAML (YAML 1.1) reads 1e-3 without a dot as a string
            try:
                return True, float(value)
            except ValueError:
                pass
        return False, value
    if tp is str:
        return isinstance(value, str), value
    return isinstance(value, tp), value


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _range_problem(key_path: str, value: Any, rng: Range) -> str | None:
    """Non-finite or out-of-range numbers (each item of a list), named with the allowed range."""
    items = value if isinstance(value, list) else [value]
    bad = [v for v in items if isinstance(v, (int, float)) and not isinstance(v, bool) and not rng.holds(v)]
    if not bad:
        return None
    what = str(rng) if isinstance(bad[0], float) else str(rng).replace("a finite number", "an integer")
    if isinstance(value, list):
        return f"each item of {key_path} must be {what}, got {value!r}"
    return f"{key_path} must be {what}, got {value!r}"


def numeric_fields(cls: type) -> dict[str, Range]:
    """Every numeric field of dataclass ``cls`` and its range (the property tests use this to cover them all)."""
    return {f.name: f.metadata["range"] for f in dataclasses.fields(cls) if "range" in f.metadata}


def build(cls: type, data: Any, path: str, err: list[str]) -> Any:
    """Build dataclass ``cls`` from ``data``, appending every problem to ``err``."""
    where = path or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        err.append(f"{where} must be a mapping of keys to values, got {type(data).__name__}")
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in fields and key in getattr(cls, "REMOVED_KEYS", {}):
            if value is not None:  # an old resolved config's null is harmless and dropped
                err.append(f"{key_path}: {cls.REMOVED_KEYS[key]}")
            continue
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(fields)}"
            err.append(f"{key_path}: unknown key{hint}")
            continue
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = build(tp, value, key_path, err)
        elif typing.get_origin(tp) is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            if not isinstance(value, list):
                err.append(f"{key_path} must be a list, got {type(value).__name__}")
                continue
            item = typing.get_args(tp)[0]
            kwargs[key] = [build(item, v, f"{key_path}[{i}]", err) for i, v in enumerate(value)]
        else:
            ok, conv = _type_ok(value, tp)
            if not ok:
                err.append(f"{key_path} must be {_describe(tp)}, got {value!r}")
                continue
            rng = fields[key].metadata.get("range")
            problem = _range_problem(key_path, conv, rng) if rng is not None else None
            if problem:
                err.append(problem)
                continue
            kwargs[key] = conv
    obj = cls(**kwargs)
    # Fields with a problem kept their defaults, so the cross-key checks stay meaningful.
    check = getattr(obj, "_check", None)
    if check is not None:
        check(path, err)
    return obj


def config_to_dict(cfg: Any) -> Any:
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg


def apply_overrides(data: dict[str, Any], overrides: list[str],
                    defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (value parsed as YAML) to a raw config mapping.

    List items are addressed by index: ``rungs.1.model=resnet32``. ``defaults``: what a top-level key the
    mapping lacks holds when an override walks into it (the default rungs, so ``rungs.1.model`` edits them);
    any other missing key is an empty mapping.
    """
    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError([f"overrides must be a list of 'key=value' strings, e.g. ['stage2.epochs=5'], got "
                           f"{overrides!r}"])
    data = dict(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError([f"--set {item!r}: expected key=value, e.g. --set stage2.epochs=5"])
        try:
            value = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError as e:
            raise ConfigError([f"--set {item!r}: the value is not valid YAML ({e}); quote it"]) from e
        parts = key.split(".")
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            node = _child(node, part, parts[: i + 1], data, defaults or {})
        last = parts[-1]
        if isinstance(node, list):
            node[_index(node, last, key)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError([f"--set {key}: {'.'.join(parts[:-1])} is {node!r}, not a mapping with keys"])
    return data


def _child(node: Any, part: str, walked: list[str], root: dict[str, Any], defaults: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, ".".join(walked))]
    if not isinstance(node, dict):
        raise ConfigError([f"--set {'.'.join(walked)}: {'.'.join(walked[:-1])} is {node!r}, not a mapping"])
    nxt = node.get(part)
    if nxt is None:
        if part in defaults and node is root:
            nxt = defaults[part]
        else:
            nxt = {}
        node[part] = nxt
    elif isinstance(nxt, dict):
        nxt = dict(nxt)
        node[part] = nxt
    elif isinstance(nxt, list):
        nxt = [dict(x) if isinstance(x, dict) else x for x in nxt]
        node[part] = nxt
    return nxt


def _index(node: list[Any], part: str, key: str) -> int:
    try:
        i = int(part)
    except ValueError:
        raise ConfigError([f"--set {key}: {part!r} must be a list index (0..{len(node) - 1})"]) from None
    if not 0 <= i < len(node):
        raise ConfigError([f"--set {key}: index {i} is out of range (the list has {len(node)} items)"])
    return i
