"""The query side of the order API: `order_view` in the lake, read through DuckDB.

One sandboxed `Warehouse` (warehouse/query.py) lives as long as the API. A
request lists the lake's `order_view` files again when the last listing is older
than `refresh_s`, so a view the projection just landed is visible within that time,
and a burst of reads lists the folder once. Queries take their values as bound parameters, never as
SQL text. DuckDB work runs on worker threads (one cursor each), off the event loop.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from warehouse.lake import Lake
from warehouse.query import Warehouse
from warehouse.tables import ORDER_REJECTIONS, ORDER_VIEW

VIEW = ORDER_VIEW.name
PARTITION_KEY = "date"
COMPACTED = "order_view_compacted"
VERSIONS_COMPACTED = (
    f"SELECT * EXCLUDE (last_event_id, traceparent) FROM {COMPACTED} WHERE order_id = $order_id"
)
VERSIONS_RECENT = (
    "SELECT * EXCLUDE (last_event_id, traceparent) "
    "FROM read_parquet($files, union_by_name = true) WHERE order_id = $order_id"
)
"""Every version of one order: from the compacted files (a view bound once, pruned by
statistics), and from the recent files that hold it. A handful of rows: picking the newest
here is cheaper than ORDER BY ... LIMIT 1, which DuckDB plans as a second scan."""
PAGE = f"""
SELECT * EXCLUDE (last_event_id, traceparent, items, history) FROM {VIEW}
WHERE $customer_id IS NULL OR customer_id = $customer_id
QUALIFY row_number() OVER (PARTITION BY order_id ORDER BY version DESC) = 1
     AND ($status IS NULL OR status = $status)
ORDER BY updated_at DESC, order_id
LIMIT $limit
"""
REJECTIONS = f"""
SELECT command_id, command_type, reason, status, ts FROM {ORDER_REJECTIONS.name}
WHERE order_id = $order_id ORDER BY ts, rejection_id
"""


class RecentFiles:
    """Which of the not yet compacted `order_view` files hold which orders.

    The projection lands a small file per epoch, each with orders from all over the id
    range, so min/max statistics prune none of them and a lookup would open every
    one: its cost would grow with each epoch until compaction. Reading the id column
    of each new file once (a few hundred ids) lets a lookup open only the files that
    hold its order. Compacted files are sorted by id; their statistics prune them.
    """

    def __init__(self) -> None:
        self.compacted: list[str] = []
        self._ids: dict[Path, list[str]] = {}
        self._files_of: dict[str, list[str]] = {}

    def update(self, files: list[Path]) -> None:
        listed = set(files)
        for gone in [f for f in self._ids if f not in listed]:
            for order_id in self._ids.pop(gone):
                holders = self._files_of[order_id]
                holders.remove(str(gone))
                if not holders:
                    del self._files_of[order_id]
        self.compacted = [str(f) for f in files if f.name.startswith("compact-")]
        for f in files:
            if f.name.startswith("compact-") or f in self._ids:
                continue
            try:
                ids = pq.read_table(f, columns=["order_id"])["order_id"].unique().to_pylist()
            except FileNotFoundError:  # compacted away since the listing; gone from the next
                continue
            self._ids[f] = ids
            for order_id in ids:
                self._files_of.setdefault(order_id, []).append(str(f))

    def holding(self, order_id: str) -> list[str]:
        """The recent files that hold this order."""
        return self._files_of.get(order_id, [])


class OrderReader:
    def __init__(self, lake: Lake, refresh_s: float = 0.25) -> None:
        self.lake = lake
        self.refresh_s = refresh_s
        # One thread a query: a lookup reads one row group; requests run side by side.
        self._warehouse = Warehouse(lake, threads=1, metadata_cache=True)
        self._recent = RecentFiles()
        self._compacted: list[str] | None = None
        self._listed = self._warehouse.files[VIEW]
        self._index(self._listed)
        self._lock = threading.Lock()
        self._listed_at = time.monotonic()
        self._local = threading.local()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self._warehouse.con.cursor()
        return cursor

    def _fresh(self) -> None:
        if time.monotonic() - self._listed_at < self.refresh_s:
            return
        with self._lock:
            if time.monotonic() - self._listed_at < self.refresh_s:
                return
            files = self.lake.data_files(VIEW)
            if files != self._listed:
                self._listed = files
                self._index(files)
            self._warehouse.refresh(ORDER_REJECTIONS.name)
            self._listed_at = time.monotonic()

    def _index(self, files: list[Path]) -> None:
        self._recent.update(files)
        compacted = self._recent.compacted
        if compacted and compacted != self._compacted:
            self._warehouse.con.read_parquet(compacted, union_by_name=True).create_view(
                COMPACTED, replace=True
            )
        self._compacted = compacted

    def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        cursor = self._cursor().execute(sql, params)
        names = [column[0] for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        for row in rows:  # the lake folder's hive key, not a column of the view
            row.pop(PARTITION_KEY, None)
        return rows

    def order(self, order_id: str) -> dict[str, Any] | None:
        """The current view of one order, with the commands it rejected; None if unknown."""
        self._fresh()
        rows = []
        if self._compacted:
            rows += self._rows(VERSIONS_COMPACTED, {"order_id": order_id})
        recent = self._recent.holding(order_id)
        if recent:
            rows += self._rows(VERSIONS_RECENT, {"files": recent, "order_id": order_id})
        if not rows:
            return None
        view = max(rows, key=lambda row: row["version"])
        view["rejections"] = self._rows(REJECTIONS, {"order_id": order_id})
        return view

    def page(self, customer_id: str | None, status: str | None, limit: int) -> list[dict[str, Any]]:
        """The newest-updated orders, filtered by customer and current status. The view over
        every file is bound here, when a page is asked for, not at each new file."""
        self._fresh()
        with self._lock:
            self._warehouse.refresh(VIEW)
        return self._rows(PAGE, {"customer_id": customer_id, "status": status, "limit": limit})

    def readable(self) -> bool:
        root = self.lake.root
        return root.is_dir() and os.access(root, os.R_OK | os.X_OK)

    def close(self) -> None:
        self._warehouse.close()
