#!/usr/bin/env bash
# One idempotent set-up for development and CI (root, CI=true, no stdin):
#   1. Debian packages (apt-get update only when something is missing),
#   2. .venv with `pip install -e '.[dev]'` (skipped while pyproject.toml is unchanged),
#   3. ovsdb-server + ovs-vswitchd running, checked with a netdev (userspace) bridge.
# The machines have no openvswitch kernel module, so `ovs-ctl start` (which insists
# on loading it) is used for ovsdb-server only and ovs-vswitchd is started directly.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export DEBIAN_FRONTEND=noninteractive PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.segctl-install-stamp"
OVS_RUNDIR="${OVS_RUNDIR:-/var/run/openvswitch}"
OVS_CTL=/usr/share/openvswitch/scripts/ovs-ctl
CHECK_BR=sgsetupcheck
# chromium: the report's layout test (tests/unit/test_report_browser.py) runs it headless.
PACKAGES=(openvswitch-switch openvswitch-common mininet iputils-ping tcpdump iproute2
          make python3 python3-venv python3-pip ca-certificates chromium)

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }

# --- 1. system packages -------------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    log "apt packages present"
fi

# --- 2. virtualenv -------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want" != "$have" ] || ! "$VENV/bin/python" -c 'import segctl' 2>/dev/null; then
    log "pip install -e '.[dev]'"
    # pip/setuptools chatter goes to a log that is shown only on failure.
    if ! { "$VENV/bin/python" -m pip install -q --upgrade pip \
           && "$VENV/bin/python" -m pip install -q -e '.[dev]'; } >"$VENV/pip.log" 2>&1; then
        cat "$VENV/pip.log" >&2
        die "pip install failed (log: $VENV/pip.log)"
    fi
    echo "$want" >"$STAMP"
else
    log "$VENV up to date with pyproject.toml"
fi

# --- 3. Open vSwitch daemons (userspace datapath) -------------------------------------
if ! as_root ovs-vsctl --timeout=3 show >/dev/null 2>&1; then
    log "starting ovsdb-server"
    as_root "$OVS_CTL" --no-ovs-vswitchd --system-id=random start >/dev/null
fi
if ! as_root ovs-appctl -t ovs-vswitchd version >/dev/null 2>&1; then
    log "starting ovs-vswitchd (no kernel module needed for datapath_type=netdev)"
    as_root mkdir -p /var/log/openvswitch
    as_root ovs-vswitchd "unix:$OVS_RUNDIR/db.sock" -vconsole:emer -vsyslog:err -vfile:info \
        --no-chdir --log-file --pidfile --detach
fi
cleanup_check() { as_root ovs-vsctl --timeout=10 --if-exists del-br "$CHECK_BR" >/dev/null 2>&1 || true; }
trap cleanup_check EXIT
as_root ovs-vsctl --timeout=10 --may-exist add-br "$CHECK_BR" \
    -- set bridge "$CHECK_BR" datapath_type=netdev \
    || die "cannot create a datapath_type=netdev bridge (see /var/log/openvswitch/ovs-vswitchd.log)"
ofport="$(as_root ovs-vsctl --timeout=10 get interface "$CHECK_BR" ofport)"
[ "$ofport" = 65534 ] || die "netdev bridge did not come up (ofport=$ofport)"
cleanup_check
trap - EXIT
log "Open vSwitch $(ovs-vsctl --version | head -1 | awk '{print $NF}') ready (userspace datapath)"
