"""The old Hermes <-> Leo bridge, rebuilt from its write-up for the benchmark: the broker interop replaces.

Faithful to the described design, its fixes included: a ThreadingMixIn HTTPServer (one thread per
connection, HTTP/1.0, so one connection per request), a list queue per agent for /poll and a queue.Queue
per SSE subscriber, a broadcast going to "the other agent" (hermes <-> openclaw), pending messages flushed
from the list into a new subscriber's queue, BrokenPipeError swallowed. In memory only; stdlib only.

    python3 bench/peers/old_bridge.py PORT
"""
import json
import queue
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs, urlparse

queues = {"hermes": [], "openclaw": []}
subscribers = {}
lock = threading.Lock()


def other_agent(sender):
    return "hermes" if sender == "openclaw" else "openclaw"


def push_to_subscriber(agent, data):
    q = subscribers.get(agent)
    if q is not None:
        q.put_nowait(data)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, value):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except BrokenPipeError:
            pass

    def do_POST(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path != "/broadcast":
            return self.reply(404, {"error": "not found"})
        sender = query.get("from", ["unknown"])[0]
        length = int(self.headers.get("Content-Length", 0))
        data = json.loads(self.rfile.read(length) or b"{}")
        recipient = other_agent(sender)
        with lock:
            queues.setdefault(recipient, []).append(data)
            push_to_subscriber(recipient, data)
        self.reply(200, {"delivered": True, "to": recipient})

    def do_GET(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        agent = query.get("agent", [""])[0]
        if url.path == "/poll":
            with lock:
                messages = queues.get(agent, [])
                queues[agent] = []
            return self.reply(200, messages)
        if url.path == "/status":
            with lock:
                return self.reply(200, {
                    "queues": {name: len(items) for name, items in queues.items()},
                    "subscribers": {name: name in subscribers for name in queues},
                })
        if url.path == "/subscribe":
            return self.stream(agent)
        self.reply(404, {"error": "not found"})

    def stream(self, agent):
        q = queue.Queue()
        with lock:
            while queues.get(agent):
                q.put_nowait(queues[agent].pop(0))
            subscribers[agent] = q
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        try:
            while True:
                try:
                    data = q.get(timeout=15)
                    self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
                except queue.Empty:
                    self.wfile.write(b": keepalive\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


class ThreadedHTTPServer(ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


if __name__ == "__main__":
    server = ThreadedHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", file=sys.stderr, flush=True)
    server.serve_forever()
