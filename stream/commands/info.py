"""`anomstream detectors` and `anomstream config`: what can be configured, and a config check."""

from __future__ import annotations

import argparse
import dataclasses
import json

from anomstream.detectors.registry import DETECTORS, detector_names
from anomstream.stream.config import default_config_text
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
            "With --config FILE: validate FILE plus ANOMSTREAM_* environment overrides and print "
            "the effective configuration as JSON; exit 2 with the offending key if invalid."
        ),
    )
    add_config_flags(config)
    config.set_defaults(func=_config)


def _list_detectors(args: argparse.Namespace) -> int:
    del args
    width = max(map(len, DETECTORS))
    for name in detector_names():
        print(f"{name:<{width}}  {DETECTORS[name].summary}")
    return 0


def _config(args: argparse.Namespace) -> int:
    if args.config is None:
        print(default_config_text(), end="")
        return 0
    effective = dataclasses.asdict(config_from_args(args))
    state = effective["state"]  # secrets are validated, never printed
    state["signing_key"] = "<set>" if state["signing_key"] else ""
    state["previous_signing_keys"] = ["<set>"] * len(state["previous_signing_keys"])
    kafka = effective["kafka"]
    for key in ("ssl_password", "sasl_password"):
        kafka[key] = "<set>" if kafka[key] else ""
    print(json.dumps(effective, indent=2, default=list))
    return 0
