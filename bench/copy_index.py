"""Copy a built index into another database, table by table, row by row: for measuring one
collection on both databases without extracting it twice (bench/scale.py --copy-from). The
two dialects keep the same tables with the same columns (imgsearch/sql); the target's schema
is made as a build makes it, then every source row is written there as it is. Bench only:
what it says of a MariaDB index is its size and its answers, not a MariaDB build's time.

    python bench/copy_index.py sqlite:///index.sqlite3 mysql://root@127.0.0.1:3306/copy
"""
from __future__ import annotations

import argparse
import re
import time
from importlib.resources import files

from imgsearch.store import open_store
from imgsearch.store.base import FeatureStore
from imgsearch.store.url import parse_database_url

BATCH = 500


def tables_in_order() -> list[str]:
    """The schema's tables as it creates them (a table after those it refers to)."""
    schema = files("imgsearch.sql").joinpath("mysql.sql").read_text()
    return re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", schema)


def columns(store: FeatureStore, table: str) -> list[str]:
    if store.dialect == "sqlite":
        return [str(row[1]) for row in store.execute(f"PRAGMA table_info({table})")]
    return [str(row[0]) for row in store.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? "
        "ORDER BY ordinal_position", (table,))]


def copy_index(source_url: str, target_url: str) -> dict[str, int]:
    """Rows copied by table."""
    copied: dict[str, int] = {}
    with open_store(parse_database_url(source_url)) as source, \
            open_store(parse_database_url(target_url), create=True) as target:
        present = source.existing_tables()
        if target.dialect == "mysql":
            target.execute("SET SESSION foreign_key_checks = 0")
            target.execute("SET SESSION unique_checks = 0")
        for table in (t for t in tables_in_order() if t in present):
            names = [c for c in columns(source, table) if c in set(columns(target, table))]
            listed = ", ".join(names)
            insert = f"REPLACE INTO {table} ({listed}) VALUES ({', '.join('?' * len(names))})"
            cursor = source.conn.cursor()
            cursor.execute(f"SELECT {listed} FROM {table}")
            copied[table] = 0
            while rows := cursor.fetchmany(BATCH):
                with target.transaction():
                    target.executemany(insert, [tuple(r) for r in rows])
                copied[table] += len(rows)
            cursor.close()
    return copied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source")
    parser.add_argument("target")
    args = parser.parse_args()
    started = time.perf_counter()
    copied = copy_index(args.source, args.target)
    print(f"copied in {time.perf_counter() - started:.0f} s: " + ", ".join(f"{t} {n:,}" for t, n in copied.items()))


if __name__ == "__main__":
    main()
