#!/bin/bash
# run-in-vm.sh — run one command inside a qemu (TCG) guest booted from a Debian kernel
# package, with the host's root filesystem shared read-only (virtiofs) under a tmpfs
# overlay, and return the command's output and exit code.
#
#   tests/vm/run_in_vm.sh [--mem 1G] [--timeout 600] [--append "ima_hash=sha256"] \
#                         [--rw DIR]... KERNEL_DEB_OR_DIR -- COMMAND [ARGS...]
#
# KERNEL_DEB_OR_DIR: a linux-image-*.deb (unpacked once into $VM_CACHE/kernels) or a
# directory holding boot/vmlinuz-<ver> and [usr/]lib/modules/<ver> (what `dpkg-deb -x`
# gives; for 6.19+ unpack linux-binary-* and linux-modules-* into one directory).
#
# In the guest: the host's root filesystem, served by virtiofsd through a read-only bind
# mount in the daemon's private mount namespace, is the lower layer of an overlay whose
# upper layer is tmpfs: the guest sees the host's files (same paths),
# may write anywhere, and nothing goes back to the host except under --rw DIR (shared
# read-write at the same path). Only the root filesystem is shared: a directory on another
# host mount must be passed with --rw. Without overlayfs (module missing), / is read-only
# and /tmp is a tmpfs with the host's /tmp directories bind-mounted into it.
# proc, sys, devtmpfs, devpts, bpffs (/sys/fs/bpf), tracefs, debugfs, securityfs, cgroup2
# (/sys/fs/cgroup), tmpfs /run and loopback are set up. The command runs as root in the
# caller's cwd, stdin /dev/null; stdout+stderr (merged) stream back live through a second
# serial port; the exit status comes back as a marker line on the console (ttyS0).
#
# Exit code: the command's; 124 on timeout (run dir kept); 125 if the guest ended without
# an exit code (panic, boot failure: console tail printed, run dir kept); 2 usage/setup.
#
# Environment: VM_CACHE (default ~/.cache/execmon/vm), VM_SMP (default 1), VM_CPU (default
# max,-cx16: with cx16, qemu 7.2 TCG randomly double-faults 6.12 guests in SLUB's
# cmpxchg16b fast path), VM_VERBOSE=1 (guest console to stderr), VM_KEEP=1 (keep the run
# directory), QEMU, VIRTIOFSD (default /usr/lib/qemu/virtiofsd, qemu 7.2's C daemon).
#
# Host requirements: root (virtiofsd, the bind mount), qemu-system-x86_64, virtiofsd,
# static busybox, cpio, gzip, xz (.ko.xz modules), dpkg-deb. KVM is not used (TCG,
# -cpu max): nested KVM hangs on the machines this was written for.
set -euo pipefail

MEM=1G
TIMEOUT=600
APPEND=""
RW_DIRS=()
VM_CACHE=${VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/execmon/vm}
VM_SMP=${VM_SMP:-1}
VM_CPU=${VM_CPU:-max,-cx16}
QEMU=${QEMU:-qemu-system-x86_64}
VIRTIOFSD=${VIRTIOFSD:-/usr/lib/qemu/virtiofsd}

usage() { awk 'NR>1 && !/^#/{exit} NR>1' "$0" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --mem) MEM=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --append) APPEND="$APPEND $2"; shift 2 ;;
    --rw) RW_DIRS+=("$(realpath "$2")"); shift 2 ;;
    -h|--help) usage ;;
    --) usage ;;
    -*) echo "run-in-vm: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[[ $# -ge 3 && "$2" == "--" ]] || usage
KSRC=$1; shift 2
CMD=("$@")

log() { echo "run-in-vm: $*" >&2; }
mkdir -p "$VM_CACHE"

# ---- 1. kernel: unpack a .deb once --------------------------------------------------------
if [[ -f "$KSRC" && "$KSRC" == *.deb ]]; then
  KDIR="$VM_CACHE/kernels/$(basename "$KSRC" .deb)"
  if [[ ! -d "$KDIR/boot" ]]; then
    log "unpacking $KSRC"
    mkdir -p "$KDIR.tmp" && dpkg-deb -x "$KSRC" "$KDIR.tmp" && mv "$KDIR.tmp" "$KDIR"
  fi
elif [[ -d "$KSRC" ]]; then
  KDIR=$(realpath "$KSRC")
else
  log "not a .deb or directory: $KSRC"; exit 2
fi
VMLINUZ=$( (ls "$KDIR"/boot/vmlinuz-* 2>/dev/null || true) | head -1)
if [[ -n "$VMLINUZ" ]]; then
  KVER=${VMLINUZ##*/vmlinuz-}
else
  # Debian's 7.x packages put the image beside the modules.
  VMLINUZ=$( (ls "$KDIR"/usr/lib/modules/*/vmlinuz "$KDIR"/lib/modules/*/vmlinuz 2>/dev/null || true) | head -1)
  [[ -n "$VMLINUZ" ]] || { log "no boot/vmlinuz-* or lib/modules/*/vmlinuz in $KDIR"; exit 2; }
  KVER=$(basename "$(dirname "$VMLINUZ")")
fi
MODDIR="$KDIR/lib/modules/$KVER"
[[ -d "$MODDIR" ]] || MODDIR="$KDIR/usr/lib/modules/$KVER"   # trixie+ (merged /usr)
[[ -d "$MODDIR/kernel" ]] || log "warning: no lib/modules/$KVER in $KDIR: only built-in drivers (6.19+ ships modules in a separate linux-modules-* package)"

# ---- 2. base initramfs (busybox + the modules for virtiofs and overlayfs), cached ---------
BASE_IRD="$VM_CACHE/initrd-base-$KVER.cpio.gz"
if [[ ! -s "$BASE_IRD" || "$0" -nt "$BASE_IRD" ]]; then
  log "building initramfs for $KVER"
  T=$(mktemp -d "$VM_CACHE/ird.XXXXXX")
  trap 'rm -rf "$T"' EXIT
  mkdir -p "$T"/{bin,dev,proc,sys,lib/mod,lower,upper,newroot,rw}
  cp "$(command -v busybox)" "$T/bin/busybox"
  # resolve module dependencies with modinfo; skip built-ins
  declare -A SEEN=()
  ORDER=()
  find_ko() { [[ -d "$MODDIR/kernel" ]] || return 0; find "$MODDIR/kernel" \( -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" -o -name "$1.ko.gz" \) -print -quit; }
  add_mod() {
    local name=${1//-/_} f deps d
    [[ -n "${SEEN[$name]:-}" ]] && return 0
    SEEN[$name]=1
    f=$(find_ko "$name")
    if [[ -z "$f" ]]; then
      f=$(find_ko "${1//_/-}")
    fi
    if [[ -z "$f" ]]; then
      if grep -qE "/(${name}|${name//_/-})\.ko$" "$MODDIR/modules.builtin" 2>/dev/null; then return 0; fi
      log "module $name: neither built in nor found (ok if CONFIG_*=y under another name)"; return 0
    fi
    case "$f" in
      *.xz) xz -dc "$f" > "$T/lib/mod/$name.ko" ;;
      *.zst) zstd -qdc "$f" > "$T/lib/mod/$name.ko" ;;
      *.gz) gzip -dc "$f" > "$T/lib/mod/$name.ko" ;;
      *) cp "$f" "$T/lib/mod/$name.ko" ;;
    esac
    # the .modinfo section holds "depends=a,b" (no kmod needed on the host)
    deps=$(tr '\0' '\n' < "$T/lib/mod/$name.ko" | sed -n 's/^depends=//p' | head -1 | tr ',' ' ')
    for d in $deps; do add_mod "$d"; done
    ORDER+=("$name")
  }
  for m in virtio_pci virtiofs overlay; do add_mod "$m"; done
  printf '%s\n' "${ORDER[@]}" > "$T/modules.list"
  cat > "$T/init" <<'EOF'
#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
for m in $($B cat /modules.list); do $B insmod /lib/mod/$m.ko || echo "init: insmod $m failed"; done
. /run.env      # VM_RW_DIRS, VM_CWD (from the per-run archive)
die() { echo "init: $*"; echo "@@VM_RC=125@@"; $B poweroff -f; }
$B mount -t virtiofs -o ro hostroot /lower || die "mount virtiofs failed"
$B mount -t tmpfs -o mode=755 tmpfs /upper
$B mkdir -p /upper/u /upper/w
R=/newroot
if ! $B mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w $R; then
  # no overlayfs: read-only root, writable tmpfs /tmp in which the host's /tmp
  # directories are bind-mounted (read-only; plain files are not), tmpfs /var/tmp, /root
  echo "init: overlayfs unavailable: read-only root, tmpfs /tmp with host /tmp dirs bound"
  $B mount --bind /lower $R || die "bind root failed"
  $B mount -t tmpfs tmpfs $R/tmp
  for e in /lower/tmp/* /lower/tmp/.[!.]*; do
    [ -d "$e" ] || continue
    n=${e##*/}
    $B mkdir -p "$R/tmp/$n"
    $B mount --bind "$e" "$R/tmp/$n"
  done
  $B mount -t tmpfs tmpfs $R/var/tmp
  $B mount -t tmpfs tmpfs $R/root
fi
$B mount -t proc proc $R/proc
$B mount -t sysfs sys $R/sys
$B mount -t devtmpfs dev $R/dev
$B mkdir -p $R/dev/pts $R/dev/shm
$B mount -t devpts devpts $R/dev/pts
$B mount -t tmpfs tmpfs $R/dev/shm
$B mount -t tmpfs tmpfs $R/run
$B cp /run-cmd.sh $R/run/vm-cmd.sh
$B mount -t securityfs securityfs $R/sys/kernel/security
$B mount -t tracefs tracefs $R/sys/kernel/tracing
$B mount -t debugfs debugfs $R/sys/kernel/debug
$B mount -t bpf bpf $R/sys/fs/bpf
$B mount -t cgroup2 cgroup2 $R/sys/fs/cgroup
i=0
for d in $VM_RW_DIRS; do
  $B mkdir -p "$R$d"
  $B mount -t virtiofs "rw$i" "$R$d" || die "mount rw$i at $d failed"
  i=$((i+1))
done
$B stty -F /dev/ttyS1 raw -echo 2>/dev/null
$B hostname vm
$B ip link set lo up 2>/dev/null
echo "@@VM_START@@"
$B chroot $R /bin/sh -c 'cd "$1" 2>/dev/null || cd /; shift; exec /run/vm-cmd.sh' sh "$VM_CWD" \
  </dev/null >/dev/ttyS1 2>&1
rc=$?
$B sync
echo "@@VM_RC=$rc@@"
$B poweroff -f
EOF
  chmod +x "$T/init"
  (cd "$T" && find . | cpio -o -H newc --quiet | gzip -1) > "$BASE_IRD.tmp"
  mv "$BASE_IRD.tmp" "$BASE_IRD"
  rm -rf "$T"
fi

# ---- 3. per-run archive: the command and its environment ----------------------------------
RUN=$(mktemp -d "$VM_CACHE/run.XXXXXX")
cleanup() {
  for p in ${VFS_PIDS:-}; do kill "$p" 2>/dev/null || true; done
  [[ -n "${TAIL_PID:-}" ]] && kill "$TAIL_PID" 2>/dev/null || true
  if [[ "${VM_KEEP:-0}" != 1 ]]; then rm -rf "$RUN"; fi
}
trap cleanup EXIT
mkdir -p "$RUN/ar"
{
  echo "VM_RW_DIRS='${RW_DIRS[*]:-}'"
  printf 'VM_CWD=%q\n' "$PWD"
} > "$RUN/ar/run.env"
# the command script: /run-cmd.sh in the initramfs, copied by init to /run/vm-cmd.sh
{
  echo '#!/bin/sh'
  echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb LANG=C.UTF-8'
  printf 'exec'; printf ' %q' "${CMD[@]}"; echo
} > "$RUN/run-cmd.sh"
chmod +x "$RUN/run-cmd.sh"
cp "$RUN/run-cmd.sh" "$RUN/ar/run-cmd.sh"
(cd "$RUN/ar" && find . | cpio -o -H newc --quiet | gzip -1) > "$RUN/run.cpio.gz"
cat "$BASE_IRD" "$RUN/run.cpio.gz" > "$RUN/initrd.gz"

# ---- 4. virtiofsd for / (read-only from the guest's side) and each --rw dir ---------------
VFS_PIDS=""
start_vfs() { # socket source [ro]
  if [[ "${3:-}" == ro ]]; then
    # Share through a read-only bind mount made in a private mount namespace that only
    # this virtiofsd sees: even a guest that remounts the share read-write cannot write to
    # the host (qemu 7.2's C virtiofsd has no read-only mode), and the host keeps no extra
    # mount. Non-recursive: only the root filesystem is shared, not other host mounts.
    mkdir -p "$RUN/hostroot"
    unshare -m --propagation private sh -c 'mount --bind -o ro "$1" "$2" && shift 2 && exec "$@"' sh \
      "$2" "$RUN/hostroot" "$VIRTIOFSD" --socket-path="$1" -o source="$RUN/hostroot" -o cache=always \
      -o sandbox=chroot -o no_posix_lock -o log_level=err >"$1.log" 2>&1 &
  else
    "$VIRTIOFSD" --socket-path="$1" -o source="$2" -o cache=always -o sandbox=chroot \
      -o no_posix_lock -o log_level=err >"$1.log" 2>&1 &
  fi
  VFS_PIDS="$VFS_PIDS $!"
}
start_vfs "$RUN/root.sock" / ro
i=0
for d in "${RW_DIRS[@]}"; do start_vfs "$RUN/rw$i.sock" "$d"; i=$((i+1)); done
for n in $(seq 50); do
  ok=1; [[ -S "$RUN/root.sock" ]] || ok=0
  i=0; for d in "${RW_DIRS[@]}"; do [[ -S "$RUN/rw$i.sock" ]] || ok=0; i=$((i+1)); done
  [[ $ok == 1 ]] && break; sleep 0.1
done

# ---- 5. boot ---------------------------------------------------------------------------------
QARGS=(-machine pc,accel=tcg -cpu "$VM_CPU" -smp "$VM_SMP" -m "$MEM"
  -object memory-backend-memfd,id=mem,size="$MEM",share=on -numa node,memdev=mem
  -nodefaults -display none -vga none -no-reboot
  -kernel "$VMLINUZ" -initrd "$RUN/initrd.gz"
  -append "console=ttyS0 panic=-1 rdinit=/init $APPEND"
  -serial file:"$RUN/console.log" -serial file:"$RUN/out.log"
  -chardev socket,id=fs0,path="$RUN/root.sock"
  -device vhost-user-fs-pci,queue-size=1024,chardev=fs0,tag=hostroot)
i=0
for d in "${RW_DIRS[@]}"; do
  QARGS+=(-chardev socket,id=fs$((i+1)),path="$RUN/rw$i.sock"
          -device vhost-user-fs-pci,queue-size=1024,chardev=fs$((i+1)),tag=rw$i)
  i=$((i+1))
done
: > "$RUN/out.log"; : > "$RUN/console.log"
T0=$(date +%s.%N)
timeout -k 5 "$TIMEOUT" "$QEMU" "${QARGS[@]}" </dev/null >"$RUN/qemu.log" 2>&1 &
QPID=$!
tail -n +1 -f --pid=$QPID "$RUN/out.log" &
TAIL_PID=$!
if [[ "${VM_VERBOSE:-0}" == 1 ]]; then tail -n +1 -f --pid=$QPID "$RUN/console.log" >&2 & fi
set +e
wait $QPID; QRC=$?
wait $TAIL_PID 2>/dev/null
TAIL_PID=""
set -e
T1=$(date +%s.%N)
RC=$( (grep -ao '@@VM_RC=[0-9]*@@' "$RUN/console.log" || true) | tail -1 | tr -dc 0-9)
if [[ $QRC == 124 || $QRC == 137 ]]; then
  log "timeout after ${TIMEOUT}s (kernel $KVER); console tail:"; tail -n 20 "$RUN/console.log" >&2
  VM_KEEP=1; log "run dir kept: $RUN"; exit 124
fi
if [[ -z "$RC" ]]; then
  log "guest ended without an exit code (qemu rc $QRC); console tail:"; tail -n 30 "$RUN/console.log" >&2
  cat "$RUN/qemu.log" >&2; VM_KEEP=1; log "run dir kept: $RUN"; exit 125
fi
log "kernel $KVER: rc=$RC, wall $(awk "BEGIN{printf \"%.1f\", $T1 - $T0}") s"
exit "$RC"
