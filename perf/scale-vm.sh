#!/usr/bin/env bash
# Scale in a VM: the measurement of perf/scale.sh (many pairs held idle on one msrpd, the
# relay's RSS sampled, then open-loop traffic through them), run inside a throwaway
# guest where we are root with every capability, so the open-files limit can be raised
# past what this host allows. Writes perf/results/<date>-scale-vm.md.
#
# The guest is Debian's kernel (downloaded, not installed) and an initramfs with busybox,
# msrpd, msrpd-bench and their shared libraries; its /init runs the relay and the bench
# with scale.sh's arguments, prints the bench's JSON between marker lines on the serial
# console and powers off. KVM when it can run the guest, else TCG with a loud warning.
#
# Usage: perf/scale-vm.sh                 (PAIRS=50000: 100,000 connections)
#        PAIRS=2000 perf/scale-vm.sh
# Knobs: PAIRS; RATE and DURATION (as scale.sh, but under TCG, which relays only about
# 1,000 msg/s and needs seconds to start 50,000 senders, 500 msg/s for 60 s); SETUP_TIMEOUT (as scale.sh, but under TCG
# the set-up gets PAIRS/20 s, at least 120); VCPUS (2: relay workers and bench threads, as
# scale.sh on this 2-core host); MEM (guest RAM, 8G); TIMEOUT (seconds for the VM run,
# SETUP_TIMEOUT + 600); THP (guest transparent hugepages, default the host's setting);
# KERNEL (a bzImage instead of Debian's); OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${PAIRS:-50000}
VCPUS=${VCPUS:-2}
MEM=${MEM:-8G}
OUT=${OUT:-perf/results/$(date +%F)-scale-vm.md}
NOFILE=400000
PORT=2855
target=${CARGO_TARGET_DIR:-target}
cache=$target/scale-vm
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

say() { printf 'scale-vm: %s\n' "$*" >&2; }

# Host tools (Debian packages).
sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Guest kernel: Debian's current one (the package linux-image-amd64 points at); only
# vmlinuz is taken out of the package, nothing is installed on the host.
if [ -n "${KERNEL:-}" ]; then
  kernel=$KERNEL
else
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$pkg" ] || { say "cannot find the kernel package linux-image-amd64 depends on"; exit 1; }
  kernel=$cache/kernel/boot/vmlinuz-${pkg#linux-image-}
  if [ ! -f "$kernel" ]; then
    say "downloading $pkg"
    (cd "$cache" && apt-get download -q "$pkg" 2>&1 | grep -v 'unsandboxed as root' >&2 || true)
    deb=$(ls -t "$cache"/"$pkg"_*.deb | head -1)
    mkdir -p "$cache/kernel"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$cache/kernel" ./boot/
    rm -f "$deb"
  fi
fi
[ -f "$kernel" ] || { say "no kernel at $kernel"; exit 1; }

cargo build --release --quiet --bin msrpd --bin msrpd-bench

# An initramfs with busybox, the two binaries and the libraries they load; /init is added
# per archive.
base=$cache/root
rm -rf "$base"
mkdir -p "$base"/{bin,proc,sys,dev,tmp}
cp /bin/busybox "$base/bin/busybox"
cp "$target/release/msrpd" "$target/release/msrpd-bench" "$base/bin/"
for lib in $(for b in msrpd msrpd-bench; do ldd "$target/release/$b"; done | grep -o '/[^ ]*' | sort -u); do
  cp --parents -L "$lib" "$base/"
done
archive() { # archive <init script> <output>
  cp "$1" "$base/init"
  chmod +x "$base/init"
  (cd "$base" && find . | cpio -o -H newc --quiet | gzip -1) >"$2"
}

# KVM if it can run this guest, else TCG (CPU per message, msg/s and latency are then the
# emulator's; memory is the guest kernel's accounting either way).
cat >"$cache/probe-init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mount -t devtmpfs dev /dev
exec >/dev/console 2>&1
/bin/busybox echo SCALE-PROBE-OK
/bin/busybox poweroff -f
EOF
archive "$cache/probe-init" "$cache/probe.gz"
kvm_unusable() {
  if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
    echo "no read/write access to /dev/kvm"; return 0
  fi
  if [ -d /sys/module/kvm_pvm ]; then
    # PVM: software virtualization (no VMX/SVM) for guests built with CONFIG_PVM_GUEST.
    # Debian's kernel runs there under instruction emulation: it had not left its
    # decompressor after 4 minutes, and booted uncompressed it stopped on a
    # lock cmpxchg16b the emulator does not know.
    echo "this host's /dev/kvm is PVM (module kvm_pvm), which runs only PVM-enabled guest kernels"; return 0
  fi
  if ! timeout --kill-after=5 60 qemu-system-x86_64 -enable-kvm -cpu host -smp 1 -m 512M -nographic \
    -no-reboot -kernel "$kernel" -initrd "$cache/probe.gz" -append 'console=ttyS0 quiet panic=-1' \
    </dev/null 2>&1 | grep -q SCALE-PROBE-OK; then
    echo "a probe boot under KVM did not reach its /init within 60 s"; return 0
  fi
  return 1
}
if why=$(kvm_unusable); then
  say "##########################################################################"
  say "WARNING: KVM cannot run this guest: $why."
  say "WARNING: running it under TCG (software emulation) instead: memory numbers"
  say "WARNING: stand; CPU per message, msg/s and latency are the emulator's."
  say "##########################################################################"
  accel=(-accel tcg,thread=multi -cpu max)
  accel_name=TCG
  accel_note="TCG, software emulation (KVM not usable: $why)"
  RATE=${RATE:-500}
  DURATION=${DURATION:-60}
  SETUP_TIMEOUT=${SETUP_TIMEOUT:-$(( PAIRS / 20 > 120 ? PAIRS / 20 : 120 ))}
else
  accel=(-enable-kvm -cpu host)
  accel_name=KVM
  accel_note=KVM
fi
# The same relay and bench arguments as scale.sh.
RATE=${RATE:-5000}
DURATION=${DURATION:-5}
WORKERS=$VCPUS
. perf/scale_args.sh
TIMEOUT=${TIMEOUT:-$(( SETUP_TIMEOUT + 600 ))}

thp=${THP:-$(sed -n 's/.*\[\(.*\)\].*/\1/p' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || true)}
thp=${thp:-madvise}

cat >"$cache/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# No /dev/console in the archive (making one needs mknod): take it from devtmpfs.
exec </dev/console >/dev/console 2>&1
ip link set lo up
echo 1048576 >/proc/sys/fs/nr_open
echo 2097152 >/proc/sys/fs/file-max
echo 65535 >/proc/sys/net/core/somaxconn
echo 65535 >/proc/sys/net/ipv4/tcp_max_syn_backlog
echo $thp >/sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null
ulimit -n $NOFILE
echo
echo "=====SCALE-GUEST-BEGIN====="
echo "kernel \$(uname -r)"
echo "vcpus \$(nproc)"
echo "mem_kib \$(awk '/MemTotal/ {print \$2}' /proc/meminfo)"
echo "nofile \$(ulimit -n)"
echo "thp \$(cat /sys/kernel/mm/transparent_hugepage/enabled)"
echo "port_range \$(cat /proc/sys/net/ipv4/ip_local_port_range)"
# Which io_uring set-up the kernel gives msrpd (logged at info on start): a throwaway
# relay on another port, so the measured one runs with scale.sh's flags.
msrpd --listen 127.0.0.1:$((PORT + 1)) --cores $VCPUS --log-level info --admin off >/tmp/probe.log 2>&1 &
probe=\$!
sleep 1
kill \$probe; wait \$probe 2>/dev/null
echo "uring \$(grep -o 'io_uring ring set up.*' /tmp/probe.log | head -1)"
echo "=====SCALE-GUEST-END====="
msrpd --listen 127.0.0.1:$PORT $RELAY_FLAGS >/tmp/msrpd.log 2>&1 &
relay=\$!
for i in \$(seq 100); do grep -q ':$(printf '%04X' $PORT) 00000000:0000 0A' /proc/net/tcp && break; sleep 0.1; done
sleep 0.5
echo "bench start \$(cut -d' ' -f1 /proc/uptime)"
msrpd-bench --relay 127.0.0.1:$PORT --relay-pid \$relay $BENCH_FLAGS >/tmp/bench.json 2>/tmp/bench.err
echo "bench exit \$? at \$(cut -d' ' -f1 /proc/uptime)"
echo "=====SCALE-JSON-BEGIN====="
cat /tmp/bench.json
echo "=====SCALE-JSON-END====="
echo "=====SCALE-STDERR-BEGIN====="
cat /tmp/bench.err /tmp/msrpd.log
echo "=====SCALE-STDERR-END====="
kill \$relay
poweroff -f
EOF
archive "$cache/init" "$cache/initramfs.gz"

console=$cache/console.log
say "booting the guest ($accel_name, $VCPUS vCPUs, $MEM RAM, $PAIRS pairs, at most $TIMEOUT s), console in $console"
rc=0
timeout --kill-after=10 "$TIMEOUT" qemu-system-x86_64 "${accel[@]}" -smp "$VCPUS" -m "$MEM" \
  -nographic -no-reboot -kernel "$kernel" -initrd "$cache/initramfs.gz" \
  -append 'console=ttyS0 quiet panic=-1' </dev/null >"$console" 2>&1 || rc=$?
[ "$rc" -eq 124 ] && say "the guest did not finish within $TIMEOUT s: killed"

# Without carriage returns and terminal escapes (the firmware clears the screen).
tr -d '\r' <"$console" | sed 's/\x1b[[][0-9;?]*[a-zA-Z]//g; s/\x1bc//g' >"$console.txt"
section() { sed -n "/^=====SCALE-$1-BEGIN=====\$/,/^=====SCALE-$1-END=====\$/p" "$console.txt" | sed '1d;$d'; }
guest() { section GUEST | sed -n "s/^$1 //p"; }
json=$(section JSON)
if [ -z "$json" ]; then
  say "no JSON from the guest (qemu exit $rc); console:"
  tail -40 "$console.txt" >&2
  exit 1
fi
section STDERR >&2
bench_exit=$(sed -n 's/^bench exit \([0-9]*\) at .*/\1/p' "$console.txt")
bench_secs=$(awk '/^bench start / {s = $3} /^bench exit / {e = $5} END {printf "%.0f", e - s}' "$console.txt")
setup_secs=$(python3 -c 'import json, sys; print("%.1f" % json.loads(sys.argv[1])["setup_s"])' "$json")
host_hard=$(ulimit -Hn)
capeff=$(awk '/^CapEff/ {print $2}' /proc/self/status)
if (( (0x$capeff >> 24) & 1 )); then
  cap_note="it has CAP_SYS_RESOURCE"
else
  cap_note="no CAP_SYS_RESOURCE (CapEff $capeff) to raise it"
fi
where="run in a $accel_name guest (Linux $(guest kernel), $(guest vcpus) vCPUs, $MEM RAM), open files limit $(guest nofile) per process"

mkdir -p "$(dirname "$OUT")"
{
  python3 perf/scale_report.py "$json" "$(guest nofile)" "$PAIRS" "$RATE" "$where"
  if [ "$bench_exit" != 0 ]; then
    printf '\n**msrpd-bench failed (exit %s).** Its error samples: %s\n' "$bench_exit" \
      "$(python3 -c 'import json, sys; print("; ".join(json.loads(sys.argv[1])["error_samples"]) or "none")' "$json")"
  fi
  cat <<EOF

## Where it ran

In a virtual machine started by \`PAIRS=$PAIRS perf/scale-vm.sh\`, because on the host the
open-files hard limit is $host_hard per process and the sandbox has $cap_note:
$PAIRS pairs need $((2 * PAIRS)) descriptors in the relay and as many in the bench.

| | |
|---|---|
| accelerator | $accel_note; qemu $(qemu-system-x86_64 --version | sed -n '1s/.*version \([^ ]*\).*/\1/p'), \`-cpu ${accel[-1]}\` |
| guest kernel | $(guest kernel) (Debian's; initramfs with busybox, msrpd, msrpd-bench) |
| vCPUs / RAM | $(guest vcpus) / \`-m $MEM\` ($(guest mem_kib) KiB MemTotal) |
| transparent hugepages | $(guest thp) (host: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo n/a)) |
| msrpd's io_uring | $(guest uring | sed 's/io_uring ring set up //') |
| relay flags | \`$RELAY_FLAGS\` (perf/scale_args.sh, as scale.sh) |
| bench | \`$BENCH_FLAGS\` (perf/scale_args.sh; ephemeral ports $(guest port_range | tr '\t' '-')) |
| bench wall time in the guest | $bench_secs s: set-up of all pairs $setup_secs s, 2 s hold, 1 s warm-up, $DURATION s traffic, drain |
| code | $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src bench Cargo.toml Cargo.lock || echo ' with uncommitted changes') |
EOF
} >"$OUT"
cat "$OUT"
[ "$bench_exit" = 0 ]
