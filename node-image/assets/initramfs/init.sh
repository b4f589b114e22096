#!/bin/sh
# omboot initramfs /init (busybox ash): bring up the boot NIC, mount the read-only NFS root under a
# tmpfs overlay and switch to it. Generated into the initramfs by `omimage build`.
#
# Kernel command line (all omboot.* values are single words):
#   BOOTIF=01-aa-bb-cc-dd-ee-ff  MAC of the NIC that PXE-booted (iPXE/pxelinux form); else first non-lo NIC
#   omboot.name=NAME             node host name; else the DHCP host name; else node-<mac>
#   omboot.nfsroot=IP:/PATH      NFSv3 export holding the root (required; IP literal, no DNS here)
#   omboot.nfsport=PORT          NFS and MOUNT port (one TCP port, as ombootd serves both); default 2049
#   omboot.nfsopts=a,b           extra NFS mount options appended to ours
#   omboot.cluster=IP:PORT       read-write NFSv3 export (path /) mounted at /cluster; a failure only warns
#   omboot.key=URL               where to take the cluster key (http://IP:PORT/node/key), once; a failure warns
#   omboot.boot=N                this boot's number (ombootd counts each node's boots); seeds omd's generation
#   omboot.dhcptries=N           udhcpc attempts before giving up; default 5
#   omboot.rwsize=SIZE           tmpfs size for the writable layer (tmpfs syntax, e.g. 50%); default 50%
#   omboot.break=STEP[,STEP]     shell before STEP: modules, net, nfs, overlay, key, cluster, switch
#   omboot.debug                 trace this script (set -x)
# Every step prints "omboot: ..." on the console; a failure prints
# "omboot: FAILED at <step>: <reason>" and opens a shell.

export PATH=/bin:/sbin
STEP=early

say() { echo "omboot: $*"; }

rescue_shell() {
	say "starting a shell on the console ('exit' to continue)"
	# cttyhack gives the shell a controlling tty, so Ctrl-C works.
	setsid cttyhack sh -i || sh -i
}

fail() {
	say "FAILED at $STEP: $*"
	# Never return and never let /init exit (that would panic the kernel and hide the message).
	while true; do
		rescue_shell
		say "still FAILED at $STEP: $* (reboot -f to retry)"
	done
}

step() {
	STEP=$1
	case ",$BREAK," in
	*",$1,"*) say "break before step $1 (omboot.break)"; rescue_shell ;;
	esac
}

mkdir -p /proc /sys /dev /run
mount -t proc -o nosuid,nodev,noexec proc /proc || fail "cannot mount /proc"
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys || fail "cannot mount /sys"
mount -t devtmpfs -o mode=0755,nosuid devtmpfs /dev || fail "cannot mount /dev"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run || fail "cannot mount /run"
mkdir -p /run/omboot

BOOTIF=
NAME=
NFSROOT=
NFSPORT=2049
NFSOPTS=
CLUSTER=
KEYURL=
BOOT=
DHCPTRIES=5
RWSIZE=50%
BREAK=
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	BOOTIF=*) BOOTIF=${arg#BOOTIF=} ;;
	omboot.name=*) NAME=${arg#omboot.name=} ;;
	omboot.nfsroot=*) NFSROOT=${arg#omboot.nfsroot=} ;;
	omboot.nfsport=*) NFSPORT=${arg#omboot.nfsport=} ;;
	omboot.nfsopts=*) NFSOPTS=${arg#omboot.nfsopts=} ;;
	omboot.cluster=*) CLUSTER=${arg#omboot.cluster=} ;;
	omboot.key=*) KEYURL=${arg#omboot.key=} ;;
	omboot.boot=*) BOOT=${arg#omboot.boot=} ;;
	omboot.dhcptries=*) DHCPTRIES=${arg#omboot.dhcptries=} ;;
	omboot.rwsize=*) RWSIZE=${arg#omboot.rwsize=} ;;
	omboot.break=*) BREAK=${arg#omboot.break=} ;;
	omboot.debug) set -x ;;
	esac
done
say "initramfs started (kernel $(uname -r))"

# --- modules ---------------------------------------------------------------------------------
step modules
KDIR=/lib/modules/$(uname -r)
[ -d "$KDIR" ] || fail "no modules for kernel $(uname -r) in the initramfs (image built for another kernel?)"
loaded=0
while read -r mod; do
	[ -n "$mod" ] || continue
	name=${mod##*/}
	name=${name%.ko}
	# Already present (loaded on demand meanwhile): nothing to do.
	grep -q "^$(echo "$name" | tr - _) " /proc/modules && continue
	insmod "$KDIR/$mod" || fail "insmod $mod failed"
	loaded=$((loaded + 1))
done </etc/omboot/modules
say "loaded $loaded kernel modules"

# NIC drivers: the initramfs holds every Ethernet driver of the kernel, indexed by depmod. Each
# device on a bus where NICs live that no driver has taken is offered to modprobe by its modalias
# (modules.alias globs, as udev would). Another pass follows one that loaded something: a bus
# driver can make new devices appear (virtio transport, auxiliary devices).
tried=" "
pass=1
while [ $pass -le 3 ]; do
	before=$(wc -l </proc/modules)
	for f in /sys/bus/pci/devices/*/modalias /sys/bus/virtio/devices/*/modalias \
		/sys/bus/vmbus/devices/*/modalias /sys/bus/xen/devices/*/modalias \
		/sys/bus/auxiliary/devices/*/modalias /sys/bus/ssb/devices/*/modalias \
		/sys/bus/bcma/devices/*/modalias; do
		[ -r "$f" ] || continue
		[ -e "${f%/modalias}/driver" ] && continue
		alias=$(cat "$f")
		case "$tried" in *" $alias "*) continue ;; esac
		tried="$tried$alias "
		modprobe -q "$alias" 2>/dev/null
	done
	[ "$(wc -l </proc/modules)" -gt "$before" ] || break
	pass=$((pass + 1))
done

# --- network ---------------------------------------------------------------------------------
step net
ip link set lo up
MAC=
if [ -n "$BOOTIF" ]; then
	# 01-52-54-00-77-00-01: hardware type 01 (Ethernet), then the MAC with '-' separators.
	MAC=$(echo "${BOOTIF#??-}" | tr 'A-F-' 'a-f:')
fi
IFACE=
i=0
while [ -z "$IFACE" ] && [ $i -lt 50 ]; do
	first=
	for dev in /sys/class/net/*; do
		n=${dev##*/}
		[ "$n" = lo ] && continue
		[ -e "$dev/address" ] || continue
		[ -z "$first" ] && first=$n
		if [ -n "$MAC" ] && [ "$(cat "$dev/address")" = "$MAC" ]; then IFACE=$n; fi
	done
	if [ -z "$IFACE" ] && [ -z "$MAC" ] && [ -n "$first" ]; then IFACE=$first; fi
	# NIC drivers probe asynchronously after insmod: wait up to 5 s for the device.
	[ -n "$IFACE" ] || { sleep 0.1; i=$((i + 1)); }
done
if [ -z "$IFACE" ] && [ -n "$MAC" ] && [ -n "$first" ]; then
	say "no interface has BOOTIF MAC $MAC; falling back to $first"
	IFACE=$first
fi
if [ -z "$IFACE" ]; then
	# Name the network-class PCI devices no driver took: what an operator looks up.
	orphans=
	for d in /sys/bus/pci/devices/*; do
		case "$(cat "$d/class" 2>/dev/null)" in 0x02*) ;; *) continue ;; esac
		[ -e "$d/driver" ] || orphans="$orphans ${d##*/} ($(cat "$d/modalias"))"
	done
	fail "no network interface found${orphans:+: no driver in the initramfs for$orphans} (initramfs.nic_drivers of node-image.toml)"
fi
DRIVER=$(readlink "/sys/class/net/$IFACE/device/driver")
DRIVER=${DRIVER##*/}
say "interface $IFACE ($(cat /sys/class/net/$IFACE/address)), driver ${DRIVER:-none}$([ -r /sys/class/net/$IFACE/device/modalias ] && echo " for $(cat /sys/class/net/$IFACE/device/modalias)")"
ip link set "$IFACE" up || fail "cannot bring $IFACE up"

try=1
while :; do
	say "DHCP on $IFACE (attempt $try of $DHCPTRIES)"
	# -n: give up instead of backgrounding; -q: exit once bound; -t/-T: 4 discovers 2 s apart.
	if udhcpc -i "$IFACE" -s /etc/omboot/udhcpc.script -n -q -t 4 -T 2 ${NAME:+-x hostname:$NAME} >/run/omboot/udhcpc.log 2>&1; then
		break
	fi
	[ "$try" -ge "$DHCPTRIES" ] && fail "no DHCP lease on $IFACE after $DHCPTRIES attempts: $(tail -n 3 /run/omboot/udhcpc.log | tr '\n' ' ')"
	try=$((try + 1))
done
[ -r /run/omboot/net.env ] || fail "udhcpc succeeded but its script left no /run/omboot/net.env"
. /run/omboot/net.env
[ -n "$NAME" ] || NAME=$dhcp_hostname
[ -n "$NAME" ] || NAME=node-$(tr -d : </sys/class/net/$IFACE/address)
hostname "$NAME"
say "address $dhcp_ip/$dhcp_mask on $IFACE, router ${dhcp_router:-none}, name $NAME"

# --- NFS root --------------------------------------------------------------------------------
step nfs
[ -n "$NFSROOT" ] || fail "no omboot.nfsroot=IP:/PATH on the kernel command line"
SERVER=${NFSROOT%%:*}
EXPORT=${NFSROOT#*:}
[ "$SERVER" != "$NFSROOT" ] && [ -n "$EXPORT" ] || fail "omboot.nfsroot=$NFSROOT is not IP:/PATH"
# The kernel's NFS option parser needs the server address (addr=): busybox mount has no NFS
# helper to resolve it. MOUNT runs on the NFS port over TCP (no portmapper on ombootd).
# ACLs stay on for the root: overlayfs asks the lower layer for ACLs in every non-root
# permission check, and ombootd answers NFSACL ("no ACL"); with noacl the answer would be
# EOPNOTSUPP and no ordinary user could run a program.
OPTS=ro,nolock,vers=3,tcp,port=$NFSPORT,mountport=$NFSPORT,mountproto=tcp,addr=$SERVER${NFSOPTS:+,$NFSOPTS}
mkdir -p /run/omboot/lower
ok=
for i in 1 2 3; do
	if mount -t nfs -o "$OPTS" "$SERVER:$EXPORT" /run/omboot/lower 2>/run/omboot/mount.err; then
		ok=1
		break
	fi
	say "NFS mount attempt $i failed: $(cat /run/omboot/mount.err)"
	sleep 2
done
[ -n "$ok" ] || fail "cannot mount $SERVER:$EXPORT (options $OPTS): $(cat /run/omboot/mount.err)"
[ -x /run/omboot/lower/sbin/init ] || fail "$SERVER:$EXPORT has no /sbin/init: not a node root"
say "mounted $SERVER:$EXPORT read-only (port $NFSPORT)"

# --- overlay ---------------------------------------------------------------------------------
step overlay
mkdir -p /run/omboot/rw /newroot
mount -t tmpfs -o "mode=0755,size=$RWSIZE" tmpfs /run/omboot/rw || fail "cannot mount the tmpfs for the writable layer"
mkdir -p /run/omboot/rw/upper /run/omboot/rw/work
mount -t overlay -o lowerdir=/run/omboot/lower,upperdir=/run/omboot/rw/upper,workdir=/run/omboot/rw/work overlay /newroot ||
	fail "cannot mount the overlay root: $(dmesg | grep -i overlay | tail -n 2 | tr '\n' ' ')"
# The name from the command line wins over the image's /etc/hostname.
echo "$NAME" >/newroot/etc/hostname || fail "cannot write /etc/hostname in the new root"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$NAME" >/newroot/etc/hosts
# A machine-id derived from the boot NIC: the same node keeps its identity (journal, omd's node id)
# across reboots, where an empty file would give it a new random one every boot.
printf 'omboot-machine-id:%s' "$(cat /sys/class/net/$IFACE/address)" | md5sum | cut -c1-32 >/newroot/etc/machine-id ||
	fail "cannot write /etc/machine-id in the new root"
if [ -s /run/omboot/resolv.conf ]; then
	rm -f /newroot/etc/resolv.conf
	cp /run/omboot/resolv.conf /newroot/etc/resolv.conf
fi
say "root is overlay(nfs ro + tmpfs rw) on /newroot"

# --- cluster key -----------------------------------------------------------------------------
# The key is not in the exported root (anyone on the network could read it there): ombootd gives it
# once per boot to this node's address and MAC, and it lives in the tmpfs layer, root-only. The
# boot number seeds omd's generation (/run moves into the new root), so a rebooted node is newer
# than anything the cluster remembers of it without trusting a clock.
step key
if [ -n "$KEYURL" ]; then
	mkdir -p /newroot/etc/omd
	rm -f /newroot/etc/omd/cluster.key
	ok=
	for i in 1 2 3; do
		# umask in a subshell: the file is never readable by others, not even for a moment.
		if (umask 077 && wget -q -T 10 -O /newroot/etc/omd/cluster.key.new "$KEYURL") 2>/run/omboot/key.err; then
			ok=1
			break
		fi
		sleep 1
	done
	if [ -n "$ok" ] && mv /newroot/etc/omd/cluster.key.new /newroot/etc/omd/cluster.key; then
		say "cluster key received from $KEYURL"
	else
		rm -f /newroot/etc/omd/cluster.key.new
		say "WARNING: no cluster key from $KEYURL ($(cat /run/omboot/key.err)); omd will not start"
	fi
fi
case "$BOOT" in
'' | *[!0-9]*) ;;
*)
	mkdir -p /run/omd
	echo $((BOOT * 4294967296)) >/run/omd/generation
	say "boot $BOOT: omd generation from $((BOOT * 4294967296))"
	;;
esac

# --- cluster directory -----------------------------------------------------------------------
# Mounted straight inside the new root: switch_root moves /newroot with everything mounted below
# it, so this becomes /cluster. Jobs can run without it, so a failure warns and the boot goes on.
step cluster
if [ -n "$CLUSTER" ]; then
	CSERVER=${CLUSTER%%:*}
	CPORT=${CLUSTER##*:}
	if [ "$CSERVER" = "$CLUSTER" ] || [ -z "$CSERVER" ] || [ -z "$CPORT" ]; then
		say "WARNING: omboot.cluster=$CLUSTER is not IP:PORT; no /cluster"
	else
		# nolock: ombootd runs no lock manager.
		# noacl: /cluster is no overlay layer, and its export keeps no ACLs.
		COPTS=rw,nolock,noacl,vers=3,tcp,port=$CPORT,mountport=$CPORT,mountproto=tcp,addr=$CSERVER
		# The image may lack the mount point: it is then made in the writable upper layer.
		mkdir -p /newroot/cluster
		ok=
		for i in 1 2 3; do
			if mount -t nfs -o "$COPTS" "$CSERVER:/" /newroot/cluster 2>/run/omboot/cluster.err; then
				ok=1
				break
			fi
			sleep 1
		done
		if [ -n "$ok" ]; then
			say "mounted $CSERVER:/ read-write (port $CPORT) at /cluster"
		else
			say "WARNING: cannot mount $CSERVER:/ (options $COPTS) at /cluster: $(cat /run/omboot/cluster.err)"
		fi
	fi
fi

# --- switch ----------------------------------------------------------------------------------
step switch
# /run carries /run/omboot/lower and /run/omboot/rw along (mount --move moves submounts too);
# systemd keeps an already mounted /run.
for m in /dev /proc /sys /run; do
	mount --move "$m" "/newroot$m" || fail "cannot move $m into the new root"
done
say "switching to the NFS root as $NAME"
exec switch_root /newroot /sbin/init
# Not reached unless exec failed; /proc is gone, so remount it for the rescue shell.
mount -t proc proc /proc
fail "switch_root to /newroot failed"
