"""anomstream's streaming side: Kafka I/O, the pure pipeline, metrics, HTTP endpoint and CLI."""

__all__ = ["__version__"]

__version__ = "0.1.0"
