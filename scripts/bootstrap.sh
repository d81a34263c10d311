#!/usr/bin/env bash
# Create .venv and install bandmaster into it (editable). Idempotent and quiet.
#   scripts/bootstrap.sh          what `bandmaster demo` needs (the library plus the demo extra)
#   scripts/bootstrap.sh --dev    plus the test and lint tools, and the Debian packages tests use
set -euo pipefail
cd "$(dirname "$0")/.."

extras="[demo]"
if [[ "${1:-}" == "--dev" ]]; then
    extras="[dev]"
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "bandmaster needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
    exit 2
fi

if [[ ! -x .venv/bin/python ]]; then
    "$python" -m venv .venv
fi

# Reinstall only when pyproject.toml changed since the last install of these extras.
stamp=".venv/.bandmaster-installed-${extras//[^a-z]/}"
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip 2>/dev/null || true
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}"
    touch "$stamp"
fi

# --dev: Debian packages the tests start for real, installed only when missing:
#   prometheus                the metrics scrape test (tests/observe)
#   chromium, chromium-driver the browser tests (tests/server), driven by Playwright; never a
#                             browser that Playwright downloads
#   wrk                       benchmarks/bench_server.py's load generator (C, so the client does
#                             not eat the CPU it measures)
#   rabbitmq-server           the queue consumer tests (tests/triggers) and bench_consumer.py
if [[ "$extras" == "[dev]" ]] && command -v apt-get >/dev/null 2>&1; then
    missing=()
    command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
    [[ -x /usr/bin/chromium ]] || missing+=(chromium chromium-driver)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    [[ -x /usr/sbin/rabbitmq-server ]] || missing+=(rabbitmq-server)
    if (( ${#missing[@]} )); then
        if [[ $(id -u) -eq 0 ]]; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        else
            echo "note: the full test suite needs: sudo apt-get install ${missing[*]}" >&2
        fi
    fi
fi
