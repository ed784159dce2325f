#!/usr/bin/env bash
# The hostile suite: bad input, slow clients, crafted snapshots, a full disk, fuzzing with
# schemathesis over the server's own OpenAPI document, and a memory ceiling, against a real
# `ametist serve`. Bounded in time; needs Rust, Python 3.10+ with pip, and PyPI.
#
#   bash tests/hostile/run.sh                 # everything
#   bash tests/hostile/run.sh -k snapshot -x  # extra arguments go to pytest
#
# The virtualenv lives in target/hostile-venv (see tests/support/run_suite.sh).
exec bash "$(dirname "$0")/../support/run_suite.sh" tests/hostile hostile-venv "$@"
