"""``GET /health``: the gateway's health as JSON (200 when healthy, 503 when degraded)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["HealthServer"]

log = logging.getLogger(__name__)


class HealthServer:
    def __init__(self, port: int, report: Callable[[], dict[str, Any]], host: str = "127.0.0.1") -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.rstrip("/") not in ("/health", ""):
                    self.send_error(404, "try /health")
                    return
                body = outer._report()
                data = json.dumps(body, default=str, ensure_ascii=False).encode()
                self.send_response(200 if body.get("healthy") else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._report = report
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("health endpoint at http://127.0.0.1:%d/health", self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
