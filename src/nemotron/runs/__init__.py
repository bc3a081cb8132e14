"""Training and eval run folders (`runs/` next to the registry): what ran, their metrics, their curves."""
