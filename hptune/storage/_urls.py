"""Storage URLs: which backend a URL names, the driver to open it with, the file it lives in."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

JOURNAL_PREFIX = "journal://"

Backend = Literal["sqlite", "journal", "postgresql", "other"]


def backend(url: str) -> Backend:
    if url.startswith("sqlite:"):
        return "sqlite"
    if url.startswith(JOURNAL_PREFIX):
        return "journal"
    if url.startswith(("postgresql", "postgres:")):
        return "postgresql"
    return "other"


def driver_url(url: str) -> str:
    """``url`` with the PostgreSQL driver named: psycopg 3 (what ``hptune[postgres]``
    installs) when the URL names none. SQLAlchemy 2.0 reads a bare ``postgresql://`` as
    psycopg2, 2.1 as psycopg 3; naming it works with both. A named driver is kept.

    Args:
        url: A storage URL.

    Returns:
        The URL to open.
    """
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url.removeprefix(bare)
    return url


def _file_of(url: str) -> Path | None:
    """The file an SQLite or journal storage lives in."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    if url.startswith(JOURNAL_PREFIX):
        return Path(url.removeprefix(JOURNAL_PREFIX))
    return None
