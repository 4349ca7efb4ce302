"""``remindbot serve``'s first second: the port bound at once, and ``/healthz`` answering "starting".

At a province's scale the service takes seconds to import its stack, open the schedules and
start its loops. Meanwhile a health checker (a load balancer, systemd, a platform's router) would
find nothing listening and might restart it. So the command binds the listening socket first
(:func:`bind`: a port in use ends the start before anything is loaded) and an :class:`EarlyHealth`
thread answers on it, with only the standard library:

- ``GET /healthz`` → ``503 {"status": "starting", ...}``: true (it cannot send yet), never a 200;
- anything else → ``503`` with a Chinese page: "starting, try again in a moment".

When the service's own web site is listening on the same socket (a duplicate of it), the thread
stops (:meth:`EarlyHealth.stop`); from then on the service's ``/healthz`` answers with its checks.
No moment is left without a listener: both accept on the one socket while they overlap.
"""

from __future__ import annotations

import errno
import json
import logging
import selectors
import socket
import threading
import time

log = logging.getLogger(__name__)
READ_LIMIT = 8192  # request head bytes read before answering; the early server ignores bodies
CLIENT_TIMEOUT = 2.0  # seconds a client may take to send its request line


class CannotBind(Exception):
    """The address cannot be listened on; ``str()`` is one Chinese sentence for the admin."""


def bind_problem(host: str, port: int, exc: OSError) -> str:
    """Why ``host:port`` cannot be listened on, as the admin reads it (also used by bot.service)."""
    reason = "端口已被占用（另一个 remindbot 或其他程序正在使用）" if exc.errno == errno.EADDRINUSE else (
        f"无法在这个地址监听（{exc.strerror or type(exc).__name__}）")
    return (f"无法启动：{host}:{port} {reason}。请换一个端口（--port 或 PORT）"
            "或先停止占用它的程序。")


def bind(host: str, port: int) -> socket.socket | None:
    """A listening TCP socket on ``host:port`` (SO_REUSEADDR, as aiohttp's own), or None when the host
    names several addresses (then the service binds them itself, as before).

    Errors: ``CannotBind`` (Chinese) when the address is in use or not ours.
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise CannotBind(bind_problem(host, port, exc)) from None
    if len({info[4][:2] for info in infos}) != 1:
        return None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise CannotBind(bind_problem(host, port, exc)) from None
    sock.setblocking(False)
    return sock


class EarlyHealth:
    """Answers on ``sock`` from a thread until :meth:`stop`: ``/healthz`` says "starting" (503)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.started_at = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="early-healthz", daemon=True)
        self.answered = 0

    def start(self) -> EarlyHealth:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering (the service's site now accepts on the socket); waits for the thread."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            while not self._stop.is_set():
                if not selector.select(timeout=0.05):
                    continue
                try:
                    client, _ = self.sock.accept()
                except (BlockingIOError, InterruptedError):  # the service's site took it first
                    continue
                except OSError:  # the socket was closed under us: nothing more to answer
                    return
                try:
                    self._answer(client)
                except OSError:
                    pass
                finally:
                    client.close()

    def _answer(self, client: socket.socket) -> None:
        client.setblocking(True)
        client.settimeout(CLIENT_TIMEOUT)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < READ_LIMIT:
            chunk = client.recv(READ_LIMIT)
            if not chunk:
                break
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode("latin-1", "replace").split()
        path = line[1].split("?", 1)[0] if len(line) >= 2 else ""
        if path == "/healthz":
            body = json.dumps({"status": "starting", "message": "正在启动：加载日程配置、连接数据库",
                               "starting_for_seconds": round(time.time() - self.started_at, 1)},
                              ensure_ascii=False).encode()
            kind = "application/json; charset=utf-8"
        else:
            body = ("<!doctype html><meta charset=utf-8><title>正在启动</title>"
                    "<p>remindbot 正在启动，请稍候再试。").encode()
            kind = "text/html; charset=utf-8"
        client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: " + kind.encode()
                       + b"\r\nContent-Length: " + str(len(body)).encode()
                       + b"\r\nRetry-After: 1\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n" + body)
        self.answered += 1
