# SPDX-License-Identifier: Apache-2.0
"""HTTP plumbing shared by the test registrar and verifier: threaded (optionally TLS)
server on 127.0.0.1, a throw-away test CA, JSON helpers, a fault queue and the
state file the tests read."""

import datetime
import http.server
import ipaddress
import json
import os
import socketserver
import ssl
import sys
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SHUTDOWN = threading.Event()


def log(prog, msg):
    ts = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    sys.stderr.write(f"{ts} {prog}: {msg}\n")
    sys.stderr.flush()


def now_iso(ts=None):
    if ts is None:
        ts = time.time()
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="microseconds")


def parse_time(value):
    """ISO 8601 (Z or offset) or a Unix timestamp, like Keylime's Timestamp.cast."""
    if isinstance(value, bool):
        raise ValueError("timestamp must not be a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str) or not value:
        raise ValueError("timestamp must be a string or a number")
    try:
        return float(value)
    except ValueError:
        pass
    v = value[:-1] + "+00:00" if value.endswith("Z") else value
    dt = datetime.datetime.fromisoformat(v)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


def write_state(path, state):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1)
    os.replace(tmp, path)


def make_test_ca(directory, prefix, cn):
    """Creates <prefix>-ca.crt and a server cert/key for 127.0.0.1/localhost signed by it.
    Returns (ca_cert_path, server_cert_path, server_key_path, ca_key, ca_cert)."""
    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    later = now + datetime.timedelta(days=2)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{cn} test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(later)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(later)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = (os.path.join(directory, f"{prefix}-ca.crt"), os.path.join(directory, f"{prefix}-server.crt"),
             os.path.join(directory, f"{prefix}-server.key"))
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths + (ca_key, ca)


class BodyRefused(Exception):
    """A request body over the peer's limit: answered with a bare 400 and the connection closed."""


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, port, handler, tls=None):
        super().__init__(("127.0.0.1", port), handler)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[0], tls[1])
            # handshake in the per-connection thread, not in accept()
            self.socket = ctx.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.tls = bool(tls)

    @property
    def port(self):
        return self.server_address[1]

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError, OSError, BodyRefused)):
            return
        super().handle_error(request, client_address)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kl-test-peer"
    sys_version = ""
    timeout = 60
    prog = "peer"

    def log_message(self, fmt, *args):  # noqa: N802 (stdlib name)
        log(self.prog, "%s %s" % (self.address_string(), fmt % args))

    # -- request side
    def max_body(self):
        """Largest request body taken, in bytes (Keylime's default max_upload_size, 100 MiB)."""
        return 100 * 1024 * 1024

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > self.max_body():
            # like Keylime's web server (tornado): a bare 400 without a body, then the
            # connection is closed without reading the body
            log(self.prog, f"{self.command} {self.path}: body of {n} bytes over {self.max_body()}: 400")
            self.close_connection = True
            self.wfile.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            self.wfile.flush()
            raise BodyRefused(n)
        return self.rfile.read(n) if n else b""

    def json_body(self):
        """JSON parameters are only parsed with a JSON content type (Keylime json_params)."""
        raw = self.body()
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if not (ctype.startswith("application/") and ctype.endswith("json")):
            return None
        try:
            return json.loads(raw.decode("utf-8")) if raw else None
        except (ValueError, UnicodeDecodeError):
            return None

    # -- response side
    def send(self, status, body=b"", ctype="text/html; charset=UTF-8", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body, indent=1).encode()
            if ctype.startswith("text/html"):
                ctype = "application/json"
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        rid = "".join(c for c in (self.headers.get("X-Request-ID") or "") if c.isalnum() or c == "_")[:36]
        self.send_header("X-Request-ID", rid)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def hang(self, seconds):
        """Accept the request and never answer (until the client gives up or time passes)."""
        log(self.prog, f"fault: not answering {self.command} {self.path} for up to {seconds}s")
        SHUTDOWN.wait(seconds)
        self.close_connection = True

    def serve_fault(self, fault, malformed_status=200):
        """Answers the request with a queued fault. Returns True when it did."""
        if fault is None:
            return False
        log(self.prog, f"fault injected on {self.command} {self.path}: {json.dumps(fault)}")
        if fault == "hang" or (isinstance(fault, dict) and "hang" in fault):
            secs = fault["hang"] if isinstance(fault, dict) else 60
            self.hang(float(secs))
            return True
        if fault == "malformed":
            self.send(malformed_status, b'{"data": {"type": "attestation", "attrib', "application/json")
            return True
        if fault == "close":
            self.close_connection = True
            return True
        if isinstance(fault, int):
            fault = {"status": fault}
        status = int(fault.get("status", 500))
        headers = {}
        if "retry_after" in fault:
            headers["Retry-After"] = fault["retry_after"]
        if status in (500, 415, 405):
            self.send(status, b"", headers=headers)
        else:
            self.send(status, {"errors": [{"status": str(status), "title": "test fault",
                                           "detail": "fault injected by the test peer"}]},
                      "application/json; charset=UTF-8", headers)
        if status == 500:
            self.close_connection = False
        return True


class FaultQueues:
    def __init__(self, kinds):
        self.lock = threading.Lock()
        self.q = {k: [] for k in kinds}

    def add(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("faults must be an object of lists")
        with self.lock:
            for k, v in spec.items():
                if k not in self.q or not isinstance(v, list):
                    raise ValueError(f"unknown fault queue {k!r} (known: {sorted(self.q)})")
                self.q[k].extend(v)

    def pop(self, kind):
        with self.lock:
            return self.q[kind].pop(0) if self.q[kind] else None

    def pending(self):
        with self.lock:
            return {k: list(v) for k, v in self.q.items()}

    def clear(self):
        with self.lock:
            for v in self.q.values():
                v.clear()


def serve_forever(servers, state_file, state, prog):
    import signal

    def stop(*_):
        SHUTDOWN.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    parent = os.getppid()

    def watch_parent():
        # stop when whoever started us is gone (a test that crashed, a killed shell)
        while not SHUTDOWN.wait(0.5):
            if os.getppid() != parent:
                log(prog, f"parent process {parent} is gone: stopping")
                SHUTDOWN.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    threads = []
    for s in servers:
        t = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        t.start()
        threads.append(t)
    if state_file:
        write_state(state_file, state)
    log(prog, f"listening: {json.dumps(state)}")
    SHUTDOWN.wait()
    for s in servers:
        s.shutdown()
        s.server_close()
    log(prog, "stopped")
