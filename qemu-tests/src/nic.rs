//! The NIC models a lab node can carry: QEMU's device name and the Linux driver that takes it, so
//! a test boots several kinds of hardware and checks the initramfs found the right driver.

/// A QEMU network card that has an iPXE option ROM (BIOS and UEFI) in Debian's ipxe-qemu.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Nic {
    /// virtio-net (the default: the fastest under TCG).
    #[default]
    Virtio,
    /// Intel 82540EM (e1000).
    E1000,
    /// Intel 82574L, PCI Express (e1000e).
    E1000e,
    /// Realtek RTL8139C+.
    Rtl8139,
    /// VMware vmxnet3 (its driver lives outside `drivers/net/ethernet`).
    Vmxnet3,
    /// AMD PCnet (pcnet32).
    Pcnet,
}

impl Nic {
    /// QEMU's `-device` name.
    pub fn qemu_device(self) -> &'static str {
        match self {
            Nic::Virtio => "virtio-net-pci",
            Nic::E1000 => "e1000",
            Nic::E1000e => "e1000e",
            Nic::Rtl8139 => "rtl8139",
            Nic::Vmxnet3 => "vmxnet3",
            Nic::Pcnet => "pcnet",
        }
    }

    /// The Linux drivers that may bind it (the RTL8139C+ is claimed by 8139cp or 8139too).
    pub fn linux_drivers(self) -> &'static [&'static str] {
        match self {
            Nic::Virtio => &["virtio_net"],
            Nic::E1000 => &["e1000"],
            Nic::E1000e => &["e1000e"],
            Nic::Rtl8139 => &["8139cp", "8139too"],
            Nic::Vmxnet3 => &["vmxnet3"],
            Nic::Pcnet => &["pcnet32"],
        }
    }
}
