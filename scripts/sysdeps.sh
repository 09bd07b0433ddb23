#!/usr/bin/env bash
# Make sure the Debian packages the test suites need are present: Chromium
# (browser tests), PostgreSQL (database tests), tor (torrc checks). As root on
# Debian they are installed; otherwise this stops with the exact command to
# run, because a suite that silently skips is a suite that does not exist.
set -euo pipefail

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
[ -x /usr/bin/tor ] || [ -x /usr/sbin/tor ] || missing+=(tor)

[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "make test: missing system packages: ${missing[*]}" >&2
    echo "hint: run  sudo apt-get update && sudo $cmd" >&2
    exit 1
fi

echo "make test: installing ${missing[*]} (Debian packages the tests need)" >&2
# Packaged daemons (tor, postgresql) must not start and reach out on their
# own: the tests start their own instances on 127.0.0.1 and stop them.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
fi
trap '[ "$own_policy" -eq 1 ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
$cmd >/dev/null
