"""Whether the Hugging Face hub may and can be reached: fail fast offline instead of hanging."""

from __future__ import annotations

import concurrent.futures
import os
import socket

from clap.errors import ClapError

HUB_HOST = "huggingface.co"
REACH_TIMEOUT_S = 3.0


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE asks for no network."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def reachable(host: str, timeout: float = REACH_TIMEOUT_S) -> bool:
    """Whether a TCP connection to host:443 opens within `timeout` seconds (DNS included)."""
    def attempt() -> bool:
        with socket.create_connection((host, 443), timeout=timeout):
            return True

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(attempt).result(timeout=timeout)
    except Exception:
        return False
    finally:
        pool.shutdown(wait=False)


def require_network(what: str, host: str, how_local: str) -> None:
    """Raise a one-line error naming `how_local` when `host` may not or cannot be reached."""
    if hub_offline():
        raise ClapError(f"{what} is not in the local cache and HF_HUB_OFFLINE is set; {how_local}")
    if not reachable(host):
        raise ClapError(f"{what} is not in the local cache and {host} cannot be reached; {how_local}")
