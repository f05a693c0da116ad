"""Hub names that cannot be reached fail in seconds, with one clear message.

Loading ``org/name`` from the Hugging Face Hub without a network makes
``transformers`` and ``datasets`` retry for tens of seconds and print every
warning twice.  :func:`check` asks first: a name that is a local path, or
in offline mode (``HF_HUB_OFFLINE=1`` / ``HF_DATASETS_OFFLINE=1``: the
libraries then use their caches and say so themselves), or held in the local
cache, goes on; otherwise the Hub's host must accept a connection within a
few seconds.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from .errors import PrefcurateError

TIMEOUT_S = 3.0


class HubUnreachableError(PrefcurateError, OSError):
    """A Hub name that is not local, not cached, and the Hub cannot be reached."""


def _offline(kind: str) -> bool:
    flags = ["HF_HUB_OFFLINE"] + (["HF_DATASETS_OFFLINE"] if kind == "dataset" else ["TRANSFORMERS_OFFLINE"])
    return any(os.environ.get(f, "").strip().lower() in ("1", "true", "yes", "on") for f in flags)


def _cached(name: str, kind: str) -> bool:
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    hub = Path(os.environ.get("HF_HUB_CACHE", home / "hub"))
    folder = f"{'datasets' if kind == 'dataset' else 'models'}--{name.replace('/', '--')}"
    if (hub / folder).is_dir():
        return True
    if kind == "dataset":
        ds = Path(os.environ.get("HF_DATASETS_CACHE", home / "datasets"))
        return ds.is_dir() and any(ds.glob(name.replace("/", "___") + "*"))
    return False


def reachable(timeout: float = TIMEOUT_S) -> str | None:
    """None when the Hub's host accepts a connection, else why not."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    u = urlparse(endpoint)
    host = u.hostname or "huggingface.co"
    port = u.port or (443 if u.scheme != "http" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        return f"{endpoint} cannot be reached ({e})"
    return None


def check(name: str, what: str, kind: str = "model") -> None:
    """Raise :class:`HubUnreachableError` (in seconds) when ``name`` would be
    fetched from an unreachable Hub.  ``kind``: ``model`` or ``dataset``."""
    if Path(name).exists() or _offline(kind) or _cached(name, kind):
        return
    why = reachable()
    if why is not None:
        raise HubUnreachableError(
            f"{what} {name!r} is not a local path, not in the Hugging Face cache, and the Hub {why}; "
            "pass a local folder (or a file), or set HF_HUB_OFFLINE=1 to use a cached copy"
        )
