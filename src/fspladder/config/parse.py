"""Strict parsing of configs: YAML and ``--set`` overrides into the dataclasses of :mod:`.schema`.

Every problem is collected and reported at once, each naming its key path
(``stage1.lr``) and what would fix it: unknown keys (with the closest known
one), wrong types, NaN and infinities, values out of a key's range.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from ..names import safe_name
from .schema import ConfigError, Range, RunConfig, RungConfig

__all__ = ["build", "parse_config", "parse_config_lenient", "read_config_data", "apply_overrides", "config_to_dict",
           "variant_config", "load_config", "numeric_fields"]


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
        return _literal_ok(value, typing.get_args(tp)), value
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
    if isinstance(obj, RungConfig) and not obj.name:
        obj.name = safe_name(obj.model)  # a file name too: 'pkg.module:factory' names its rung pkg.module-factory
    # Fields with a problem kept their defaults, so the cross-key checks stay meaningful.
    check = getattr(obj, "_check", None)
    if check is not None:
        check(path, err)
    return obj


def parse_config(data: dict[str, Any] | None) -> RunConfig:
    """Build a :class:`RunConfig` from a plain mapping; raises :class:`ConfigError` listing all problems."""
    cfg, err = parse_config_lenient(data)
    if err:
        raise ConfigError(err)
    return cfg


def parse_config_lenient(data: dict[str, Any] | None) -> tuple[RunConfig, list[str]]:
    """Like :func:`parse_config` but returns the problems; fields with problems keep their defaults."""
    err: list[str] = []
    return build(RunConfig, data or {}, "", err), err


def read_config_data(path: str | Path | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """The raw mapping of a YAML config file (empty for None) with ``--set`` overrides applied."""
    data: dict[str, Any] = {}
    if path is not None:
        if str(path) == "":
            raise ConfigError(["the config file name is empty; give a YAML file, or leave it out for the default"])
        path = Path(path)
        if not path.is_file():
            hint = " (it is a folder: give the YAML file inside it)" if path.is_dir() else ""
            raise ConfigError([f"config file {path} does not exist{hint}"])
        try:
            loaded = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ConfigError([f"{path} is not a valid YAML text file: {e}"]) from e
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError([f"{path} must hold a mapping at top level, got {type(loaded).__name__}"])
        data = loaded or {}
    return apply_overrides(data, overrides or [])


def config_to_dict(cfg: Any) -> Any:
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (value parsed as YAML) to a raw config mapping.

    List items are addressed by index: ``rungs.1.model=resnet32``.
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
            node = _child(node, part, parts[: i + 1], data)
        last = parts[-1]
        if isinstance(node, list):
            node[_index(node, last, key)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError([f"--set {key}: {'.'.join(parts[:-1])} is {node!r}, not a mapping with keys"])
    return data


def _child(node: Any, part: str, walked: list[str], root: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, ".".join(walked))]
    if not isinstance(node, dict):
        raise ConfigError([f"--set {'.'.join(walked)}: {'.'.join(walked[:-1])} is {node!r}, not a mapping"])
    nxt = node.get(part)
    if nxt is None:
        if part in ("rungs",) and node is root:
            nxt = [config_to_dict(r) for r in RunConfig().rungs]
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


def variant_config(cfg: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """``cfg`` with ``{dotted.key: value}`` overrides applied (as ``--set`` would), parsed strictly."""
    items = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]  # JSON is valid YAML
    data = config_to_dict(cfg)
    data["bench"] = {**data["bench"], "variants": {}, "arm_budgets": {}}  # a variant's own config holds no variants
    return parse_config(apply_overrides(data, items))


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or the built-in default when ``path`` is None) and apply overrides."""
    return parse_config(read_config_data(path, overrides))

