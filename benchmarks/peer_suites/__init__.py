"""The peers' own test suites run against diary: MLflow's REST tracking tests against `diary server` and
Lightning's logger tests with DiaryLogger, each beside the peer itself (`scripts/peer-suites`).

Only the fixture that says which server or logger a test talks to is swapped (a pytest plugin the
runner loads: `mlflow_plugin`, `lightning_plugin`); every test body runs as its maintainers wrote it.
The checkouts are read where they are and never copied into this repository.
"""
