//! Fuzz target: a TFTP request datagram; its file name goes through our confined handler as
//! async-tftp hands it over (RRQ opens, WRQ is refused), and nothing outside the root may be read.

#![no_main]

use std::fs;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use async_tftp::server::Handler;
use bootserver::tftp::{ConfinedTftpHandler, TftpStats};
use futures_lite::AsyncReadExt;
use futures_lite::future::block_on;
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"outside the served root";

/// A served root with files, a subdirectory and symlinks pointing in and out, next to the
/// file that must never be served.
fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        // One fixed tree made idempotently: runs and parallel jobs share it rather than each
        // leaving its own behind.
        let base = std::env::temp_dir().join("ombootd-fuzz-tftp");
        let (root, outside) = (base.join("root"), base.join("outside"));
        fs::create_dir_all(root.join("efi")).expect("create the root");
        fs::create_dir_all(&outside).expect("create the outside directory");
        fs::write(outside.join("secret"), SECRET).expect("write the secret");
        fs::write(root.join("undionly.kpxe"), b"bios loader").expect("write a file");
        fs::write(root.join("efi/ipxe.efi"), b"uefi loader").expect("write a file");
        let links = [
            ("../outside/secret", "leak"),
            ("../outside", "leakdir"),
            ("../../outside/secret", "efi/leak"),
            ("undionly.kpxe", "inner"),
        ];
        for (target, link) in links {
            match symlink(target, root.join(link)) {
                Err(e) if e.kind() != ErrorKind::AlreadyExists => panic!("symlink {link}: {e}"),
                _ => {}
            }
        }
        root
    })
}

fuzz_target!(|data: &[u8]| {
    // async-tftp's packet parser is private: take what it hands the handler, the opcode and the
    // NUL-terminated UTF-8 name after it. Mode and options never reach our code.
    let Some((op, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let Some(end) = rest.iter().position(|&b| b == 0) else {
        return;
    };
    let Ok(name) = std::str::from_utf8(&rest[..end]) else {
        return;
    };
    let stats = Arc::new(TftpStats::default());
    let mut handler = ConfinedTftpHandler::new(root(), stats.clone()).expect("the root opens");
    let client = SocketAddr::from(([10, 77, 0, 11], 2070));
    match u16::from_be_bytes(*op) {
        1 => {
            if let Ok((mut file, _)) = block_on(handler.read_req_open(&client, Path::new(name))) {
                let mut content = Vec::new();
                block_on(file.read_to_end(&mut content)).expect("a served file reads");
                assert_ne!(content, SECRET, "{name:?} served a file outside the root");
            }
            let counted = stats.sent.load(Ordering::Relaxed)
                + stats.refused.load(Ordering::Relaxed)
                + stats.not_found.load(Ordering::Relaxed);
            assert_eq!(counted, 1, "{name:?}: a read request is counted once");
        }
        2 => {
            let wrote = block_on(handler.write_req_open(&client, Path::new(name), None));
            assert!(wrote.is_err(), "{name:?}: a write request was accepted");
        }
        _ => {}
    }
});
