"""Strict parsing of configs: YAML and ``--set`` overrides into the dataclasses of :mod:`.schema`.

Every problem is collected and reported at once, each naming its key path
(``stage1.lr``) and what would fix it: unknown keys (with the closest known
one), wrong types, NaN and infinities, values out of a key's range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .schema import RunConfig, variant_config
from .strict import ConfigError, build, config_to_dict, numeric_fields
from .strict import apply_overrides as _apply_overrides

__all__ = ["build", "parse_config", "parse_config_lenient", "read_config_data", "apply_overrides", "config_to_dict",
           "variant_config", "load_config", "numeric_fields"]


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


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (value parsed as YAML) to a raw config mapping.

    List items are addressed by index: ``rungs.1.model=resnet32``; a mapping without ``rungs`` has the
    default ones, so an override can edit them.
    """
    return _apply_overrides(data, overrides, {"rungs": [config_to_dict(r) for r in RunConfig().rungs]})


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or the built-in default when ``path`` is None) and apply overrides."""
    return parse_config(read_config_data(path, overrides))

