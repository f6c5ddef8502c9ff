"""FAKE Kubernetes API server - NOT a real one.

No cluster is available to the tests: this answers the two requests the
shipper's add_kubernetes_metadata (in_cluster: true) makes, with the shapes a
real API server gives them, and nothing else:

  GET /api/v1/pods[?fieldSelector=spec.nodeName%3DN]            -> a PodList
  GET /api/v1/pods?[fieldSelector=...&]watch=1&resourceVersion=RV -> chunked
      stream of {"type":"ADDED|MODIFIED|DELETED","object":Pod}, one per line

Requests without "Authorization: Bearer <token>" get 401.

    api = FakeKubeAPI(token="t0k"); api.start()
    api.put_pod("shop", "web-1", uid="u1", node="n1", labels={"app": "web"})
    api.delete_pod("shop", "web-1"); api.requests -> [(path, auth header), ...]
    api.stop()
"""

import json
import queue
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeKubeAPI:
    def __init__(self, token):
        self.token = token
        self.pods = {}           # (ns, name) -> Pod
        self.rv = 100
        self.watchers = []       # (node filter, queue)
        self.requests = []
        self.lock = threading.Lock()
        self.server = None

    def pod(self, ns, name, uid, node, labels):
        return {"kind": "Pod", "apiVersion": "v1",
                "metadata": {"name": name, "namespace": ns, "uid": uid,
                             "resourceVersion": str(self.rv), "labels": labels},
                "spec": {"nodeName": node, "containers": [{"name": "c"}]},
                "status": {"phase": "Running"}}

    def _notify(self, kind, pod):
        for node, q in list(self.watchers):
            if node is None or pod["spec"]["nodeName"] == node:
                q.put({"type": kind, "object": pod})

    def put_pod(self, ns, name, uid, node, labels):
        with self.lock:
            self.rv += 1
            kind = "MODIFIED" if (ns, name) in self.pods else "ADDED"
            p = self.pod(ns, name, uid, node, labels)
            self.pods[(ns, name)] = p
            self._notify(kind, p)

    def delete_pod(self, ns, name):
        with self.lock:
            self.rv += 1
            p = self.pods.pop((ns, name))
            p["metadata"]["resourceVersion"] = str(self.rv)
            self._notify("DELETED", p)

    def watching(self):
        with self.lock:
            return len(self.watchers)

    def start(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                auth = self.headers.get("Authorization", "")
                url = urllib.parse.urlsplit(self.path)
                api.requests.append((self.path, auth))
                if auth != f"Bearer {api.token}":
                    return self.reply(401, {"kind": "Status", "code": 401})
                if url.path != "/api/v1/pods":
                    return self.reply(404, {"kind": "Status", "code": 404})
                q = urllib.parse.parse_qs(url.query)
                node = None
                for sel in q.get("fieldSelector", []):
                    if sel.startswith("spec.nodeName="):
                        node = sel.split("=", 1)[1]
                if q.get("watch") == ["1"]:
                    return self.watch(node)
                with api.lock:
                    items = [p for p in api.pods.values()
                             if node is None or p["spec"]["nodeName"] == node]
                    body = {"kind": "PodList", "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(api.rv)}, "items": items}
                self.reply(200, body)

            def watch(self, node):
                events = queue.Queue()
                with api.lock:
                    api.watchers.append((node, events))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    while True:
                        ev = events.get()
                        if ev is None:
                            break
                        line = (json.dumps(ev) + "\n").encode()
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass
                finally:
                    with api.lock:
                        api.watchers.remove((node, events))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        with self.lock:
            for _, q in self.watchers:
                q.put(None)
        self.server.shutdown()
        self.server.server_close()
