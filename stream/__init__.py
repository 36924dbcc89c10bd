"""anomstream's streaming side: Kafka I/O, the pure pipeline, metrics, HTTP endpoint and CLI."""
