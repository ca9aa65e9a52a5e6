"""Compaction: merge a partition's small files into one, without changing any query's answer.

Safe while flows write and readers read:

- Only *settled* files are merged: compacted files, and writer files below the
  writer's settled number (`Lake.settled_seq`): files in a snapshot taken more
  than `settle_s` ago, which no resume will ever delete. Newer files are left
  alone, so compaction and a writer's resume never touch the same file.
- The merged file appears atomically, its journal (`_compactions/<id>.json`,
  listing the sources) written before it; `Lake.data_files` lists the sources
  or the merged file, never both.
- Sources are deleted only `grace_s` after the merge, by a later run, and the
  journal `grace_s` after that, so a reader that listed files just before a
  step never finds a file gone.

Keep `settle_s` above a flow's snapshot plus backup interval, and `grace_s`
above the longest query.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.lake import COMPACTIONS, SORTED_ROW_GROUP, WRITER_FILE, Lake, LakeError
from warehouse.tables import table

DEFAULT_SETTLE_S = 600.0
DEFAULT_GRACE_S = 300.0


@dataclass
class CompactionReport:
    table: str
    merged_partitions: int = 0
    files_merged: int = 0
    rows: int = 0
    sources_deleted: int = 0
    skipped_unsettled: int = 0
    outputs: list[Path] = field(default_factory=list)


def _journal_dir(lake: Lake, name: str) -> Path:
    return lake.table_dir(name) / COMPACTIONS


def _write_json(path: Path, record: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def _vacuum(lake: Lake, name: str, grace_s: float, now: float, report: CompactionReport) -> None:
    base = lake.table_dir(name)
    for journal in sorted(_journal_dir(lake, name).glob("*.json")):
        record = json.loads(journal.read_text())
        output = base / record["output"]
        if not output.exists():
            # A merge that never finished (outputs are never merged again while their
            # journal exists, so nothing else removes one): its sources are still the data.
            journal.unlink()
            continue
        if "sources_deleted_at" in record:
            if now - record["sources_deleted_at"] >= grace_s:
                journal.unlink()
        elif now - record["created_at"] >= grace_s:
            for source in record["sources"]:
                if (base / source).exists():
                    (base / source).unlink()
                    report.sources_deleted += 1
            record["sources_deleted_at"] = now
            _write_json(journal, record)


def _settled(
    lake: Lake,
    name: str,
    path: Path,
    settle_s: float,
    now: float,
    cache: dict[tuple[str, str], int],
) -> bool:
    m = WRITER_FILE.fullmatch(path.name)
    if m is None:
        return path.name.startswith("compact-")
    key = (m["writer"], m["part"])
    if key not in cache:
        cache[key] = lake.settled_seq(name, m["writer"], m["part"], settle_s, now)
    return int(m["seq"]) < cache[key]


def compact(
    lake: Lake,
    name: str,
    *,
    min_files: int = 2,
    settle_s: float = DEFAULT_SETTLE_S,
    grace_s: float = DEFAULT_GRACE_S,
    now: float | None = None,
) -> CompactionReport:
    """Merge each partition's settled files when there are at least `min_files` of them."""
    tbl = table(name)
    now = time.time() if now is None else now
    report = CompactionReport(tbl.name)
    _journal_dir(lake, tbl.name).mkdir(parents=True, exist_ok=True)
    _vacuum(lake, tbl.name, grace_s, now, report)
    live = set(lake.data_files(tbl.name))
    # Neither the sources of a journal nor its output are merged again until the journal
    # is gone: a vacuum must never delete a file another journal still accounts for.
    pending = set()
    for output, sources in lake.compaction_journals(tbl.name):
        pending.add(output)
        pending.update(sources)
    settled_cache: dict[tuple[str, str], int] = {}
    base = lake.table_dir(tbl.name)
    for partition in lake.partitions(tbl.name):
        files = sorted(f for f in live if f.parent == partition and f not in pending)
        settled = [f for f in files if _settled(lake, tbl.name, f, settle_s, now, settled_cache)]
        report.skipped_unsettled += len(files) - len(settled)
        if len(settled) < min_files:
            continue
        data = pa.concat_tables([pq.read_table(f, schema=tbl.schema) for f in settled])
        # Sorted by id (then version), so a lookup by id reads one small row group.
        keys = [tbl.id_column, *([tbl.version_column] if tbl.version_column else [])]
        data = data.sort_by([(k, "ascending") for k in keys])
        output_name = f"compact-{uuid.uuid4().hex}"
        journal = _journal_dir(lake, tbl.name) / f"{output_name}.json"
        output = partition / f"{output_name}.parquet"
        _write_json(
            journal,
            {
                "output": str(output.relative_to(base)),
                "sources": [str(f.relative_to(base)) for f in settled],
                "created_at": now,
            },
        )
        try:
            lake.write_file(data, output, row_group_size=SORTED_ROW_GROUP)
        except LakeError:
            journal.unlink(missing_ok=True)
            raise
        report.merged_partitions += 1
        report.files_merged += len(settled)
        report.rows += data.num_rows
        report.outputs.append(output)
    return report
