"""One HTTP request relayed over loopback as raw bytes: the proxies that kill a server at a
chosen request (tests/test_outbox_reports.py, bench/faults_rig.py) read what a device sent,
pass it on and keep the answer, to send it or lose it."""
import socket


def read_request(conn):
    """One HTTP request's bytes from a socket: its head and a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for header in head.split(b"\r\n")[1:]:
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def forward(address, request, timeout):
    """The whole answer (bytes) of the server at address (host, port) to one request."""
    with socket.create_connection(address, timeout=timeout) as upstream:
        upstream.sendall(request)
        chunks = []
        while True:
            chunk = upstream.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
