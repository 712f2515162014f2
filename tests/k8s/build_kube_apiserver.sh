#!/usr/bin/env bash
# Superseded by build_kube.sh, which builds kube-apiserver together with
# kubelet, kube-controller-manager and kube-scheduler in one go build.
# Prints kube-apiserver's path, as this script always did.
exec "$(dirname "$0")/build_kube.sh" kube-apiserver
