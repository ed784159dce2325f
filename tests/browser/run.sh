#!/usr/bin/env bash
# The browser suite: the dashboard at /dashboard in a real headless Chromium, driven by
# Selenium, against a real `ametist serve`. Screenshots of every view go to
# tests/browser/screenshots/ (git-ignored; $BROWSER_SCREENSHOTS names another folder).
#
#   bash tests/browser/run.sh                # everything (about a minute)
#   bash tests/browser/run.sh -k search -x   # extra arguments go to pytest
#
# Installs Debian's chromium and chromium-driver with apt-get when they are missing (as
# root, or through sudo). The virtualenv lives in target/browser-venv (see
# tests/support/run_suite.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "== installing Debian's chromium and chromium-driver"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

exec bash tests/support/run_suite.sh tests/browser browser-venv "$@"
