"""Help epilogs that show what is available here: built-in configs and env.toml profiles."""

from __future__ import annotations

from nemotron.stages.catalog import StageSpec


def available_configs(stage: StageSpec) -> str:
    try:
        names = sorted(p.stem for p in stage.config_dir.glob("*.yaml"))
    except OSError:
        names = []
    return ", ".join(names) or "(none found)"


def available_profiles() -> str:
    """Profiles of the env.toml that would be used, or why there are none (never raises)."""
    from nemotron.env import EnvError, find_env_file, load_env_file

    try:
        path = find_env_file()
        if path is None:
            return "(no env.toml found; see env.toml.example)"
        env_file = load_env_file(path)
    except EnvError as err:
        return f"(env.toml has an error: {err})"
    names = [f"{name} ({p.executor})" for name, p in env_file.profiles.items()]
    return f"{', '.join(names) or '(none)'} from {path}"
