#!/usr/bin/env bash
# ensure.sh: make PostgreSQL's server binaries (initdb, postgres) available for the tests of the sql service on
# PostgreSQL (internal/pgtest starts a throwaway cluster from them). `make test` runs it first.
#
# Found in PATH or /usr/lib/postgresql/*/bin: nothing to do. Otherwise, on Debian/Ubuntu as root, installs the
# distribution's postgresql package with apt-get (only the binaries are used: the package's own cluster is
# stopped and not started again by the tests). Elsewhere it says what to install and fails.
set -euo pipefail

found() {
	if command -v initdb >/dev/null && command -v postgres >/dev/null; then return 0; fi
	for d in /usr/lib/postgresql/*/bin; do
		[[ -x $d/initdb && -x $d/postgres ]] && return 0
	done
	return 1
}

if found; then
	exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
	echo "tools/postgres/ensure.sh: PostgreSQL's server binaries are missing; install them (Debian: apt-get install postgresql)" >&2
	exit 1
fi
echo "tools/postgres/ensure.sh: installing postgresql with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the package from starting its own cluster as a service.
policy=/usr/sbin/policy-rc.d
created=
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1
fi
trap '[[ -n $created ]] && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
found || { echo "tools/postgres/ensure.sh: postgresql installed but no initdb found" >&2; exit 1; }
