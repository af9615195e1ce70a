"""Log lines cannot be forged: whatever a request carries, one event is one log line."""

from __future__ import annotations

import logging
import re
import socket
from urllib.parse import quote

from harness import LOOPBACK, ExporterProcess, redis_server
from memorywatch.logfmt import OneLineFormatter, escape

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} level=[A-Z]+ logger=\S+ msg=")
FORGED = "2026-01-01 00:00:00,000 level=ERROR logger=memorywatch.exporter msg=FORGED"


def test_escape_keeps_text_and_escapes_every_control_character() -> None:
    assert escape("plain text, ünïcode") == "plain text, ünïcode"
    assert escape("a\nb\rc\x1b[31md\x00e\u2028f") == "a\\nb\\rc\\x1b[31md\\x00e\\u2028f"


def test_a_record_with_newlines_and_a_traceback_is_one_line() -> None:
    formatter = OneLineFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "x=%s", ("a\n" + FORGED,), None)
        import sys

        record.exc_info = sys.exc_info()
    text = formatter.format(record)
    assert "\n" not in text and "\r" not in text
    assert "ValueError: bad\\nvalue" in text


def _raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection((LOOPBACK, port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            chunks.append(data)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


def test_no_request_part_starts_a_log_line() -> None:
    with redis_server() as server:
        exporter = ExporterProcess(["--redis-url", server.url, "--allow-target", "10.9.9.9:6379"])
        exporter.start()
        try:
            evil = "\r\n" + FORGED
            targets = [
                f"redis://10.0.0.1{evil}:6379",
                f"redis://10.0.0.1:6379/0{evil}",
                f"redis+sentinel://10.0.0.1:26379/mymaster{evil}",
                f"10.0.0.2:6379{evil}",
                f"redis://user:pass{evil}@10.0.0.3:6379",
            ]
            for target in targets:
                status, _ = exporter.get("/scrape?target=" + quote(target, safe=""))
                assert status in (400, 403)
            for path in (f"/x{quote(evil)}", f"/scrape?x={quote(evil)}", "/\x1b[2J"):
                _raw_request(exporter.port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            _raw_request(exporter.port, b"GET /metrics\x00\r\n" + FORGED.encode() + b"\r\n\r\n")
            assert exporter.get("/healthz")[0] == 200
        finally:
            exporter.stop()
        lines = [line for line in exporter.log.splitlines() if line]
        assert lines, "the exporter logged nothing"
        assert all(LINE.match(line) for line in lines), lines
        assert not any("msg=FORGED" in line.split("msg=", 1)[0] for line in lines)
        assert not any(line.startswith("2026-01-01") for line in lines)
        said = [line for line in lines if "FORGED" in line]
        assert said and all("\\r\\n2026-01-01" in line for line in said), said  # escaped
