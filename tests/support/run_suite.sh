#!/usr/bin/env bash
# Runs one Python test suite against a real `ametist serve`: creates (or reuses) the
# suite's virtualenv from its pinned requirements.txt, then runs pytest in the suite's
# folder. Needs Rust, Python 3.10+ with pip, and PyPI; nothing else.
#
#   bash tests/support/run_suite.sh SUITE_DIR VENV_NAME [pytest arguments...]
#
# The virtualenv lives in target/VENV_NAME (git-ignored) and is reinstalled only when the
# suite's requirements.txt changes. $AMETIST_BIN names the server binary; without it the
# debug build is made and used.
set -euo pipefail
cd "$(dirname "$0")/../.."

SUITE="$1"
VENV="target/$2"
shift 2
PYTHON="${PYTHON:-python3}"
REQ="$SUITE/requirements.txt"

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"the Python test suites need Python 3.10 or newer, found {sys.version.split()[0]}")
PY

stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "== creating $VENV"
    rm -rf "$VENV"
    mkdir -p target
    if "$PYTHON" -m venv "$VENV" 2>/dev/null; then
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
    else
        # Pythons without ensurepip (Debian's without python3-venv): an empty venv, filled
        # by the host's pip (pip >= 22.3 can install into another interpreter).
        rm -rf "$VENV"
        "$PYTHON" -m venv --without-pip "$VENV"
        "$PYTHON" -m pip --python "$VENV/bin/python" install --quiet --disable-pip-version-check -r "$REQ"
    fi
    echo "$want" > "$stamp"
fi

# scripts/test.sh passes the binary `cargo test` just built (same features, no rebuild).
if [ -z "${AMETIST_BIN:-}" ]; then
    echo "== building ametist-server"
    cargo build -p ametist-server --locked 2>&1
    AMETIST_BIN="$(realpath "${CARGO_TARGET_DIR:-target}")/debug/ametist"
fi
export AMETIST_BIN
[ -x "$AMETIST_BIN" ] || { echo "no ametist binary at $AMETIST_BIN" >&2; exit 1; }

echo "== pytest ($SUITE)"
set +e
"$VENV/bin/python" -m pytest -c "$SUITE/pytest.ini" --rootdir "$SUITE" "$SUITE" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here" >&2
    exit 1
fi
exit "$rc"
