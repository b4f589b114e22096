//! node-image: builds the shared, read-only image every ombootd node boots: a Debian root
//! (mmdebstrap, cached by recipe hash, customised for diskless boot), our own initramfs and a manifest.
//!
//! Pure logic (recipe, config, modules, layout, manifest, customisation plan) is kept apart from the
//! small modules that run host tools (mmdebstrap, tar, xz/zstd, depmod) or touch the file system.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod accounts;
pub mod archive;
pub mod cache;
pub mod cluster;
pub mod config;
pub mod config_error;
pub mod customize;
pub mod dpkg;
pub mod elf;
pub mod fsinfo;
pub mod image_dir;
pub mod initramfs;
pub mod kernel;
pub mod kmod;
pub mod manifest;
pub mod mmdebstrap;
pub mod modules;
pub mod progress;
pub mod recipe;
pub mod rootfs_edit;
pub mod secret;
pub mod tarball;
pub mod tftp;
pub mod timestamp;
