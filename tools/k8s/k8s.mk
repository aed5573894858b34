# Local Kubernetes control plane (docs/kubernetes-local.md).
# Included by the top-level Makefile; recipes run from the repository root.
#
#   make k8s-build   build etcd and Kubernetes v1.37.2 binaries once into
#                    $${KOUPLE_CACHE:-$$HOME/.cache/kouple}/k8s/<version>/bin
#   make k8s-up      start etcd, kube-apiserver, kube-controller-manager and
#                    kube-scheduler on 127.0.0.1 (state and logs in .k8s/),
#                    wait until ready, print KUBECONFIG= and KUBECTL= lines
#   make k8s-down    stop them and remove .k8s/
#
# Ports default to 6443 (API), 2379/2380 (etcd), 10257 (controller manager)
# and 10259 (scheduler); override with K8S_APISERVER_PORT, K8S_ETCD_PORT,
# K8S_ETCD_PEER_PORT, K8S_KCM_PORT, K8S_SCHEDULER_PORT.

K8S_SH := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))/k8s.sh

.PHONY: k8s-build k8s-up k8s-down

k8s-build:
	@$(K8S_SH) build

k8s-up:
	@$(K8S_SH) up

k8s-down:
	@$(K8S_SH) down
