"""Results for people and for programs: an aligned table on screen, or CSV, JSON, Parquet."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import TextIO

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

FORMATS = ("table", "csv", "json", "parquet")


def print_table(table: pa.Table, out: TextIO = sys.stdout) -> None:
    with pl.Config(
        tbl_rows=table.num_rows + 1,
        tbl_cols=-1,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        tbl_formatting="ASCII_MARKDOWN",
        float_precision=2,
        tbl_width_chars=160,
        fmt_str_lengths=60,
    ):
        print(pl.from_arrow(table), file=out)


def write_result(table: pa.Table, fmt: str, out: Path | None) -> None:
    """`table` to stdout or `out`; Parquet needs a file. Binary columns print as base64 in
    JSON and as raw bytes nowhere: they are converted first."""
    if fmt == "table":
        if out is None:
            print_table(table)
        else:
            with open(out, "w") as f:
                print_table(table, f)
    elif fmt == "csv":
        pacsv.write_csv(_text_safe(table), out or sys.stdout.buffer)
    elif fmt == "json":
        frame = pl.from_arrow(_text_safe(table))
        if out is None:
            sys.stdout.write(frame.write_ndjson())
        else:
            frame.write_ndjson(out)
    elif fmt == "parquet":
        if out is None:
            raise ValueError("--format parquet needs --out FILE")
        pq.write_table(table, out)
    else:
        raise ValueError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")


def _text_safe(table: pa.Table) -> pa.Table:
    columns = []
    for column in table.columns:
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            values = [
                None if v is None else base64.b64encode(v).decode() for v in column.to_pylist()
            ]
            column = pa.chunked_array([pa.array(values, pa.string())])
        columns.append(column)
    return pa.table(columns, names=table.column_names)
