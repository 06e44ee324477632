#!/usr/bin/env python3
"""Checks retl's Arrow Flight SQL endpoint with third-party clients: the ADBC Flight SQL driver
(adbc-driver-flightsql through adbc-driver-manager's DB-API) and pyarrow.flight.

    flight_sql_check.py RETL_BINARY

1. `RETL_BINARY quickstart --dir TMP --rows 2000` leaves a data directory (TMP/retl-data) with a
   staged extract of the model `active_customers` and two sync runs.
2. Starts `RETL_BINARY serve` on 127.0.0.1 (a free port chosen by the daemon) over that data
   directory with a token.
3. ADBC: adbc_get_objects() lists catalog `retl`, schemas `staging` and `retl` with the model's
   table (and its columns) and `sync_runs`; `SELECT count(*) FROM active_customers` equals the
   active rows of the sample warehouse (counted here with pyarrow from its Parquet file); two
   sync runs are in retl.sync_runs; a DELETE is refused as read-only; a connection with a user
   name and the token as password (the handshake the JDBC driver does) works too.
4. pyarrow.flight: GetFlightInfo for a CommandStatementQuery (encoded here by hand) and DoGet
   with the bearer header return the same count; basic-token authentication returns the bearer
   header; a call without a token is refused as unauthenticated.

Always stops the daemon. Exits 0 when every check passed, 1 otherwise.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow.compute as pc
import pyarrow.flight as flight
import pyarrow.parquet as pq

TOKEN = "flight-sql-check-token"
ROWS = 2000
MODEL = "active_customers"
START_TIMEOUT_S = 60
OVERALL_TIMEOUT_S = 300


def start_daemon(binary, data_dir):
    """Starts the daemon; returns (process, address, log lines)."""
    env = dict(os.environ, RETL_TOKEN=TOKEN, RETL_LOG="info", NO_COLOR="1")
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    found = threading.Event()
    address = []

    def read():
        for line in proc.stderr:
            lines.append(line.rstrip())
            match = re.search(r"retl daemon listening.*?addr=(\S+)", line)
            if match and not found.is_set():
                address.append(match.group(1))
                found.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not found.is_set() and time.monotonic() < deadline and proc.poll() is None:
        found.wait(0.2)
    return proc, (address[0] if found.is_set() else None), lines


def stop_daemon(proc):
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def expect(condition, message):
    if not condition:
        raise AssertionError(message)
    print(f"  ok: {message}")


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, payload):
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def statement_query(sql):
    """google.protobuf.Any wrapping arrow.flight.protocol.sql.CommandStatementQuery{query}."""
    command = field(1, sql.encode())
    type_url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    return field(1, type_url) + field(2, command)


def check_adbc(uri, active):
    print("ADBC Flight SQL driver:")
    kwargs = {"adbc.flight.sql.authorization_header": f"Bearer {TOKEN}"}
    with flightsql.connect(uri, db_kwargs=kwargs, autocommit=True) as conn:
        objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
        tables = {}
        for catalog in objects:
            for schema in catalog["catalog_db_schemas"] or []:
                for table in schema["db_schema_tables"] or []:
                    columns = [c["column_name"] for c in table["table_columns"] or []]
                    key = (catalog["catalog_name"], schema["db_schema_name"], table["table_name"])
                    tables[key] = (table["table_type"], columns)
        print(f"  adbc_get_objects listed {len(tables)} tables")
        model = tables.get(("retl", "staging", MODEL))
        expect(model is not None, f"retl.staging.{MODEL} is listed")
        expect(model[0] == "TABLE", f"{MODEL} has type TABLE")
        expect(
            model[1] == ["id", "email", "name", "plan", "country", "ltv", "signup_at"],
            f"{MODEL} has the model's columns: {model[1]}",
        )
        expect(("retl", "retl", "sync_runs") in tables, "retl.retl.sync_runs is listed")
        staged_runs = [k for k in tables if k[1] == "staging" and k[2].startswith(f"{MODEL}@")]
        expect(len(staged_runs) == 2, f"two kept extracts are listed: {staged_runs}")

        with conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {MODEL}")
            (count,) = cur.fetchone()
            expect(count == active, f"SELECT count(*) FROM {MODEL} = {count} (active rows: {active})")
            cur.execute("SELECT count(*) FROM retl.sync_runs WHERE status = 'succeeded'")
            (runs,) = cur.fetchone()
            expect(runs == 2, f"retl.sync_runs holds the quickstart's 2 succeeded runs ({runs})")
            cur.execute(f"SELECT email FROM {MODEL} ORDER BY id LIMIT 3")
            emails = [r[0] for r in cur.fetchall()]
            expect(len(emails) == 3 and all("@" in e for e in emails), f"emails read: {emails}")
            try:
                cur.execute(f"DELETE FROM {MODEL}")
                cur.fetchall()
                refused = None
            except adbc_driver_manager.Error as e:
                refused = e
            expect(
                refused is not None and "read-only" in str(refused),
                f"DELETE is refused as read-only ({type(refused).__name__})",
            )

    # user + password (the token), as the JDBC driver's user/password: a basic-auth handshake
    with flightsql.connect(
        uri, db_kwargs={"username": "dbeaver", "password": TOKEN}, autocommit=True
    ) as conn:
        with conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {MODEL}")
            (count,) = cur.fetchone()
            expect(count == active, "a user name and the token as password work too")


def check_pyarrow(uri, active):
    print("pyarrow.flight:")
    client = flight.FlightClient(uri)
    try:
        options = flight.FlightCallOptions(
            headers=[(b"authorization", f"Bearer {TOKEN}".encode())], timeout=30
        )
        descriptor = flight.FlightDescriptor.for_command(
            statement_query(f"SELECT count(*) AS n FROM {MODEL}")
        )
        info = client.get_flight_info(descriptor, options)
        expect(info.schema.names == ["n"], f"FlightInfo carries the result schema {info.schema.names}")
        expect(len(info.endpoints) == 1, "one endpoint")
        table = client.do_get(info.endpoints[0].ticket, options).read_all()
        count = table.column("n")[0].as_py()
        expect(count == active, f"DoGet answers count {count}")

        header = client.authenticate_basic_token(b"anyone", TOKEN.encode(), flight.FlightCallOptions(timeout=30))
        expect(header == (b"authorization", f"Bearer {TOKEN}".encode()), "basic-token handshake returns the bearer header")

        try:
            client.get_flight_info(descriptor, flight.FlightCallOptions(timeout=30))
            refused = None
        except flight.FlightUnauthenticatedError as e:
            refused = e
        expect(refused is not None, "a call without the token is unauthenticated")
    finally:
        client.close()


def on_alarm(_signum, _frame):
    raise TimeoutError(f"the check did not finish within {OVERALL_TIMEOUT_S}s")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    binary = sys.argv[1]
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(OVERALL_TIMEOUT_S)
    with tempfile.TemporaryDirectory(prefix="retl-flight-sql-") as work:
        quickstart = subprocess.run(
            [binary, "quickstart", "--dir", work, "--rows", str(ROWS)],
            env=dict(os.environ, NO_COLOR="1"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=240,
        )
        if quickstart.returncode != 0:
            print("FAILED: retl quickstart failed:", quickstart.stdout, quickstart.stderr, file=sys.stderr)
            return 1
        warehouse = pq.read_table(os.path.join(work, "warehouse", "customers.parquet"))
        active = pc.sum(warehouse.column("active").cast("int64")).as_py()
        print(f"quickstart staged {MODEL}; the sample warehouse has {active} active customers")

        proc, address, lines = start_daemon(binary, os.path.join(work, "retl-data"))
        ok = False
        try:
            if address is None:
                print(f"FAILED: the daemon did not report its address (exit {proc.poll()}):", file=sys.stderr)
                print("\n".join(lines), file=sys.stderr)
                return 1
            uri = f"grpc://{address}"
            check_adbc(uri, active)
            check_pyarrow(uri, active)
            ok = True
        except Exception as e:  # noqa: BLE001 - any failure is reported with the daemon's log
            print(f"FAILED: {type(e).__name__}: {e}; the daemon's log:", file=sys.stderr)
            print("\n".join(lines[-50:]), file=sys.stderr)
        finally:
            signal.alarm(0)
            stop_daemon(proc)
    if ok:
        print("Flight SQL check passed (ADBC and pyarrow.flight)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
