"""`sudocode-fed mcp`: the MCP door (agents.mcp_server) on stdio, for an agent working in this repository."""

from __future__ import annotations

import argparse

from sudocode_cli import runtime


def mcp(args: argparse.Namespace) -> int:
    # Standard output is the protocol's: everything else (set-up notes, warnings, logs) goes to standard error.
    lay = runtime.setup(args.repo)
    from agents.mcp_server import build_server

    build_server(actor=runtime.actor(lay)).run("stdio")
    return 0
