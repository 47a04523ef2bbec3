#!/usr/bin/env bash
# A second virtualenv, .venv-ryu, with classic Ryu 4.34 in place of os-ken: the controller's
# OVS tests run in it with SEGCTL_FRAMEWORK=ryu (tests/ovs/test_ryu.py), and `ryu-manager`
# can load segctl's app (docs/controller.md). Idempotent: kept while this script and
# pyproject.toml are unchanged, so CI builds it once.
#
# Ryu 4.34 (2020) on Python 3.11: its setup.py needs setuptools < 68 and no build
# isolation; it wants dnspython >= 2 and eventlet >= 0.33 there; segctl's framework module
# puts back eventlet.wsgi.ALREADY_HANDLED before importing it. segctl itself is used from
# the source tree (PYTHONPATH), its other dependencies come from pyproject.toml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
VENV="${RYU_VENV:-.venv-ryu}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.segctl-ryu-stamp"
log() { printf 'ryu-venv: %s\n' "$*"; }

want="$(cat scripts/ryu-venv.sh pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null || true)" = "$want" ]; then
    log "$VENV up to date"
    exit 0
fi
log "building $VENV with $("$PYTHON" --version 2>&1) (once; a few minutes)"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install -q)
# segctl's dependencies and its [lab] extra (the test bed) but os-ken (Ryu replaces it) and
# mininet (no scenario runs here), plus pytest.
mapfile -t deps < <("$VENV/bin/python" - <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]
wanted = project["dependencies"] + extras["lab"] + [d for d in extras["dev"] if d.startswith("pytest")]
print("\n".join(d for d in wanted if not d.lower().startswith(("os-ken", "mininet"))))
PY
)
if ! { "${pip[@]}" "setuptools<68" wheel \
       && "${pip[@]}" --no-build-isolation "ryu==4.34" \
       && "${pip[@]}" "dnspython>=2" "eventlet>=0.33" "${deps[@]}"; } >"$VENV/pip.log" 2>&1; then
    cat "$VENV/pip.log" >&2
    log "ERROR: pip install failed (log: $VENV/pip.log)"
    exit 1
fi
echo "$want" >"$STAMP"
log "$VENV ready: ryu $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("ryu"))')"
