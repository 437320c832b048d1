#!/bin/sh
# Builds the wheels of both distributions (and of every dependency) and installs them into a new
# virtual environment. The container image (deploy/Dockerfile) and the packaging test
# (tests/project/test_packaging.py) both install Tracehouse with this script, so the test checks what the
# image ships.
#
#   deploy/install-wheels.sh SOURCE_DIR WHEEL_DIR VENV [PIP_OPTION...]
#
# PIP_OPTIONs go to both pip calls: the image passes --no-cache-dir; the test passes --no-index
# --find-links WHEELHOUSE so that it builds offline. $PYTHON picks the interpreter (python3).
set -eu
[ $# -ge 3 ] || { echo "usage: $0 SOURCE_DIR WHEEL_DIR VENV [PIP_OPTION...]" >&2; exit 2; }
src=$1 wheels=$2 venv=$3
shift 3
python=${PYTHON:-python3}

"$python" -m pip wheel --quiet "$@" --wheel-dir "$wheels" "$src/instrumentation" "$src/collector"
"$python" -m venv "$venv"
# Only the wheels just built: nothing is resolved again from an index at this step.
"$venv/bin/python" -m pip install --quiet "$@" --no-index --find-links "$wheels" tracehouse-collector tracehouse
