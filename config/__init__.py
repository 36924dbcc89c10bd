"""Configuration files shipped with anomstream (default config, schemas, ops kit)."""
