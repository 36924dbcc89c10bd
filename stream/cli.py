"""`anomstream` command line: one sub-command per module, each registering itself.

A sub-command module exposes `register(subparsers)`, which adds its parser and sets
`func=<callable(args) -> int>`. Shared flags (`--config`, `--bootstrap-servers`, ...) come from
`anomstream.stream.options` so every command spells them the same way.

Exit codes follow sysexits(3), so a supervisor can tell "fix the config" from "retry later":
see `EXIT_CODES` (also in `anomstream --help`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from anomstream.stream import signals
from anomstream.stream.errors import (
    AnomstreamError,
    BrokerUnavailable,
    ConfigError,
    DeliveryError,
    TopicLayoutError,
)

from anomstream import __version__

__all__ = [
    "EXIT_CODES",
    "EX_CONFIG",
    "EX_INTERNAL",
    "EX_INTERRUPTED",
    "EX_OK",
    "EX_UNAVAILABLE",
    "EX_USAGE",
    "build_parser",
    "exit_code",
    "main",
]

log = logging.getLogger("anomstream")

EX_OK = 0
EX_INTERNAL = 1  # a bug: an exception nobody raised on purpose
EX_USAGE = 2  # argparse's own code for a bad command line
EX_UNAVAILABLE = 69  # sysexits EX_UNAVAILABLE
EX_CONFIG = 78  # sysexits EX_CONFIG
EX_INTERRUPTED = 130  # 128 + SIGINT: a second Ctrl-C

EXIT_CODES = {
    EX_OK: "clean stop (finished, or SIGTERM/SIGINT: batch finished, state and offsets committed)",
    EX_INTERNAL: "internal error (a bug): one line on stderr, the traceback in the log",
    EX_USAGE: "usage error (bad command line)",
    EX_UNAVAILABLE: "Kafka unavailable: unreachable, or output not acknowledged; retry later",
    EX_CONFIG: "configuration error, or topics that do not fit it (e.g. changelog partitions)",
    EX_INTERRUPTED: "aborted by a second SIGINT",
}

# Most specific first. DeliveryError is 69 too: the broker did not acknowledge in time, the
# remedy (restart once the broker is back) is the same, and nothing is lost: offsets were
# not committed.
_ERROR_CODES: tuple[tuple[type[AnomstreamError], int], ...] = (
    (ConfigError, EX_CONFIG),
    (TopicLayoutError, EX_CONFIG),
    (BrokerUnavailable, EX_UNAVAILABLE),
    (DeliveryError, EX_UNAVAILABLE),
)

# Module paths of sub-commands, in the order `--help` lists them.
SUBCOMMAND_MODULES = (
    "anomstream.stream.commands.run",
    "anomstream.stream.commands.demo",
    "anomstream.stream.commands.simulate",
    "anomstream.stream.commands.info",
    "anomstream.evaluation.cli",
    "anomstream.evaluation.evaluate_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anomstream",
        description="Streaming anomaly detection for machine telemetry on Kafka.",
        epilog="Start with `anomstream demo`. Each command has its own --help.\n\nexit codes:\n"
        + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"anomstream {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        # No fallback for a missing module: a sub-command absent from an install is a broken
        # install, and must fail loudly rather than vanish from --help.
        importlib.import_module(module_name).register(subparsers)
    return parser


def exit_code(exc: BaseException) -> int:
    """The process exit code for an exception that ended a command."""
    from kafka import errors  # here, not at the top: `main` installs the signal handlers first

    for kind, code in _ERROR_CODES:
        if isinstance(exc, kind):
            return code
    # kafka-python's own "cannot reach the cluster" errors, if one escapes mid-run: not a bug.
    if isinstance(exc, (errors.KafkaConnectionError, errors.KafkaTimeoutError)):
        return EX_UNAVAILABLE
    return EX_INTERNAL


def _deliberate(exc: BaseException | None) -> AnomstreamError | None:
    """The `AnomstreamError` behind `exc`, if any: kafka-python re-raises an exception of a
    rebalance callback (say, `TopicLayoutError` at assignment) as a `KafkaError` from it."""
    while exc is not None:
        if isinstance(exc, AnomstreamError):
            return exc
        exc = exc.__cause__
    return None


# One BLAS thread: the pipeline scores one reading at a time on small matrices (the machine
# model's p x p precision, p <= 128), where OpenBLAS's thread pool costs far more than it saves
# (a 52 x 52 `eigh` took 25 ms with the pool on a busy 2-core machine, 0.7 ms without). Set
# before numpy is first imported; a value the user set wins.
_ONE_THREAD = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def main(argv: Sequence[str] | None = None) -> int:
    for name in _ONE_THREAD:
        os.environ.setdefault(name, "1")
    signals.install()  # before the heavy imports below: an early SIGTERM is a clean stop
    parser = build_parser()
    args = parser.parse_args(argv)  # exits EX_USAGE itself on a bad command line
    if not getattr(args, "func", None):
        parser.print_help()
        return EX_USAGE
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return EX_INTERRUPTED
    except Exception as exc:  # the last line of defence
        deliberate = _deliberate(exc)
        if deliberate is not None:
            # Raised on purpose, with a message that says what to do: no traceback.
            print(f"anomstream: {deliberate}", file=sys.stderr)
            return exit_code(deliberate)
        code = exit_code(exc)
        what = "internal error" if code == EX_INTERNAL else "Kafka unavailable"
        log.critical(what, exc_info=exc)
        print(f"anomstream: {what}: {type(exc).__name__}: {exc} (traceback in the log)",
              file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
