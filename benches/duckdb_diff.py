"""The warehouse-side diff baseline, executed by DuckDB.

What Segment, Hightouch Lightning and Census run in the warehouse: a FULL OUTER JOIN of the
previous and the current snapshot on the unique id, comparing a hash of each row, counting the
added, updated and deleted keys. Reads the same two Parquet files retl syncs.

Usage: python duckdb_diff.py <day0.parquet> <day1.parquet> [--hash md5|native] [--threads N]
Prints one JSON object: {"added", "updated", "deleted", "diff_secs", "peak_rss_bytes", ...}.
"""

import argparse
import json
import resource
import time

import duckdb

COLUMNS = ["email", "name", "phone", "plan", "ltv", "signup_at", "active"]


def row_hash(kind: str) -> str:
    if kind == "native":
        # DuckDB's own 64-bit hash of the values (NULL-aware): the fastest DuckDB can do.
        return "hash(" + ", ".join(COLUMNS) + ")"
    # md5 of the row's text, as the warehouse-side diff tools compute it; NULL is marked.
    parts = ", ".join(f"coalesce({c}::varchar, '\\N')" for c in COLUMNS)
    return f"md5(concat_ws('|', {parts}))"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("day0")
    ap.add_argument("day1")
    ap.add_argument("--hash", choices=["md5", "native"], default="md5")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    con = duckdb.connect()
    if args.threads:
        con.execute(f"SET threads = {args.threads}")
    h = row_hash(args.hash)
    sql = f"""
        WITH prev AS (SELECT id, {h} AS h FROM read_parquet('{args.day0}')),
             cur  AS (SELECT id, {h} AS h FROM read_parquet('{args.day1}'))
        SELECT count(*) FILTER (WHERE prev.id IS NULL) AS added,
               count(*) FILTER (WHERE prev.id IS NOT NULL AND cur.id IS NOT NULL
                                AND prev.h <> cur.h) AS updated,
               count(*) FILTER (WHERE cur.id IS NULL) AS deleted
        FROM prev FULL OUTER JOIN cur ON prev.id = cur.id
    """
    t = time.perf_counter()
    added, updated, deleted = con.execute(sql).fetchone()
    secs = time.perf_counter() - t
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    print(json.dumps({
        "engine": "duckdb",
        "version": duckdb.__version__,
        "hash": args.hash,
        "threads": int(threads),
        "added": added,
        "updated": updated,
        "deleted": deleted,
        "diff_secs": secs,
        # ru_maxrss is in KiB on Linux.
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == "__main__":
    main()
