"""A stand-in webhook receiver for the docker-compose stack: logs each Alertmanager notification.

Alertmanager POSTs JSON (version 4 of its webhook payload) to http://alert-sink:8080/<receiver>;
this prints one line per alert so `docker compose logs -f alert-sink` shows what would have paged
whom. Replace the receiver URLs in alertmanager.yml with real endpoints when you deploy.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            payload = json.loads(body)
            for alert in payload.get("alerts", []):
                labels = alert.get("labels", {})
                print(
                    f"{self.path.strip('/')}: {alert.get('status')} {labels.get('alertname')} "
                    f"severity={labels.get('severity')} machine={labels.get('machine', '-')} "
                    f"instance={labels.get('instance', '-')}: "
                    f"{alert.get('annotations', {}).get('summary', '')}",
                    flush=True,
                )
        except (ValueError, AttributeError):
            print(f"{self.path.strip('/')}: unreadable payload: {body[:200]!r}", flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per alert above is enough


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
