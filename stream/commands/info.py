"""`anomstream detectors` and `anomstream config`: what can be configured, and a config check."""

from __future__ import annotations

import argparse
import json

from anomstream.detectors.registry import DETECTORS, detector_names
from anomstream.stream.config import default_config_text
from anomstream.stream.config_detectors import check_detectors
from anomstream.stream.config_docs import config_markdown, config_schema_text
from anomstream.stream.options import add_config_flags, config_from_args

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    detectors = subparsers.add_parser(
        "detectors",
        help="list the detectors [detector] name = ... accepts",
        description="List the detector names the config accepts, with a one-line summary each.",
    )
    detectors.set_defaults(func=_list_detectors)

    config = subparsers.add_parser(
        "config",
        help="print the default config, or validate yours",
        description=(
            "Without --config: print the shipped default configuration (every key, commented). "
            "With --config FILE: validate FILE plus ANOMSTREAM_* environment overrides, build "
            "every detector it names, and print the effective configuration as JSON (secrets "
            "masked); exit with a config error listing every offending key if invalid."
        ),
    )
    add_config_flags(config)
    output = config.add_mutually_exclusive_group()
    output.add_argument(
        "--schema", action="store_true", help="print the JSON Schema of the config file and exit"
    )
    output.add_argument(
        "--markdown",
        action="store_true",
        help="print the configuration reference (docs/configuration.md) and exit",
    )
    config.set_defaults(func=_config)


def _list_detectors(args: argparse.Namespace) -> int:
    del args
    width = max(map(len, DETECTORS))
    for name in detector_names():
        print(f"{name:<{width}}  {DETECTORS[name].summary}")
    return 0


def _config(args: argparse.Namespace) -> int:
    if args.schema:
        print(config_schema_text(), end="")
        return 0
    if args.markdown:
        print(config_markdown(), end="")
        return 0
    if args.config is None:
        print(default_config_text(), end="")
        return 0
    config = config_from_args(args)
    check_detectors(config)
    # JSON mode masks every SecretStr as "**********" (an unset one stays "").
    print(json.dumps(config.model_dump(mode="json"), indent=2))
    return 0
