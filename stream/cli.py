"""`anomstream` command line: one sub-command per module, each registering itself.

A sub-command module exposes `register(subparsers)`, which adds its parser and sets
`func=<callable(args) -> int>`. Shared flags (`--config`, `--bootstrap-servers`, ...) come from
`anomstream.stream.options` so every command spells them the same way.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from anomstream.stream import signals
from anomstream.stream.errors import AnomstreamError, BrokerUnavailable

from anomstream import __version__

__all__ = ["build_parser", "main"]

# Module paths of sub-commands, in the order `--help` lists them.
SUBCOMMAND_MODULES = (
    "anomstream.stream.commands.run",
    "anomstream.stream.commands.demo",
    "anomstream.stream.commands.simulate",
    "anomstream.stream.commands.info",
    "anomstream.evaluation.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anomstream",
        description="Streaming anomaly detection for machine telemetry on Kafka.",
        epilog="Start with `anomstream demo`. Each command has its own --help.",
    )
    parser.add_argument("--version", action="version", version=f"anomstream {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        # No fallback for a missing module: a sub-command absent from an install is a broken
        # install, and must fail loudly rather than vanish from --help.
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    signals.install()  # before the heavy imports below: an early SIGTERM is a clean stop
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokerUnavailable as exc:  # retry later (sysexits EX_UNAVAILABLE)
        print(f"anomstream: {exc}", file=sys.stderr)
        return 69
    except AnomstreamError as exc:
        print(f"anomstream: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
