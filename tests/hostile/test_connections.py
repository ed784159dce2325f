"""Slow and idle clients cannot take the server from everyone else (issue 21, item 3):
1,100 half-sent requests used to exhaust the file descriptors, and `/healthz` stopped
answering."""

from __future__ import annotations

import os
import socket
import time

import httpx
import pytest

from conftest import refused


@pytest.fixture(scope="module")
def tight():
    """A server with short timeouts and few connections, so that the test is quick."""
    from ametist_server import AmetistServer

    s = AmetistServer(
        "server.header_read_timeout=2s",
        "server.body_read_timeout=3s",
        "server.max_connections=64",
        partitions=1,
    )
    yield s
    s.stop()


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    return s


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_half_sent_requests_are_dropped_and_health_checks_keep_answering(tight):
    fds_before = open_fds(tight.pid)
    socks = []
    try:
        # Far more than the connection limit, each stuck in the middle of its headers.
        for _ in range(400):
            s = connect(tight.port)
            s.sendall(b"GET /collections HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(s)
        time.sleep(0.5)
        # The server holds at most its limit of them (plus its own files).
        assert open_fds(tight.pid) <= fds_before + 64 + 8, open_fds(tight.pid)
        # Health checks are served once the stalled connections time out (2 s), not never.
        t = time.monotonic()
        r = httpx.get(f"{tight.url}/healthz", timeout=30)
        assert r.status_code == 200
        assert time.monotonic() - t < 15
    finally:
        for s in socks:
            s.close()


def test_a_request_head_must_arrive_in_time(tight):
    s = connect(tight.port)
    try:
        t = time.monotonic()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        assert s.recv(100) == b"", "the connection is closed"
        assert 1.5 < time.monotonic() - t < 10
    finally:
        s.close()


def test_idle_keep_alive_connections_are_closed(tight):
    s = connect(tight.port)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(1000).startswith(b"HTTP/1.1 200")
        t = time.monotonic()
        assert s.recv(100) == b""
        assert 1.5 < time.monotonic() - t < 10
    finally:
        s.close()


def test_a_body_must_arrive_in_time_and_the_answer_says_so(tight):
    s = connect(tight.port)
    try:
        t = time.monotonic()
        s.sendall(
            b"PUT /collections/slow HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 100\r\n\r\n{\"vec"
        )
        answer = s.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 408"), answer
        assert "server.body_read_timeout" in answer and '"status"' in answer
        assert 2.5 < time.monotonic() - t < 10
    finally:
        s.close()
    r = httpx.get(f"{tight.url}/collections/slow/exists")
    assert r.json()["result"]["exists"] is False


def test_a_body_trickled_a_byte_at_a_time_is_cut_at_the_deadline(tight):
    s = connect(tight.port)
    try:
        body = b'{"vectors": {"size": 4, "distance": "Dot"}}'
        s.sendall(
            b"PUT /collections/trickle HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
        )
        t = time.monotonic()
        answer = b""
        for byte in body:
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.2)
            s.setblocking(False)
            try:
                answer += s.recv(4096)
            except BlockingIOError:
                pass
            s.setblocking(True)
            if answer:
                break
        s.settimeout(10)
        if not answer:
            answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - t < 6
    finally:
        s.close()


# HTTP/2's connection preface and an empty SETTINGS frame: what a gRPC client sends first.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def test_grpc_connections_that_send_nothing_are_closed(tight):
    s = connect(tight.grpc_port)
    try:
        t = time.monotonic()
        # The server speaks first (its SETTINGS frame), then closes the silent connection.
        while s.recv(100):
            pass
        assert 1.5 < time.monotonic() - t < 10
    finally:
        s.close()


def test_grpc_connections_beyond_the_limit_wait_and_grpc_keeps_answering(tight):
    fds_before = open_fds(tight.pid)
    socks = []
    try:
        for _ in range(200):
            socks.append(connect(tight.grpc_port))
        time.sleep(0.5)
        # At most the limit of them are served (the rest wait in the kernel's queue).
        assert open_fds(tight.pid) <= fds_before + 64 + 8, open_fds(tight.pid)
        # A real client is served once the silent ones have been closed (2 s each round).
        t = time.monotonic()
        s = connect(tight.grpc_port)
        s.settimeout(30)
        s.sendall(H2_PREFACE)
        head = s.recv(9)
        s.close()
        assert len(head) == 9 and head[3] == 0x04, f"the server answers with its SETTINGS frame: {head!r}"
        assert time.monotonic() - t < 25
    finally:
        for s in socks:
            s.close()


def test_the_configured_limits_are_checked(tmp_path):
    from ametist_server import ametist_binary
    import subprocess

    for bad in ["server.max_connections=0", "server.header_read_timeout=0s", "limits.max_response_bytes=10"]:
        out = subprocess.run(
            [str(ametist_binary()), "config", "--set", bad], capture_output=True, text=True, cwd=tmp_path, timeout=30
        )
        assert out.returncode != 0, bad
        assert bad.split("=")[0] in out.stderr, out.stderr


def test_refusals_of_the_listener_keep_the_envelope(tight):
    refused(httpx.post(f"{tight.url}/collections", json={}), 405)
