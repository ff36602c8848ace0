"""The one way to open the memory store: settings decide the Chroma server and the embedding model unless the
caller overrides them, and an explicit ``home`` is used for the settings too (its ``config.toml``)."""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)


def open_store(home: str | os.PathLike | None = None, *, settings: Any = None, repo: str | os.PathLike | None = None,
               chroma_url: str | None = None, embedding: str | None = None, create: bool = True,
               check: bool = True):
    """A :class:`~expagent.memory.store.MemoryStore` under ``home`` (default: the expagent home).

    ``settings`` (a loaded :class:`~expagent.config.Settings`) is used as given; without it the settings are loaded
    for ``repo`` with ``home`` as the expagent home. ``chroma_url`` and ``embedding`` override the settings.
    ``create=False`` opens for reading (nothing is created); ``check=False`` skips the cheap check on open.
    """
    from expagent import paths
    from expagent.memory.store import MemoryStore

    with paths.using_home(home):
        if settings is None:
            from expagent.config import load_settings

            settings = load_settings(repo)
        url = chroma_url or settings.chroma_url
        model = embedding or settings.embedding_model
        log.debug("opening memory in %s (chroma %s, embedding %s)", paths.home(), url or "embedded", model)
        return MemoryStore.open(home=home, chroma_url=url, embedding=model, create=create, check=check)
