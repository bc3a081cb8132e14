"""Replace a small text file atomically: readers see the old content or the new, never a part."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def write_text_atomic(path: Path, text: str, *, durable: bool = False) -> None:
    """Write `text` to a unique temporary sibling of `path`, then rename it over `path`.

    Concurrent writers never share a temporary file. `durable` fsyncs the content before the
    rename (the caller fsyncs the folder when the rename itself must survive a crash).
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
