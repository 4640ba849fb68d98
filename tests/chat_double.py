"""A local HTTP server that speaks the OpenAI chat-completions protocol: the test double for
the OpenAI API, which cannot be reached here. ``answer(body, n)`` gives the reply text of
the n-th request (1-based), or None for an HTTP 500."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def chat_server(answer: Callable[[dict, int], str | None]) -> Iterator[tuple[str, list[dict]]]:
    """``(base_url, calls)``; each call records the Authorization header and the JSON body."""
    calls: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls.append({"auth": self.headers.get("Authorization"), "body": body})
            content = answer(body, len(calls))
            if content is None:
                self.send_response(500)
                self.end_headers()
                return
            message = {"role": "assistant", "content": content}
            choice = {"index": 0, "finish_reason": "stop", "message": message}
            reply = {
                "id": f"c{len(calls)}",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [choice],
            }
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", calls
    finally:
        server.shutdown()
