"""Run configuration: dataclasses (:mod:`.schema`) parsed strictly from YAML (:mod:`.parse`).

Unknown keys, wrong types, NaN, infinities and out-of-range numbers are errors
naming the key path (``stage1.lr``) and the fix; every problem of a config is
reported at once.
"""

from .parse import (
    apply_overrides,
    build,
    config_to_dict,
    load_config,
    numeric_fields,
    parse_config,
    parse_config_lenient,
    read_config_data,
    variant_config,
)
from .schema import (
    VARIANT_FIXED,
    BenchConfig,
    ConfigError,
    DataConfig,
    ModelConfig,
    PlanConfig,
    Range,
    RunConfig,
    RungConfig,
    Stage1Config,
    Stage2Config,
    TeacherConfig,
)

__all__ = [
    "ConfigError", "DataConfig", "ModelConfig", "TeacherConfig", "Stage1Config", "Stage2Config", "RungConfig",
    "RunConfig", "BenchConfig", "PlanConfig", "Range", "VARIANT_FIXED", "load_config", "parse_config",
    "parse_config_lenient", "read_config_data", "apply_overrides", "config_to_dict", "variant_config", "build",
    "numeric_fields",
]
