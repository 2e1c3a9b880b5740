"""The store: SQLite (embedded) or PostgreSQL, schema changes only through recorded migrations."""
from .connection import open_db, snapshot, transaction, now_iso

__all__ = ["open_db", "snapshot", "transaction", "now_iso"]
