"""Offline evaluation: CSV replay through the service's pipeline and the NAB scorer.

- `anomstream.evaluation.replay`: `anomstream replay` — CSV files through `stream.pipeline.Pipeline`
  (scores, alerts, dead letters), written as NAB results and alert JSONL;
- `anomstream.evaluation.replay_input`: a CSV file as the telemetry records a producer would send;
- `anomstream.evaluation.plot`: its `--plot` PNGs (a panel per sensor, alerts, score, label windows);
- `anomstream.evaluation.nab_corpus`: the NAB data, label windows, profiles and result files on disk;
- `anomstream.evaluation.nab_scorer`: the NAB score (windows, scaled sigmoid, profiles, threshold sweep);
- `anomstream.evaluation.nab_alerts`: the NAB score of firing alerts, at a fixed threshold;
- `anomstream.evaluation.cli`: the `replay` and `nab-score` sub-commands.
"""
