#!/usr/bin/env bash
# Builds kube-apiserver from the k8s.io/kubernetes Go module (fetched through
# the Go module proxy) into a cache directory outside the repository, once.
#
#   tests/k8s/build_kube_apiserver.sh        # prints the binary's path
#
# Environment:
#   EXECMON_TOOLS_CACHE  cache root (default $HOME/.cache/execmon/tools)
#   KUBE_VERSION         k8s.io/kubernetes version (default v1.31.14)
#   GO                   go binary (default: go on PATH, else /usr/local/go/bin/go)
#
# Why not `go install k8s.io/kubernetes/cmd/kube-apiserver@vX`: the kubernetes
# module's go.mod replaces every k8s.io/<staging> module with
# ./staging/src/k8s.io/<staging>, and `go install pkg@version` refuses modules
# with replace directives. The staging directories are nested modules, so they
# are not even inside the module zip. Instead: download the module source,
# copy it somewhere writable, point each staging replace at the published
# module of the same release line (k8s.io/api v0.31.14 for kubernetes
# v1.31.14, ...), and `go build` the command in that directory.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.31.14}
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"   # v1.31.14 -> v0.31.14
CACHE=${EXECMON_TOOLS_CACHE:-$HOME/.cache/execmon/tools}
OUT="$CACHE/kube-apiserver-$KUBE_VERSION"

if [[ -x "$OUT" ]] && "$OUT" --version >/dev/null 2>&1; then
  echo "$OUT"
  exit 0
fi

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[[ -x "$GO" ]] || { echo "build_kube_apiserver: no go toolchain ($GO)" >&2; exit 1; }

mkdir -p "$CACHE"
# Keep Go's module and build caches under the tools cache too; never use a
# toolchain other than the local one; never consult a workspace file.
export GOMODCACHE="$CACHE/go/mod"
export GOCACHE="$CACHE/go/build-cache"
export GOTOOLCHAIN=local
export GOWORK=off
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0

log() { echo "build_kube_apiserver: $*" >&2; }

cd "$CACHE"  # not inside any Go module
log "downloading k8s.io/kubernetes@$KUBE_VERSION (module proxy)"
SRC=$("$GO" mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
      python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir","")); sys.exit(1 if d.get("Error") else 0)')
[[ -d "$SRC" ]] || { log "module download gave no source dir"; exit 1; }

WORK="$CACHE/build/kubernetes-$KUBE_VERSION"
rm -rf "$WORK"
mkdir -p "$(dirname "$WORK")"
cp -r "$SRC" "$WORK"
chmod -R u+w "$WORK"
cd "$WORK"
rm -f go.work go.work.sum
rm -rf vendor

log "rewriting go.mod: staging replaces -> published $STAGING_VERSION modules"
edits=()
mods=()
while read -r mod; do
  # A staging module whose release is not on the proxy (some are not: e.g.
  # cri-client) cannot be in the build list at all; kube-apiserver does not
  # import those, so drop the requirement instead of replacing it.
  if GONOSUMDB=$mod "$GO" mod download "$mod@$STAGING_VERSION" >/dev/null 2>&1; then
    edits+=("-replace=$mod=$mod@$STAGING_VERSION")
    mods+=("$mod")
  else
    log "  $mod@$STAGING_VERSION not on the proxy: dropping it from go.mod"
    edits+=("-dropreplace=$mod" "-droprequire=$mod")
  fi
done < <("$GO" mod edit -json | python3 -c '
import json, sys
d = json.load(sys.stdin)
for r in d.get("Replace") or []:
    if r["New"]["Path"].startswith("./staging/"):
        print(r["Old"]["Path"])
')
((${#mods[@]})) || { log "no staging replaces found in go.mod"; exit 1; }
"$GO" mod edit "${edits[@]}"
# The staging modules are new to this go.sum; the checksum database may not
# know every one of them (a mirror of the proxy may serve the module but not
# its sumdb record). They come from the same proxy as the kubernetes module
# itself; every other dependency stays verified against kubernetes' go.sum.
export GONOSUMDB=$(IFS=,; echo "${mods[*]}")

log "building cmd/kube-apiserver (takes several minutes)"
LDPKG=k8s.io/component-base/version
CLPKG=k8s.io/client-go/pkg/version
MINOR=${KUBE_VERSION#v1.}; MINOR=${MINOR%%.*}
LDFLAGS="-s -w"
for p in "$LDPKG" "$CLPKG"; do
  LDFLAGS+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$MINOR"
  LDFLAGS+=" -X $p.gitTreeState=clean"
done
"$GO" build -p 2 -trimpath -ldflags "$LDFLAGS" -o "$OUT.tmp" ./cmd/kube-apiserver
mv "$OUT.tmp" "$OUT"
"$OUT" --version >&2
rm -rf "$WORK"
echo "$OUT"
