"""The generated JSON Schema and reference page stay in step with the model; `anomstream config`
builds every detector a config names."""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from ops_helpers import REPO

from anomstream.stream.cli import build_parser
from anomstream.stream.config import Config, default_config_text
from anomstream.stream.config_docs import config_markdown, config_schema, config_schema_text
from anomstream.stream.errors import ConfigError

REGENERATE = "regenerate with `anomstream config --schema > config/schemas/config.schema.json`"


def test_shipped_schema_is_the_generated_one() -> None:
    shipped = resources.files("anomstream.config").joinpath("schemas/config.schema.json")
    assert shipped.read_text("utf-8") == config_schema_text(), REGENERATE
    assert (REPO / "config/schemas/config.schema.json").read_text("utf-8") == config_schema_text()


def test_configuration_reference_is_the_generated_one() -> None:
    page = (REPO / "docs/configuration.md").read_text("utf-8")
    assert page == config_markdown(), (
        "regenerate with `anomstream config --markdown > docs/configuration.md`"
    )
    for section, values in Config().model_dump().items():
        for key in values:
            assert f"| `{section}.{key}` |" in page, f"{section}.{key}"
            assert f"`ANOMSTREAM_{section.upper()}__{key.upper()}`" in page
    assert "| `detector.templates[].params` |" in page


def test_schema_accepts_the_shipped_file_and_rejects_typos() -> None:
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(tomllib.loads(default_config_text()))
    validator.validate(
        tomllib.loads('[[detector.templates]]\nname = "hst"\nparams = { n_trees = 5 }\n')
    )
    for bad in (
        '[kafka]\nbootstrap_server = "x"\n',
        "[alerts]\nmin_run = 0\n",
        '[kafka]\nsasl_mechanism = "X"\n',
    ):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(tomllib.loads(bad))


def _config_command(*argv: str) -> int:
    args = build_parser().parse_args(["config", *argv])
    return int(args.func(args))


def test_config_command_builds_every_detector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "detectors.toml"
    path.write_text(
        '[detector]\nname = "hts"\n'
        '[[detector.templates]]\nname = "hst"\nparams = { n_trees = 5 }\n'
        '[[detector.templates]]\nname = "hst"\nparams = { n_tree = 5 }\n'
        '[[detector.templates]]\nname = "sad"\nmachine = "press-*"\nparams = { window = 3 }\n'
    )
    with pytest.raises(ConfigError) as info:
        _config_command("--config", str(path))
    problems = dict(info.value.problems)
    assert set(problems) == {
        "detector.name",
        "detector.templates[1].params",
        "detector.templates[2].params",
    }
    assert "unknown detector 'hts'" in problems["detector.name"]
    assert "n_tree" in problems["detector.templates[1].params"]
    path.write_text('[[detector.templates]]\nname = "ewm-zscore"\nsensor = "vib_*"\n')
    assert _config_command("--config", str(path)) == 0
    assert json.loads(capsys.readouterr().out)["detector"]["templates"][0]["sensor"] == "vib_*"


def test_config_command_prints_the_schema_and_the_reference(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _config_command("--schema") == 0
    assert json.loads(capsys.readouterr().out)["title"] == "anomstream configuration"
    assert _config_command("--markdown") == 0
    assert capsys.readouterr().out.startswith("# Configuration reference")
