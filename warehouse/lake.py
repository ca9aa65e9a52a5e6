"""The Parquet lake on disk: where each table's files live, and how they appear atomically.

Layout: `<lake>/<table>/date=YYYY-MM-DD/<file>.parquet`.

- Writers name files `<writer>.<part>.<seq>.parquet`: `writer` is the flow,
  `part` its sink partition, `seq` a counter kept in the flow's recovery
  snapshot. On resume a writer deletes its files with `seq` at or past the
  snapshot's counter: they were written after the state it resumes from and
  will be written again.
- A file is written under a dot-name and renamed into place, so no reader ever
  sees half a file; dot-files are never data.
- Compaction (warehouse.compaction) writes `compact-<id>.parquet` plus a journal
  in `<table>/_compactions/`. Until its sources are gone, `data_files` lists
  either the sources or the compacted file, never both.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse.tables import Table, table

WRITER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
WRITER_FILE = re.compile(
    r"(?P<writer>[A-Za-z0-9_-]+)\.(?P<part>[A-Za-z0-9_-]+)\.(?P<seq>\d{10})\.parquet"
)
COMPACTIONS = "_compactions"
WRITERS = "_writers"
COMMIT_HISTORY = 1000
COMMIT_SPACING_S = 5.0
PARQUET_OPTIONS = {"compression": "zstd", "row_group_size": 1 << 20}
SORTED_ROW_GROUP = 1 << 14
"""Row groups of files sorted by id (compaction output): small enough that a lookup of one
id reads one group, the others skipped on their min/max statistics."""


class LakeError(RuntimeError):
    """A lake operation failed; the message names the table and path."""


@dataclass(frozen=True)
class WriterFile:
    path: Path
    writer: str
    part: str
    seq: int


def date_dir(day: date) -> str:
    return f"date={day.isoformat()}"


class Lake:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    def table_dir(self, name: str) -> Path:
        """The folder of a known table; unknown names and paths outside the lake are errors."""
        path = (self.root / table(name).name).resolve()
        if path.parent != self.root:
            raise LakeError(f"table {name!r} resolves outside the lake {self.root}")
        return path

    # --- writing -------------------------------------------------------------------

    def write(self, tbl: Table, data: pa.Table, file_name: str) -> list[Path]:
        """Write `data` as one file per date of its partition column, each atomically."""
        if data.num_rows == 0:
            return []
        days = pc.cast(data[tbl.partition_by], pa.date32())
        written = []
        for day in pc.unique(days).to_pylist():
            part = data.filter(pc.equal(days, pa.scalar(day, pa.date32())))
            folder = self.table_dir(tbl.name) / date_dir(day)
            written.append(self.write_file(part, folder / file_name))
        return written

    def write_file(self, data: pa.Table, path: Path, row_group_size: int | None = None) -> Path:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        options = dict(PARQUET_OPTIONS)
        if row_group_size is not None:
            options["row_group_size"] = row_group_size
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(data, tmp, **options)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as e:
            with contextlib.suppress(OSError):  # the cleanup may fail for the same reason
                tmp.unlink()
            raise LakeError(f"cannot write {path}: {e.strerror or e}") from e
        return path

    # --- listing -------------------------------------------------------------------

    def partitions(self, name: str) -> list[Path]:
        folder = self.table_dir(name)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("date="))

    def _all_parquet(self, name: str) -> list[Path]:
        return [
            f
            for d in self.partitions(name)
            for f in sorted(d.iterdir())
            if f.suffix == ".parquet" and not f.name.startswith(".")
        ]

    def data_files(self, name: str) -> list[Path]:
        """The files a reader should read now: compacted sources are left out once their
        compacted file is in place. Files are listed before journals are read, which is
        what makes this safe against a compaction running at the same moment."""
        files = self._all_parquet(name)
        present = set(files)
        superseded: set[Path] = set()
        for journal in self.compaction_journals(name):
            output, sources = journal
            if output in present:
                superseded.update(sources)
        return [f for f in files if f not in superseded]

    def compaction_journals(self, name: str) -> list[tuple[Path, list[Path]]]:
        folder = self.table_dir(name) / COMPACTIONS
        if not folder.is_dir():
            return []
        journals = []
        for entry in sorted(folder.glob("*.json")):
            try:
                record = json.loads(entry.read_text())
            except FileNotFoundError:  # vacuumed since the glob; its sources went first
                continue
            base = self.table_dir(name)
            journals.append((base / record["output"], [base / s for s in record["sources"]]))
        return journals

    def writer_files(self, name: str, writer: str, part: str) -> list[WriterFile]:
        found = []
        for f in self._all_parquet(name):
            m = WRITER_FILE.fullmatch(f.name)
            if m and m["writer"] == writer and m["part"] == part:
                found.append(WriterFile(f, writer, part, int(m["seq"])))
        return found

    def remove_uncommitted(self, name: str, writer: str, part: str, next_seq: int) -> list[Path]:
        """Delete a writer's files at or past `next_seq`, and its leftover temp files."""
        removed = []
        for wf in self.writer_files(name, writer, part):
            if wf.seq >= next_seq:
                wf.path.unlink()
                removed.append(wf.path)
        for folder in self.partitions(name):
            for tmp in folder.glob(f".{writer}.{part}.*.tmp"):
                tmp.unlink(missing_ok=True)
        return removed

    # --- writer commit history (what compaction may touch) ----------------------------

    def _commits_path(self, name: str, writer: str, part: str) -> Path:
        return self.table_dir(name) / WRITERS / f"{writer}.{part}.json"

    def record_snapshot(self, name: str, writer: str, part: str, next_seq: int, now: float) -> None:
        """Remember that a writer's files below `next_seq` were in a snapshot taken at `now`.

        Kept entries are at least COMMIT_SPACING_S apart (the newest always kept), at
        most COMMIT_HISTORY of them, so the file stays small at any snapshot rate."""
        path = self._commits_path(name, writer, part)
        history = self.snapshot_history(name, writer, part)
        if history and now - history[-1][0] < COMMIT_SPACING_S and len(history) > 1:
            history[-1] = (now, next_seq)
        else:
            history.append((now, next_seq))
        history = history[-COMMIT_HISTORY:]
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"history": history}))
            os.replace(tmp, path)
        except OSError as e:
            raise LakeError(f"cannot write {path}: {e.strerror or e}") from e

    def snapshot_history(self, name: str, writer: str, part: str) -> list[tuple[float, int]]:
        path = self._commits_path(name, writer, part)
        try:
            return [tuple(entry) for entry in json.loads(path.read_text())["history"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError) as e:
            raise LakeError(f"cannot read writer history {path}: {e}") from e

    def settled_seq(self, name: str, writer: str, part: str, settle_s: float, now: float) -> int:
        """Files of this writer below the returned number are committed for good: they were
        in a snapshot taken more than `settle_s` ago, so no resume will delete them."""
        old_enough = [
            seq for t, seq in self.snapshot_history(name, writer, part) if now - t >= settle_s
        ]
        return max(old_enough, default=0)


def writer_file_name(writer: str, part: str, seq: int) -> str:
    return f"{writer}.{part}.{seq:010d}.parquet"


def check_writer_name(name: str) -> str:
    if not WRITER_NAME.fullmatch(name):
        raise LakeError(f"writer name {name!r} must be 1-64 of [A-Za-z0-9_-]")
    return name


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def conform(tbl: Table, data: pa.Table | pa.RecordBatch | Iterable[dict[str, object]]) -> pa.Table:
    """Check a batch against its table's schema: Arrow data must match exactly (no silent
    casts); Python rows are built with the schema, so a wrong type is an error too."""
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        if not data.schema.equals(tbl.schema, check_metadata=False):
            problems = _schema_diff(tbl.schema, data.schema, data)
            if problems:
                raise LakeError(f"batch does not fit table {tbl.name!r}: {problems}")
            # Same names and types, nullable fields without nulls: the values stay as they are.
            data = data.cast(tbl.schema)
        return data
    try:
        return pa.Table.from_pylist(list(data), schema=tbl.schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, KeyError) as e:
        raise LakeError(f"rows do not fit table {tbl.name!r}: {e}") from None


def _schema_diff(want: pa.Schema, got: pa.Schema, data: pa.Table) -> str:
    """What makes `got` unfit for `want`; empty when only nullability differs harmlessly."""
    problems = []
    for f in want:
        if f.name not in got.names:
            problems.append(f"missing column {f.name} ({f.type})")
        elif not got.field(f.name).type.equals(f.type):
            problems.append(f"column {f.name} is {got.field(f.name).type}, table has {f.type}")
        elif not f.nullable and data[f.name].null_count:
            problems.append(f"column {f.name} has nulls, table requires values")
    problems += [f"unexpected column {n}" for n in got.names if n not in want.names]
    if not problems and got.names != want.names:
        problems.append(f"columns in order {got.names}, table has {want.names}")
    return "; ".join(problems)
