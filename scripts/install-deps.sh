#!/usr/bin/env bash
# Installs what building execmon needs (and with --test, what its tests
# need too), from Debian 12 packages. Idempotent: apt runs only when a
# package is missing. Needs root.
set -euo pipefail

BUILD_PACKAGES=(
  cmake make g++ pkg-config clang llvm bpftool
  libbpf-dev libelf-dev zlib1g-dev libabsl-dev rapidjson-dev libyaml-cpp-dev
  # libcurl also serves agent/k8s (the pod watcher's HTTP client)
  prometheus-cpp-dev libmicrohttpd-dev libcurl4-openssl-dev
  librdkafka-dev libjemalloc-dev
  # the build-ID index (agent/index): archives, Debian metadata, sha256
  libarchive-dev libapt-pkg-dev libssl-dev
  # tests: the unit tests are built with everything else by scripts/build.sh
  # (the image recipe builds the agent alone and does not need these)
  libgtest-dev libgmock-dev
)

TEST_PACKAGES=(
  # tests: a real Prometheus server; real containers (podman + runc: crun
  # refuses hybrid cgroup hosts) from images built locally with buildah
  prometheus podman runc buildah busybox-static
  # tests
  python3 python3-pytest python3-yaml python3-jsonschema binutils util-linux
  # tests/k8s: a real etcd for kube-apiserver (built from its Go module by
  # tests/k8s/build_kube.sh), etcdctl, openssl for test PKI
  etcd-server etcd-client openssl
  # tests/node: a real node (kubelet from tests/k8s/build_kube.sh) on
  # containerd + runc, CNI bridge/host-local plugins for workload pods, ip
  # (the node's network namespace), iptables (kubelet's chains in it); the
  # images' Debian bases made with mmdebstrap (no registry), gcc for the
  # static pause and victim binaries
  containerd containernetworking-plugins iproute2 iptables mmdebstrap gcc libc6-dev
  # Kafka e2e tests: a real broker from Maven Central jars, kcat to consume
  default-jre-headless maven kcat
  # fuzzing (tests/fuzz): libFuzzer and the sanitizer runtimes for clang
  libclang-rt-14-dev
  # tests/vm: Debian kernels under qemu (TCG) with the host's userland
  # (virtiofsd ships with qemu-system-common), exec monitors to compare
  # against (bench/compare_monitors.py)
  qemu-system-x86 cpio xz-utils zstd auditd bpftrace
)

PACKAGES=("${BUILD_PACKAGES[@]}")
if [[ "${1:-}" == "--test" ]]; then
  PACKAGES+=("${TEST_PACKAGES[@]}")
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing packages: ${missing[*]}; run as root" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
