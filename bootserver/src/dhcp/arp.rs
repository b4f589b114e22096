//! Privileged: insert a neighbour (ARP) entry with SIOCSARP, so an OFFER/ACK can be unicast to a
//! client that has no address yet and cannot answer ARP (RFC 2131 §4.1). Needs CAP_NET_ADMIN.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use crate::mac::MacAddr;

/// Insert `ip` → `mac` on `iface` through the socket `sock`.
pub fn insert(sock: &impl AsRawFd, iface: &str, ip: Ipv4Addr, mac: MacAddr) -> io::Result<()> {
    // SAFETY: arpreq is a plain C struct of integers and byte arrays; all zeroes is a valid value.
    let mut req: libc::arpreq = unsafe { std::mem::zeroed() };
    let pa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr are both 16 bytes; we copy the former's bytes into the latter,
    // which is what the kernel expects for an AF_INET protocol address.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&raw const pa).cast::<u8>(),
            (&raw mut req.arp_pa).cast::<u8>(),
            std::mem::size_of::<libc::sockaddr_in>(),
        );
    }
    req.arp_ha.sa_family = libc::ARPHRD_ETHER;
    for (slot, b) in req.arp_ha.sa_data.iter_mut().zip(mac.0) {
        *slot = b as libc::c_char;
    }
    req.arp_flags = libc::ATF_COM;
    // arp_dev is NUL-terminated: at most 15 name bytes (validated in config).
    for (slot, b) in req.arp_dev.iter_mut().zip(iface.bytes().take(15)) {
        *slot = b as libc::c_char;
    }
    // SAFETY: the fd is an open socket for the duration of the call and `req` is fully initialised.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSARP, &raw const req) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
