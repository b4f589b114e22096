//! Fuzz target: a datagram on the TFTP port through the server's request path (parse, mode,
//! confined open, option negotiation); RRQ opens, WRQ is refused, and nothing outside the root
//! may be read.

#![no_main]

use std::fs;
use std::io::Read;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use bootserver::tftp::packet::ErrorCode;
use bootserver::tftp::request::{self, Answer};
use bootserver::tftp::{ConfinedTftpHandler, TftpStats, options, server};
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
    // The server's own path for a datagram on port 69: the decision, then for a read the
    // confined open and the option negotiation. Nothing outside the root may be read.
    let stats = Arc::new(TftpStats::default());
    let handler = ConfinedTftpHandler::new(root(), stats.clone()).expect("the root opens");
    let client = SocketAddr::from(([10, 77, 0, 11], 2070));
    match request::answer(data) {
        Answer::Read {
            filename,
            mode,
            options: asked,
        } => {
            if let Ok(mut opened) = handler.open_read(&client, filename) {
                let n = options::negotiate(&asked, mode, opened.len, server::ETHERNET_LIMITS);
                assert!(n.block_size >= 8 && n.window >= 1, "{n:?}");
                let mut content = Vec::new();
                opened.file.read_to_end(&mut content).expect("a served file reads");
                assert_ne!(content, SECRET, "{filename:?} served a file outside the root");
            }
            let counted = stats.sent.load(Ordering::Relaxed)
                + stats.refused.load(Ordering::Relaxed)
                + stats.not_found.load(Ordering::Relaxed);
            assert_eq!(counted, 1, "{filename:?}: a read request is counted once");
        }
        Answer::Write { filename } => {
            let refusal = handler.refuse_write(&client, filename);
            assert_eq!(refusal.code, ErrorCode::AccessViolation);
        }
        Answer::Error { .. } | Answer::Drop(_) => {}
    }
});
