#!/usr/bin/env bash
# The Python client tests: the real qdrant-client (pinned in requirements.txt) against a
# real `ametist serve`. Needs Rust, Python 3.10+ with pip, and PyPI; nothing else.
#
#   bash tests/python/run.sh                 # everything
#   bash tests/python/run.sh -k parity -x    # extra arguments go to pytest
#
# The virtualenv lives in target/py-venv (see tests/support/run_suite.sh).
exec bash "$(dirname "$0")/../support/run_suite.sh" tests/python py-venv "$@"
