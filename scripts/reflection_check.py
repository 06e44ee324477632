#!/usr/bin/env python3
"""Lists the services of a running retl daemon through gRPC reflection v1alpha, as Python's
grpcio-reflection client does, and checks the retl API is among them.

    reflection_check.py RETL_BINARY

Starts `RETL_BINARY serve` on 127.0.0.1 (a free port chosen by the daemon) with a token and a
temporary data directory, lists the services with grpcio-reflection's
ProtoReflectionDescriptorDatabase (which speaks grpc.reflection.v1alpha), resolves
retl.v1.SyncService's methods through it, and always stops the daemon. Exits 0 when the check
passed, 1 otherwise. Needs the grpcio and grpcio-reflection packages (scripts/check-reflection.sh
installs them into a venv).
"""

import collections
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

TOKEN = "reflection-check-token"
START_TIMEOUT_S = 60
CALL_TIMEOUT_S = 10
OVERALL_TIMEOUT_S = 180
EXPECTED = ["retl.v1.SyncService", "retl.v1.SourceService", "grpc.health.v1.Health"]


class _Details(
    collections.namedtuple(
        "_Details",
        ["method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"],
    ),
    grpc.ClientCallDetails,
):
    pass


class AuthAndDeadline(grpc.StreamStreamClientInterceptor):
    """Adds the bearer token and a deadline to every call (the reflection client sets neither)."""

    def intercept_stream_stream(self, continuation, details, request_iterator):
        metadata = list(details.metadata or []) + [("authorization", f"Bearer {TOKEN}")]
        details = _Details(
            details.method,
            CALL_TIMEOUT_S,
            metadata,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )
        return continuation(details, request_iterator)


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
    if not found.is_set():
        return proc, None, lines
    return proc, address[0], lines


def stop_daemon(proc):
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def check(address):
    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=CALL_TIMEOUT_S)
        database = ProtoReflectionDescriptorDatabase(
            grpc.intercept_channel(channel, AuthAndDeadline())
        )
        services = database.get_services()
        print("services listed through grpc.reflection.v1alpha:")
        for name in services:
            print(f"  {name}")
        missing = [name for name in EXPECTED if name not in services]
        if missing:
            print(f"FAILED: missing from the list: {', '.join(missing)}", file=sys.stderr)
            return False
        sync = DescriptorPool(database).FindServiceByName("retl.v1.SyncService")
        methods = [m.name for m in sync.methods]
        print(f"retl.v1.SyncService methods: {', '.join(methods)}")
        if "TriggerSync" not in methods:
            print("FAILED: retl.v1.SyncService has no TriggerSync method", file=sys.stderr)
            return False
        return True
    finally:
        channel.close()


def on_alarm(_signum, _frame):
    raise TimeoutError(f"the check did not finish within {OVERALL_TIMEOUT_S}s")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    binary = sys.argv[1]
    # A hung call or daemon must not hang CI: give up after a while, still stopping the daemon.
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(OVERALL_TIMEOUT_S)
    with tempfile.TemporaryDirectory(prefix="retl-reflection-") as data_dir:
        proc, address, lines = start_daemon(binary, data_dir)
        try:
            if address is None:
                print(
                    f"FAILED: the daemon did not report its address within {START_TIMEOUT_S}s"
                    f" (exit status {proc.poll()}); its log:",
                    file=sys.stderr,
                )
                print("\n".join(lines), file=sys.stderr)
                return 1
            ok = check(address)
        except Exception as e:  # noqa: BLE001 - any failure is reported with the daemon's log
            print(f"FAILED: {type(e).__name__}: {e}; the daemon's log:", file=sys.stderr)
            print("\n".join(lines), file=sys.stderr)
            ok = False
        finally:
            signal.alarm(0)
            stop_daemon(proc)
    if ok:
        print("gRPC reflection v1alpha check passed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
