"""anomstream: streaming anomaly detection for factory machine telemetry on Kafka.

The one import package. In the repository its sub-packages are top-level folders, mapped here
by `pyproject.toml` (`[tool.setuptools.package-dir]`), so this folder holds only this file and
`__main__.py`; it is only importable as a whole once installed (`pip install .`):

- `anomstream.stream`: Kafka I/O, the pure pipeline, metrics, HTTP endpoint, CLI (`stream/`);
- `anomstream.detectors`: River-API detectors, per-entity models, the alert policy (`detectors/`);
- `anomstream.evaluation`: offline replay and the NAB scorer (`evaluation/`);
- `anomstream.config`: the shipped default config, schemas and operations kit (`config/`).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
