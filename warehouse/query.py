"""DuckDB over the lake: one view per table, latest-version views, named queries with bound parameters.

Each `Warehouse` is an in-memory DuckDB connection whose views list the lake's
files at the moment it opens, so any number of readers can query while flows
write (a DuckDB database file would lock out every other process). The
connection can read nothing outside the lake and its configuration is locked,
so the SQL a user types can neither read other files nor loosen that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from warehouse.lake import Lake
from warehouse.tables import TABLES, Table

QUERY_HEADER = re.compile(r"--\s*(?P<key>description|param):\s*(?P<value>.*)")
PARAM = re.compile(
    r"(?P<name>[a-z_][a-z0-9_]*)\s+(?P<kind>int|float|text|timestamp)(?:\s*=\s*(?P<default>.*))?"
)


class QueryError(ValueError):
    """A named query or its parameters are wrong; the message says which."""


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class Warehouse:
    def __init__(
        self, lake: Lake | Path | str, threads: int | None = None, metadata_cache: bool = False
    ) -> None:
        """`metadata_cache` keeps Parquet footers between queries: for a long-lived reader
        that looks up rows many times (the order API); DuckDB re-reads a file whose
        modification time changed."""
        self.lake = lake if isinstance(lake, Lake) else Lake(lake)
        config: dict[str, Any] = {"threads": threads} if threads else {}
        self.con = duckdb.connect(":memory:", config=config)
        if metadata_cache:  # a setting of the parquet extension: loaded first
            self.con.execute("LOAD parquet")
            self.con.execute("SET GLOBAL parquet_metadata_cache = true")  # cursors too
        # The lake path is the operator's setting, never query text; quoted as a literal.
        lake_literal = "'" + (str(self.lake.root) + "/").replace("'", "''") + "'"
        self.con.execute(f"SET allowed_directories = [{lake_literal}]")
        self.con.execute("SET enable_external_access = false")
        self.files: dict[str, list[Path]] = {}
        for tbl in TABLES.values():
            self._create_view(tbl)
        self.con.execute("SET lock_configuration = true")

    def _create_view(self, tbl: Table) -> None:
        files = self.lake.data_files(tbl.name)
        self.files[tbl.name] = files
        if files:
            # By name: files written before a column was added read it as NULL.
            relation = self.con.read_parquet([str(f) for f in files], union_by_name=True)
        else:  # an empty table still has its columns, so queries over it work
            relation = self.con.from_arrow(pa.Table.from_pylist([], schema=tbl.schema))
        relation.create_view(tbl.name, replace=True)
        if tbl.latest_view and tbl.version_column:
            self.con.execute(
                f"CREATE OR REPLACE VIEW {_quote(tbl.latest_view)} AS SELECT * FROM {_quote(tbl.name)} "
                f"QUALIFY row_number() OVER (PARTITION BY {_quote(tbl.id_column)} "
                f"ORDER BY {_quote(tbl.version_column)} DESC) = 1"
            )
            for view, condition in tbl.filtered_views:
                self.con.execute(
                    f"CREATE OR REPLACE VIEW {_quote(view)} AS SELECT * FROM "
                    f"{_quote(tbl.latest_view)} WHERE {condition}"
                )

    def refresh(self, name: str) -> bool:
        """Point `name`'s views at the files present now (a long-lived reader's view of a
        lake that flows keep writing); True when the file list changed."""
        files = self.lake.data_files(name)
        if files == self.files.get(name):
            return False
        self._create_view(TABLES[name])
        return True

    def sql(self, query: str, params: dict[str, Any] | None = None) -> pa.Table:
        return self.con.sql(query, params=params or None).to_arrow_table()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- named queries ------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    default: str | None

    def convert(self, text: str) -> Any:
        try:
            if self.kind == "int":
                return int(text)
            if self.kind == "float":
                return float(text)
            if self.kind == "timestamp":
                value = datetime.fromisoformat(text)
                return value if value.tzinfo else value.replace(tzinfo=UTC)
            return text
        except ValueError:
            raise QueryError(f"parameter {self.name}={text!r} is not a valid {self.kind}") from None


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    params: tuple[Param, ...]
    sql: str

    def bind(self, given: dict[str, str]) -> dict[str, Any]:
        """Values for DuckDB to bind: parameters are never pasted into the SQL text."""
        known = {p.name for p in self.params}
        unknown = sorted(set(given) - known)
        if unknown:
            raise QueryError(
                f"query {self.name!r} has no parameter {', '.join(unknown)}; "
                f"it takes: {', '.join(sorted(known)) or 'none'}"
            )
        values = {}
        for p in self.params:
            text = given.get(p.name, p.default)
            if text is None:
                raise QueryError(f"query {self.name!r} needs --param {p.name}=<{p.kind}>")
            values[p.name] = p.convert(text)
        return values


def _parse(name: str, text: str) -> NamedQuery:
    description, params = "", []
    for line in text.splitlines():
        m = QUERY_HEADER.fullmatch(line.strip())
        if not m:
            continue
        if m["key"] == "description":
            description = m["value"].strip()
        elif m["key"] == "param":
            p = PARAM.fullmatch(m["value"].strip())
            if p is None:
                raise QueryError(f"query {name!r}: bad parameter line {line!r}")
            default = p["default"].strip().strip("'") if p["default"] else None
            params.append(Param(p["name"], p["kind"], default))
    return NamedQuery(name, description, tuple(params), text)


def named_queries() -> dict[str, NamedQuery]:
    folder = resources.files("warehouse") / "queries"
    return {
        entry.name.removesuffix(".sql"): _parse(entry.name.removesuffix(".sql"), entry.read_text())
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".sql")
    }


def named_query(name: str) -> NamedQuery:
    queries = named_queries()
    try:
        return queries[name]
    except KeyError:
        raise QueryError(f"unknown query {name!r}; queries: {', '.join(queries)}") from None
