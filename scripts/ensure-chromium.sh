#!/usr/bin/env bash
# Makes sure Debian's chromium is installed, for the browser test of /docs and /redoc
# (tests/test_docs_browser.py). `make test` runs this in CI (CI=true) or with INSTALL_CHROMIUM=1;
# otherwise that test skips when chromium is missing.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [[ -x "$CHROMIUM" ]]; then
    exit 0
fi

if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: installing chromium with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
    if [[ ! -x "$CHROMIUM" ]]; then
        echo "ensure-chromium: apt-get finished but $CHROMIUM is still missing" >&2
        exit 1
    fi
    exit 0
fi

cat >&2 <<'HELP'
ensure-chromium: chromium is not installed, and this script can only install it as root on a
system with apt-get. Install it yourself, for example:
    sudo apt-get update && sudo apt-get install -y chromium      (Debian, Ubuntu)
or point the tests at another Chromium or Chrome binary with CHROMIUM=/path/to/chrome.
HELP
exit 1
