#!/bin/sh
# udhcpc event script of omboot-lease.service on a running node: a lease only confirms the address
# the initramfs configured. It is never removed or changed here, since the NFS root depends on it.

case "$1" in
bound | renew)
	if ip -4 -o addr show dev "$interface" | grep -q "inet $ip/"; then
		if [ "$1" = bound ]; then
			echo "omboot: lease of $ip on $interface confirmed for ${lease}s"
		else
			echo "omboot: lease of $ip on $interface renewed for ${lease}s"
		fi
	else
		echo "omboot: WARNING: the server offers $ip, but $interface keeps its boot address (the NFS root is mounted over it)" >&2
	fi
	;;
deconfig)
	# udhcpc would drop the address here: keep it.
	;;
leasefail | nak)
	echo "omboot: lease $1 on $interface${message:+: $message}" >&2
	;;
esac
exit 0
