"""`deps graph`: a thin caller of remotes.graph."""

from __future__ import annotations

import argparse
import sys

from sudocode_cli import runtime


def deps_graph(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from remotes.graph import GraphError, dependency_graph, graph_render
    from sudocode_cli.errors import UsageError

    try:
        graph = dependency_graph(root=args.root, depth=args.depth, cross_repo=args.cross_repo)
    except GraphError as exc:
        raise UsageError(f"--{exc.field}: {exc}") from None
    sys.stdout.write(graph_render(graph, fmt=args.format) + "\n")
    return 0
