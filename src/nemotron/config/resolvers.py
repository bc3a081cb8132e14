"""OmegaConf resolvers available in recipe configs: `${recipes:REL}` names a file shipped in recipes/."""

from __future__ import annotations

_REGISTERED = False


def register_resolvers() -> None:
    """Register nemotron's resolvers once per process (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from omegaconf import OmegaConf

    from nemotron.paths import recipes_root

    OmegaConf.register_new_resolver(
        "recipes", lambda rel="": str(recipes_root() / rel) if rel else str(recipes_root()), replace=True
    )
    _REGISTERED = True
