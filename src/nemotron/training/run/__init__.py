"""One training run, shared by every stage: config sections, plan, preflight, resume, and the session."""
