#!/usr/bin/env bash
# Builds the Kubernetes binaries the tests run from the k8s.io/kubernetes Go
# module (fetched through the Go module proxy) into a cache directory outside
# the repository, once, in ONE `go build` so that they share compilation:
#
#   kube-apiserver           tests/k8s, tests/deploy, tests/node
#   kubelet, kube-controller-manager, kube-scheduler     tests/node
#
#   tests/k8s/build_kube.sh              # prints the binaries' directory
#   tests/k8s/build_kube.sh kubelet      # prints one binary's path
#
# Environment:
#   EXECMON_TOOLS_CACHE  cache root (default $HOME/.cache/execmon/tools)
#   KUBE_VERSION         k8s.io/kubernetes version (default v1.31.14)
#   GO                   go binary (default: go on PATH, else /usr/local/go/bin/go)
#
# Why not `go install k8s.io/kubernetes/cmd/kubelet@vX`: the kubernetes
# module's go.mod replaces every k8s.io/<staging> module with
# ./staging/src/k8s.io/<staging>, and `go install pkg@version` refuses modules
# with replace directives. The staging directories are nested modules, so they
# are not even inside the module zip. Instead: download the module source,
# copy it somewhere writable, point each staging replace at the published
# module of the same release line (k8s.io/api v0.31.14 for kubernetes
# v1.31.14, ...), and `go build` the commands in that directory.
#
# Some staging modules are not on the proxy at the exact release (at v0.31.14:
# kube-scheduler, kube-controller-manager, kube-proxy, endpointslice, cri-api):
# those are pinned to the newest v0.31.x the proxy has (a patch release of
# the same line). A replace pins every version of the module, so Go never
# drags the graph forward to a newer minor (v0.37 would).
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.31.14}
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"   # v1.31.14 -> v0.31.14
STAGING_LINE="${STAGING_VERSION%.*}"       # v0.31
CACHE=${EXECMON_TOOLS_CACHE:-$HOME/.cache/execmon/tools}
OUTDIR="$CACHE/kubernetes-$KUBE_VERSION"
CMDS=(kube-apiserver kubelet kube-controller-manager kube-scheduler)

done_already() {
  local c
  for c in "${CMDS[@]}"; do
    [[ -x "$OUTDIR/$c" ]] || return 1
  done
  "$OUTDIR/kubelet" --version >/dev/null 2>&1
}

print_result() {
  if [[ -n "${1:-}" ]]; then echo "$OUTDIR/$1"; else echo "$OUTDIR"; fi
}

if done_already; then
  print_result "${1:-}"
  exit 0
fi

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[[ -x "$GO" ]] || { echo "build_kube: no go toolchain ($GO)" >&2; exit 1; }

mkdir -p "$CACHE"
# Keep Go's module and build caches under the tools cache too; never use a
# toolchain other than the local one; never consult a workspace file.
export GOMODCACHE="$CACHE/go/mod"
export GOCACHE="$CACHE/go/build-cache"
export GOTOOLCHAIN=local
export GOWORK=off
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0

log() { echo "build_kube: $*" >&2; }

# One build at a time (tests/k8s and tests/node may both ask).
exec 9>"$CACHE/.build_kube.lock"
flock 9
if done_already; then
  print_result "${1:-}"
  exit 0
fi

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

# The newest release of MODULE on the STAGING_LINE the proxy has, preferring
# STAGING_VERSION itself; empty when there is none.
pick_version() {
  local mod=$1
  if GONOSUMDB=$mod "$GO" mod download "$mod@$STAGING_VERSION" >/dev/null 2>&1; then
    echo "$STAGING_VERSION"
    return
  fi
  { "$GO" list -m -versions "$mod" 2>/dev/null || true; } | tr ' ' '\n' |
    { grep -E "^${STAGING_LINE//./\\.}\.[0-9]+$" || true; } | sort -t. -k3,3n | tail -1
}

log "rewriting go.mod: staging replaces -> published $STAGING_LINE.x modules"
edits=()
mods=()
while read -r mod; do
  v=$(pick_version "$mod")
  if [[ -n "$v" ]]; then
    [[ "$v" == "$STAGING_VERSION" ]] || log "  $mod@$STAGING_VERSION not on the proxy: using $v"
    edits+=("-replace=$mod=$mod@$v")
    mods+=("$mod")
  else
    # No release of this line at all: the commands built here must not
    # import it; drop the requirement (the build fails loudly if they do).
    log "  $mod: no $STAGING_LINE.x release on the proxy: dropping it from go.mod"
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

log "building ${CMDS[*]} in one go build (a first build takes 10-20 minutes on 2 cores)"
LDPKG=k8s.io/component-base/version
CLPKG=k8s.io/client-go/pkg/version
MINOR=${KUBE_VERSION#v1.}; MINOR=${MINOR%%.*}
LDFLAGS="-s -w"
for p in "$LDPKG" "$CLPKG"; do
  LDFLAGS+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$MINOR"
  LDFLAGS+=" -X $p.gitTreeState=clean"
done
TMPOUT="$OUTDIR.tmp"
rm -rf "$TMPOUT"
mkdir -p "$TMPOUT"
pkgs=()
for c in "${CMDS[@]}"; do pkgs+=("./cmd/$c"); done
start=$(date +%s)
"$GO" build -p 2 -trimpath -ldflags "$LDFLAGS" -o "$TMPOUT/" "${pkgs[@]}"
log "built in $(( $(date +%s) - start )) s"
for c in "${CMDS[@]}"; do
  "$TMPOUT/$c" --version >&2
done
rm -rf "$OUTDIR"
mv "$TMPOUT" "$OUTDIR"
rm -rf "$WORK"
print_result "${1:-}"
