#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: unit tests (ctest)
# and end-to-end tests against the real kernel (pytest, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
scripts/build.sh
BUILD=$(realpath -m "${EXECMON_BUILD_DIR:-build}")
REPORTS="$BUILD/test-reports"
rm -rf "$REPORTS" && mkdir -p "$REPORTS"

status=0
echo "== unit tests"
ctest --test-dir "$BUILD" --output-on-failure --output-junit "$REPORTS/unit.xml" \
  || status=1
echo "== end-to-end tests (real kernel, real BPF)"
EXECMON_BUILD_DIR="$BUILD" python3 -m pytest -v tests/e2e \
  --junitxml="$REPORTS/e2e.xml" -p no:cacheprovider || status=1

echo "== Kubernetes: pod watcher and agent against a real kube-apiserver + etcd"
# One-time build of kube-apiserver, kubelet, kube-controller-manager and
# kube-scheduler from their Go module in one go build (~20 min), then cached.
tests/k8s/build_kube.sh >/dev/null || status=1
EXECMON_BUILD_DIR="$BUILD" python3 -m pytest -v tests/k8s \
  --junitxml="$REPORTS/k8s.xml" -p no:cacheprovider || status=1

echo "== Kubernetes node: the Helm chart on a real kubelet + containerd, events to Kafka (tests/node)"
# Images (debian bases by mmdebstrap, the agent from deploy/Containerfile,
# pause, workload) are built once with buildah and cached in
# ~/.cache/execmon/node (first run ~6 min); the suite itself takes ~1.5 min.
EXECMON_BUILD_DIR="$BUILD" python3 -m pytest -v tests/node \
  --junitxml="$REPORTS/node.xml" -p no:cacheprovider || status=1

echo "== kernel matrix: the agent on Debian kernels under qemu (tests/vm, cached in ~/.cache/execmon/vm)"
EXECMON_BUILD_DIR="$BUILD" python3 -m pytest -v tests/vm \
  --junitxml="$REPORTS/vm.xml" -p no:cacheprovider || status=1

echo "== deployment: Helm chart (helm, kubeconform, real apiserver dry-run), image recipe, systemd"
EXECMON_BUILD_DIR="$BUILD" tests/deploy/run.sh || status=1

echo "== fuzzing the policy parser (libFuzzer, ${FUZZ_SECONDS:=60} s)"
fuzz_failure=""
if ! FUZZ_BUILD="$BUILD/fuzz" FUZZ_SECONDS="$FUZZ_SECONDS" bash tests/fuzz/run_fuzz.sh; then
  fuzz_failure='<failure message="policy_fuzzer found a crash, leak or timeout (see the log above)"/>'
  status=1
fi
printf '<testsuite name="fuzz"><testcase classname="fuzz" name="policy_fuzzer_%ss">%s</testcase></testsuite>\n' \
  "$FUZZ_SECONDS" "$fuzz_failure" > "$REPORTS/fuzz.xml"

python3 scripts/test_summary.py "$REPORTS"/*.xml || status=1
exit $status
