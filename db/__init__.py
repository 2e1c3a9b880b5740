"""The store: SQLite through sqlite-utils, schema changes only through recorded migrations."""
from .connection import open_db, transaction, now_iso

__all__ = ["open_db", "transaction", "now_iso"]
