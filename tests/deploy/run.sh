#!/usr/bin/env bash
# Deployment tests: Helm chart, container recipe, systemd unit.
# Builds (once) and caches helm, kubeconform and the Kubernetes schemas
# outside the repository (tests/deploy/tools.sh), then runs pytest.
# Needs build/bin/execmon (EXECMON_BUILD_DIR) and python3 with pytest and
# PyYAML. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=$(realpath -m "${EXECMON_BUILD_DIR:-build}")
REPORTS=${EXECMON_TEST_REPORTS:-$BUILD/test-reports}
mkdir -p "$REPORTS"

if ! python3 -c 'import yaml' 2>/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "run.sh: installing python3-yaml" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-yaml >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-yaml >/dev/null; }
  fi
fi

echo "== deployment tools (helm, kubeconform, schemas; cached)"
while IFS='=' read -r key value; do
  [[ $key == EXECMON_* ]] && export "$key=$value"
done < <(tests/deploy/tools.sh)

echo "== deployment tests (chart, Containerfile, systemd unit)"
EXECMON_BUILD_DIR="$BUILD" python3 -m pytest -v tests/deploy \
  --junitxml="$REPORTS/deploy.xml" -p no:cacheprovider "$@"
