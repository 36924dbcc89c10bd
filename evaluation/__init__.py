"""Offline evaluation: CSV replay through the service's detectors and the NAB scorer.

- `anomstream.evaluation.replay`: `anomstream replay` — the configured detectors over CSV files, NAB format;
- `anomstream.evaluation.plot`: its `--plot` PNGs (signal, score, threshold, alerts, label windows);
- `anomstream.evaluation.nab_corpus`: the NAB data, label windows, profiles and result files on disk;
- `anomstream.evaluation.nab_scorer`: the NAB score (windows, scaled sigmoid, profiles, threshold sweep);
- `anomstream.evaluation.cli`: the `replay` and `nab-score` sub-commands.
"""
