#!/bin/sh
# omboot-ready: report the node's boot outcome as ONE line on the console (via the kernel log), which the lab
# and ombootd's tests wait for. Installed by `omimage build` as /usr/local/sbin/omboot-ready.
#   OMBOOT-READY name=<hostname> ip=<first global IPv4> state=<systemctl is-system-running>
#   OMBOOT-FAILED-UNITS <unit> <unit> ...     (only when the state is not "running")

# --wait blocks until start-up finished; bounded, so a hung job still yields a line.
state=$(timeout 120 systemctl is-system-running --wait 2>/dev/null)
[ -n "$state" ] || state=unknown
name=$(cat /proc/sys/kernel/hostname)
ip=none
# "2: eth0    inet 10.0.2.15/24 brd ... scope global eth0 ..." : the 4th field is addr/prefix.
addr=$(ip -4 -o addr show scope global | { read -r _ _ _ a _ && echo "$a"; })
[ -n "$addr" ] && ip=${addr%/*}

report="OMBOOT-READY name=$name ip=$ip state=$state"
# Through the kernel log, at "crit" (<2>) so it passes the console log level the image sets:
# the kernel prints it on the serial console itself. A direct write to /dev/ttyS0 can be lost
# when the serial getty starts at the same moment and hangs up or flushes the tty.
printf '<2>%s\n' "$report" >/dev/kmsg
if [ "$state" != running ]; then
	failed=$(systemctl --failed --plain --no-legend | { units=; while read -r u _; do units="$units $u"; done; echo $units; })
	printf '<2>%s\n' "OMBOOT-FAILED-UNITS ${failed:-none}" >/dev/kmsg
fi
