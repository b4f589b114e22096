#!/bin/sh
# busybox udhcpc event script for the omboot initramfs: configures the lease on $interface and
# records it in /run/omboot/net.env (sourced by /init) and /run/omboot/resolv.conf.
# udhcpc exports: interface ip mask(prefix bits) router dns domain hostname serverid lease staticroutes.

PATH=/bin:/sbin

case "$1" in
deconfig)
	# Before a lease: the link up, no address (the NIC may carry a stale one from a retry).
	ip -4 addr flush dev "$interface" 2>/dev/null
	ip link set "$interface" up
	;;
bound | renew)
	ip -4 addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface" || exit 1
	# Classless static routes (option 121) as "dest/bits gw" pairs, then the default router.
	if [ -n "$staticroutes" ]; then
		set -- $staticroutes
		while [ $# -ge 2 ]; do
			ip route add "$1" via "$2" dev "$interface" 2>/dev/null
			shift 2
		done
	fi
	for r in $router; do
		ip route add default via "$r" dev "$interface" && break
	done
	first_router=
	for r in $router; do first_router=$r; break; done
	{
		echo "dhcp_interface='$interface'"
		echo "dhcp_ip='$ip'"
		echo "dhcp_mask='${mask:-24}'"
		echo "dhcp_router='$first_router'"
		echo "dhcp_dns='$dns'"
		echo "dhcp_domain='$domain'"
		echo "dhcp_hostname='$hostname'"
		echo "dhcp_serverid='$serverid'"
		echo "dhcp_lease='$lease'"
	} >/run/omboot/net.env
	: >/run/omboot/resolv.conf
	[ -n "$domain" ] && echo "search $domain" >>/run/omboot/resolv.conf
	for d in $dns; do echo "nameserver $d" >>/run/omboot/resolv.conf; done
	;;
leasefail | nak)
	echo "omboot: udhcpc: $1 on $interface${message:+: $message}" >&2
	;;
esac
exit 0
