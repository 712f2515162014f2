#!/usr/bin/env bash
# Builds the images the node tests run, with buildah, and caches each one as
# a docker-archive tarball (what `ctr images import` reads) outside the
# repository, keyed by a hash of its inputs:
#
#   debian:bookworm, debian:bookworm-slim
#            the base images deploy/Containerfile names, made here from the
#            Debian archive with mmdebstrap (minbase, as the official images
#            are; -slim drops documentation, man pages and locales the same
#            way), since no container registry is reachable. They are tagged
#            docker.io/library/debian:<tag>, the name a pull would give them,
#            so the Containerfile stays an ordinary recipe.
#   agent    deploy/Containerfile, built with `buildah bud` from the
#            repository (the image users build).
#   pause    the pod sandbox image: a static pause process (pause.c).
#   workload busybox-static and the test's victim binary (victim.c), for the
#            workload pods.
#
# Prints KEY=VALUE lines (image names, tarballs, the victim binary). Cache:
# ${EXECMON_NODE_CACHE:-$HOME/.cache/execmon/node}. buildah keeps its own
# storage (vfs) there too, emptied after each agent build: vfs copies every
# layer whole, so intermediate layers are not committed (--layers=false:
# 1.5 GB at the peak instead of ~12 GB, and faster); the tarballs are the
# cache.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
CACHE=${EXECMON_NODE_CACHE:-$HOME/.cache/execmon/node}
IMAGES=$CACHE/images
MIRROR=${EXECMON_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${EXECMON_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE=bookworm
mkdir -p "$IMAGES"

log() { echo "images.sh: $*" >&2; }

# buildah with its own storage under the cache; chroot isolation (no
# nested user namespaces needed), host network for apt.
BUILDAH=(buildah --root "$CACHE/containers/storage" --runroot /run/execmon-node-buildah
         --storage-driver vfs)
bah() { "${BUILDAH[@]}" "$@"; }

exec 9>"$CACHE/.images.lock"
flock 9

have_image() { bah inspect --type image "$1" >/dev/null 2>&1; }

# Saves IMAGE as a docker-archive tarball TAR (atomically).
save() {  # IMAGE TAR
  rm -f "$2.tmp"
  bah push --quiet "$1" "docker-archive:$2.tmp:$1" >/dev/null
  mv "$2.tmp" "$2"
}

hash_of() { sha256sum | cut -c1-16; }

# --- base images ------------------------------------------------------------
SLIM_EXCLUDES=(
  'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright'
  'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/groff/*'
  'path-exclude=/usr/share/info/*' 'path-exclude=/usr/share/lintian/*'
  'path-exclude=/usr/share/linda/*' 'path-exclude=/usr/share/locale/*'
)
base_key=$({ echo "$SUITE $MIRROR $SECURITY_MIRROR v1"; printf '%s\n' "${SLIM_EXCLUDES[@]}"; } | hash_of)

base_image() {  # TAG (bookworm | bookworm-slim)
  local tag=$1 name="docker.io/library/debian:$1"
  local tar="$IMAGES/debian-$tag-$base_key.rootfs.tar"
  if have_image "$name" && [[ $(bah inspect --type image --format '{{index .ImageAnnotations "execmon.base-key"}}' "$name" 2>/dev/null) == "$base_key" ]]; then
    return
  fi
  if [[ ! -f $tar ]]; then
    local opts=(--variant=minbase --format=tar --mode=root)
    if [[ $tag == *-slim ]]; then
      local e
      for e in "${SLIM_EXCLUDES[@]}"; do opts+=("--dpkgopt=$e"); done
    fi
    log "mmdebstrap $tag from $MIRROR"
    local start=$SECONDS
    nice -n 19 mmdebstrap "${opts[@]}" "$SUITE" "$tar.tmp" \
      "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
      "deb $SECURITY_MIRROR $SUITE-security main" >&2
    mv "$tar.tmp" "$tar"
    log "debian:$tag rootfs in $((SECONDS - start)) s"
  fi
  local c
  c=$(bah from --quiet scratch)
  bah add --quiet "$c" "$tar" / >/dev/null
  bah config --cmd '["bash"]' --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --annotation "execmon.base-key=$base_key" "$c"
  bah commit --quiet --rm "$c" "$name" >/dev/null
  log "imported $name"
}

# --- agent image --------------------------------------------------------------
# Everything the Containerfile copies, and the Containerfile itself.
agent_inputs=(CMakeLists.txt cmake bpf agent bench deploy docs/events.schema.json policies)
agent_key=$( (cd "$repo" && find "${agent_inputs[@]}" -type f -print0 | sort -z |
              xargs -0 sha256sum; echo "$base_key") | hash_of)
AGENT_IMAGE=localhost/execmon:node-$agent_key
AGENT_TAR=$IMAGES/agent-$agent_key.tar
if [[ ! -f $AGENT_TAR ]]; then
  base_image bookworm
  base_image bookworm-slim
  log "building the agent image from deploy/Containerfile (~3-5 min)"
  start=$SECONDS
  nice -n 19 "${BUILDAH[@]}" bud --pull=never --isolation=chroot --layers=false \
    -f "$repo/deploy/Containerfile" -t "$AGENT_IMAGE" "$repo" >&2
  log "agent image built in $((SECONDS - start)) s"
  save "$AGENT_IMAGE" "$AGENT_TAR"
  # Only the newest agent image is kept (each is ~270 MB). Empty buildah's
  # storage: a rebuild re-imports the bases from their rootfs tarballs in
  # seconds (and reinstalls the build packages).
  find "$IMAGES" -name 'agent-*.tar' ! -name "agent-$agent_key.tar" -delete
  bah rmi --all --force >/dev/null
fi

# --- pause and workload images ---------------------------------------------
static_bin() {  # SOURCE OUT
  nice -n 19 gcc -static -O2 -Wl,--build-id -o "$2.tmp" "$1"
  mv "$2.tmp" "$2"
}

pause_key=$( (cat "$here/pause.c"; gcc --version | head -1) | hash_of)
PAUSE_IMAGE=localhost/execmon-test/pause:$pause_key
PAUSE_TAR=$IMAGES/pause-$pause_key.tar
if [[ ! -f $PAUSE_TAR ]]; then
  d=$(mktemp -d)
  static_bin "$here/pause.c" "$d/pause"
  c=$(bah from --quiet scratch)
  bah copy --quiet "$c" "$d/pause" /pause >/dev/null
  bah config --entrypoint '["/pause"]' "$c"
  bah commit --quiet --rm "$c" "$PAUSE_IMAGE" >/dev/null
  save "$PAUSE_IMAGE" "$PAUSE_TAR"
  rm -rf "$d"
fi

workload_key=$( (cat "$here/victim.c"; gcc --version | head -1; sha256sum /bin/busybox) | hash_of)
WORKLOAD_IMAGE=localhost/execmon-test/workload:$workload_key
WORKLOAD_TAR=$IMAGES/workload-$workload_key.tar
VICTIM=$IMAGES/victim-$workload_key
if [[ ! -f $WORKLOAD_TAR || ! -x $VICTIM ]]; then
  static_bin "$here/victim.c" "$VICTIM"
  d=$(mktemp -d)
  mkdir -p "$d/bin" "$d/usr/local/bin" "$d/tmp"
  cp /bin/busybox "$d/bin/busybox"
  for a in sh sleep cat true ls echo; do ln -s busybox "$d/bin/$a"; done
  cp "$VICTIM" "$d/usr/local/bin/victim"
  c=$(bah from --quiet scratch)
  bah copy --quiet "$c" "$d" / >/dev/null
  bah config --cmd '["/bin/sleep", "3600"]' --env PATH=/usr/local/bin:/bin "$c"
  bah commit --quiet --rm "$c" "$WORKLOAD_IMAGE" >/dev/null
  save "$WORKLOAD_IMAGE" "$WORKLOAD_TAR"
  rm -rf "$d"
fi

echo "EXECMON_NODE_AGENT_IMAGE=$AGENT_IMAGE"
echo "EXECMON_NODE_AGENT_TAR=$AGENT_TAR"
echo "EXECMON_NODE_PAUSE_IMAGE=$PAUSE_IMAGE"
echo "EXECMON_NODE_PAUSE_TAR=$PAUSE_TAR"
echo "EXECMON_NODE_WORKLOAD_IMAGE=$WORKLOAD_IMAGE"
echo "EXECMON_NODE_WORKLOAD_TAR=$WORKLOAD_TAR"
echo "EXECMON_NODE_VICTIM=$VICTIM"
