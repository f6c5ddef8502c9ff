"""FAKE Elasticsearch _bulk endpoint - NOT a real server.

Used only by tests/e2e/test_elasticsearch.py for faults a real OpenSearch
cannot be made to produce on demand: a 429 on chosen items of one request, or
a whole request answered 503. Everything else is tested against the real
OpenSearch started by tests/servers/opensearch.

    fake = FakeES([{"item_status": {1: 429, 3: 429}}, {}])   # one entry per request
    fake.start(); ... fake.requests -> [[(action, doc), ...], ...]; fake.stop()

A script entry is {} (every item 201), {"item_status": {pos: status}} or
{"status": 503}; requests beyond the script get {}. Replies have the shape
OpenSearch 2.19 sends (compact, "took" then "errors" then "items").

Two more faults, of what sits between the output and the cluster:
  - a body limit, as a proxy's (nginx client_max_body_size) or the server's
    http.max_content_length: with fake.max_items / fake.max_bytes set (also
    while running), a _bulk request of more items, or of a larger body
    (decompressed), is answered 413 with nginx's HTML page, before the script
    is consulted; nothing of it is indexed;
  - a reply cut short: the script entry {"raw": "<text>"} answers 200 with
    exactly that text (Content-Length of it; "eof": True sends no
    Content-Length and closes the connection after it, as a proxy that lost
    its upstream mid-reply). The fake indexes nothing for it.
fake.statuses holds the HTTP status answered to each _bulk request.
"""

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


NGINX_413 = (b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n"
             b"<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n"
             b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


class FakeES:
    def __init__(self, script=None, max_items=None, max_bytes=None):
        self.script = list(script or [])
        self.max_items = max_items  # more items in one request: 413
        self.max_bytes = max_bytes  # a larger (decompressed) body: 413
        self.statuses = []      # per _bulk request: the HTTP status answered
        self.requests = []      # per _bulk request: [(action dict, doc dict)]
        self.headers = []       # per _bulk request: {header: value}
        self.lock = threading.Lock()
        self.server = None
        self.thread = None

    @property
    def port(self):
        return self.server.server_address[1]

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def docs(self):
        """Every document the fake answered 2xx for, in arrival order."""
        with self.lock:
            return list(self._ok)

    def start(self):
        fake = self
        self._ok = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"   # keep-alive, as a real server

            def log_message(self, *args):
                pass

            def reply(self, status, obj):
                body = json.dumps(obj, separators=(",", ":")).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def reply_raw(self, status, ctype, body, eof=False):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                if eof:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self.reply(200, {"version": {"number": "fake", "distribution": "fake"}})

            def do_PUT(self):
                n = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(n)
                self.reply(200, {"acknowledged": True})

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if not self.path.endswith("/_bulk"):
                    self.reply(404, {"error": "no such endpoint"})
                    return
                lines = body.split(b"\n")
                assert lines[-1] == b"", "a _bulk body must end with a newline"
                lines = lines[:-1]
                items = [(json.loads(lines[i]), json.loads(lines[i + 1]))
                         for i in range(0, len(lines), 2)]
                with fake.lock:
                    k = len(fake.requests)
                    fake.requests.append(items)
                    fake.headers.append(dict(self.headers))
                    step = fake.script[k] if k < len(fake.script) else {}
                    too_large = ((fake.max_items is not None and len(items) > fake.max_items)
                                 or (fake.max_bytes is not None and len(body) > fake.max_bytes))
                    fake.statuses.append(413 if too_large else step.get("status", 200))
                if too_large:
                    self.reply_raw(413, "text/html", NGINX_413)
                    return
                if "raw" in step:
                    self.reply_raw(200, "application/json", step["raw"].encode(),
                                   eof=step.get("eof", False))
                    return
                if "status" in step:
                    self.reply(step["status"], {"error": {"type": "fake_failure"},
                                                "status": step["status"]})
                    return
                out, errors = [], False
                for pos, (action, doc) in enumerate(items):
                    op = next(iter(action))
                    status = step.get("item_status", {}).get(pos, 201)
                    item = {"_index": action[op]["_index"], "_id": f"fake-{k}-{pos}",
                            "status": status}
                    if status >= 300:
                        errors = True
                        item["error"] = {"type": "fake_rejected_execution_exception",
                                         "reason": f"fake status {status}"}
                    else:
                        with fake.lock:
                            fake._ok.append(doc)
                    out.append({op: item})
                self.reply(200, {"took": 1, "errors": errors, "items": out})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
