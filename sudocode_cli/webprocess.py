"""One web process of `serve --workers N`: load the ASGI application first, then listen on the shared port with
SO_REUSEPORT and serve it with daphne. Listening only once loaded means the port never accepts a connection no
process is ready to answer (a socket bound by `serve` would queue them while every process still imports
Django); the kernel spreads connections over the processes listening.

    python -m sudocode_cli.webprocess HOST PORT [daphne options...]
"""

from __future__ import annotations

import os
import socket
import sys

APPLICATION = "federation_site.asgi:application"


def listen(host: str, port: int, *, backlog: int = 1024) -> socket.socket:
    """A listening socket on (host, port) that other processes may listen on too (SO_REUSEPORT)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def main(argv: list[str]) -> int:
    host, port, daphne_args = argv[0], int(argv[1]), argv[2:]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "federation_site.settings")
    from daphne.cli import CommandLineInterface

    import federation_site.asgi  # noqa: F401  (the slow part: Django, the agents' doors)

    sock = listen(host, port)
    CommandLineInterface().run(["--fd", str(sock.fileno()), *daphne_args, APPLICATION])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
