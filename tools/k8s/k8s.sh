#!/usr/bin/env bash
# k8s.sh builds and runs a local Kubernetes control plane for Kouple.
#
#   tools/k8s/k8s.sh build   build etcd, kube-apiserver, kube-controller-manager,
#                            kube-scheduler and kubectl once into the cache and
#                            print the bin directory
#   tools/k8s/k8s.sh bindir  print the bin directory (without building)
#   tools/k8s/k8s.sh up      build if needed, start the daemons on 127.0.0.1,
#                            wait until ready, print KUBECONFIG= and KUBECTL=
#   tools/k8s/k8s.sh down    stop the daemons and remove their state
#
# Environment:
#   KOUPLE_CACHE        cache root (default $HOME/.cache/kouple); binaries go to
#                       $KOUPLE_CACHE/k8s/<version>/bin
#   K8S_STATE_DIR       runtime state: certs, etcd data, logs, kubeconfig
#                       (default <repo>/.k8s)
#   K8S_APISERVER_PORT  (default 6443), K8S_ETCD_PORT (default 2379),
#   K8S_ETCD_PEER_PORT  (default 2380), K8S_KCM_PORT (default 10257),
#   K8S_SCHEDULER_PORT  (default 10259)
#
# The daemons are started and stopped by the Go harness in test/kube (the same
# code that end-to-end tests use); see docs/kubernetes-local.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

# The Kubernetes version is the one tools/k8s/go.mod requires.
version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3; exit }
	$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$here/go.mod")"
if [[ -z "$version" ]]; then
	echo "k8s.sh: cannot find the k8s.io/kubernetes version in $here/go.mod" >&2
	exit 1
fi
cache="${KOUPLE_CACHE:-$HOME/.cache/kouple}/k8s/$version"
bindir="$cache/bin"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)

have_binaries() {
	local b
	for b in "${binaries[@]}"; do
		[[ -x "$bindir/$b" ]] || return 1
	done
}

build() {
	if have_binaries; then
		echo "$bindir"
		return
	fi
	mkdir -p "$cache"
	# One build at a time per cache, even with parallel test processes.
	exec 9>"$cache/build.lock"
	flock 9
	if have_binaries; then
		echo "$bindir"
		return
	fi
	local log="$cache/build.log" tmp
	tmp="$(mktemp -d "$cache/bin.tmp.XXXXXX")"
	local major minor pkg="k8s.io/component-base/version"
	major="${version#v}"; major="${major%%.*}"
	minor="${version#v*.}"; minor="${minor%%.*}"
	local ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
	ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "k8s.sh: building Kubernetes $version and etcd from Go modules into $bindir" >&2
	echo "k8s.sh: this takes ~5 min the first time; log: $log" >&2
	local start=$SECONDS
	# "set -e" does not apply inside an "if" condition, hence the "&&"s.
	if ! (
		cd "$here" &&
		export CGO_ENABLED=0 &&
		set -x &&
		go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
			k8s.io/kubernetes/cmd/kube-apiserver \
			k8s.io/kubernetes/cmd/kube-controller-manager \
			k8s.io/kubernetes/cmd/kube-scheduler \
			k8s.io/kubernetes/cmd/kubectl &&
		# etcd's main package is the module root, so go build would call it "server".
		go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3
	) >"$log" 2>&1; then
		echo "k8s.sh: build failed; last lines of $log:" >&2
		tail -n 40 "$log" >&2
		rm -rf "$tmp"
		exit 1
	fi
	rm -rf "$bindir"
	mv "$tmp" "$bindir"
	echo "k8s.sh: built in $((SECONDS - start)) s" >&2
	echo "$bindir"
}

harness() {
	# The harness is plain Go (standard library only) in the root module.
	# Built to a private temporary file rather than "go run", which would
	# add its own "exit status 1" line to every failure.
	local tmp rc=0
	tmp="$(mktemp -d)"
	(cd "$repo" && go build -o "$tmp/k8s-local" ./test/kube/cmd/k8s-local) || { rm -rf "$tmp"; return 1; }
	"$tmp/k8s-local" "$@" || rc=$?
	rm -rf "$tmp"
	return "$rc"
}

state="${K8S_STATE_DIR:-$repo/.k8s}"

case "${1:-}" in
build)
	build
	;;
bindir)
	echo "$bindir"
	;;
up)
	build >/dev/null
	harness up -bin "$bindir" -state "$state" \
		-apiserver-port "${K8S_APISERVER_PORT:-6443}" \
		-etcd-port "${K8S_ETCD_PORT:-2379}" \
		-etcd-peer-port "${K8S_ETCD_PEER_PORT:-2380}" \
		-kcm-port "${K8S_KCM_PORT:-10257}" \
		-scheduler-port "${K8S_SCHEDULER_PORT:-10259}"
	;;
down)
	harness down -state "$state"
	;;
*)
	echo "usage: $0 build|bindir|up|down" >&2
	exit 2
	;;
esac
