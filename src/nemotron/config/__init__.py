"""Recipe configs: find and load YAML (with extends), apply overrides, validate into dataclasses."""

from nemotron.config.errors import ConfigError
from nemotron.config.overrides import apply_overrides
from nemotron.config.recipes import LoadedConfig, list_configs, load_config, resolve_config_path
from nemotron.config.resolved import resolved_container
from nemotron.config.schema import to_dataclass
from nemotron.config.yaml_loader import load_yaml_chain

__all__ = [
    "ConfigError",
    "LoadedConfig",
    "apply_overrides",
    "list_configs",
    "load_config",
    "load_yaml_chain",
    "resolve_config_path",
    "resolved_container",
    "to_dataclass",
]
