//! ombootd's services against real clients in a lab namespace: busybox udhcpc for DHCP, atftp for
//! TFTP, libnfs-utils for NFS, curl for HTTP. The image is a small synthetic one made per test, so
//! these run without `omimage build`; the QEMU boot test (`boot.rs`) uses the real image.

#![allow(clippy::unwrap_used)]

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use bootserver::tftp::packet as tftp;
use omlab::{ClientNs, Lab, LabMac, MacAddr, Proc};

const T: Duration = Duration::from_secs(30);
const NODE1: &str = "10.77.0.11";

fn ombootd() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/ombootd");
    assert!(
        p.is_file(),
        "{} missing: `cargo build -p bootserver` first (omlab test does)",
        p.display()
    );
    p
}

fn fake_image(lab: &Lab) -> PathBuf {
    omlab::fixture::fake_image(lab.dir(), 3_000_000).unwrap()
}

/// A lab running ombootd with node1 = 52:54:00:77:00:01 and node2 = …:02.
fn lab_with_ombootd(name: &str) -> (Lab, Proc) {
    let lab = Lab::new(name).unwrap();
    let img = fake_image(&lab);
    let cfg = lab
        .ombootd_config(&img)
        .node("node1", MacAddr::lab(1), NODE1.parse().unwrap())
        .node("node2", MacAddr::lab(2), "10.77.0.12".parse().unwrap());
    let path = lab.write_ombootd_config(&cfg).unwrap();
    let proc = lab.start_ombootd(&ombootd(), &path).unwrap();
    (lab, proc)
}

/// A client namespace whose eth0 has `mac`.
fn client(lab: &Lab, name: &str, mac: MacAddr, on_bridge: bool) -> ClientNs {
    let c = lab.add_client_ns(name, on_bridge).unwrap();
    let mut cmd = Command::new("ip");
    cmd.args(["link", "set", "eth0", "address", &mac.to_string()]);
    let out = lab.run(cmd, c.netns(), T).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs busybox udhcpc once in `c` with `extra` arguments; returns its output, where our script
/// prints one `LEASE ip=… hostname=… siaddr=… boot_file=…` line per lease.
fn udhcpc(lab: &Lab, c: &ClientNs, extra: &[&str]) -> Output {
    let script = lab.dir().join("udhcpc.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = bound ] && echo \"LEASE ip=$ip mask=$subnet hostname=$hostname siaddr=$siaddr boot_file=$boot_file serverid=$serverid lease=$lease router=$router\"\nexit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new("busybox");
    cmd.args([
        "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "3", "-T", "1", "-s",
    ])
    .arg(&script)
    .args(extra);
    lab.run(cmd, c.netns(), T).unwrap()
}

fn status(lab: &Lab, c: &ClientNs) -> serde_json::Value {
    let mut cmd = Command::new("curl");
    cmd.args(["-sf", "http://10.77.0.1:8080/api/status"]);
    let out = lab.run(cmd, c.netns(), T).unwrap();
    assert!(out.status.success(), "status API: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn dhcp_gives_reserved_address_and_boot_file_per_client_kind() {
    let (lab, _ombootd) = lab_with_ombootd("dhcp");
    let c = client(&lab, "c1", MacAddr::lab(1), true);

    let plain = udhcpc(&lab, &c, &[]);
    let t = text(&plain);
    assert!(plain.status.success(), "{t}");
    assert!(t.contains("LEASE ip=10.77.0.11 mask=255.255.255.0 hostname=node1 siaddr=10.77.0.1 boot_file= serverid=10.77.0.1 lease=3600"), "{t}");

    let cases = [
        (
            vec!["-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000"],
            "boot_file=undionly.kpxe",
        ),
        (
            vec!["-V", "PXEClient:Arch:00007:UNDI:003016", "-x", "0x5d:0007"],
            "boot_file=ipxe.efi",
        ),
        (
            vec![
                "-V",
                "PXEClient:Arch:00007:UNDI:003016",
                "-x",
                "0x5d:0007",
                "-x",
                "0x4d:69505845",
            ],
            "boot_file=http://10.77.0.1:8080/boot/52-54-00-77-00-01.ipxe",
        ),
        // edk2's HTTP boot client (x64): the loader by URL, no TFTP.
        (
            vec!["-V", "HTTPClient:Arch:00016:UNDI:003001", "-x", "0x5d:0010"],
            "boot_file=http://10.77.0.1:8080/loader/ipxe.efi",
        ),
    ];
    for (args, want) in cases {
        let out = udhcpc(&lab, &c, &args);
        let t = text(&out);
        assert!(
            out.status.success() && t.contains("LEASE ip=10.77.0.11 ") && t.contains(want),
            "{args:?}: want {want} in {t}"
        );
    }

    // udhcpc's script above does not configure the address; do it to reach the status API.
    lab.add_client_addr(&c, "10.77.0.11/24").unwrap();
    let s = status(&lab, &c);
    assert_eq!(s["nodes"][0]["lease"]["state"], "bound", "{s}");
    assert_eq!(s["nodes"][1]["lease"], serde_json::Value::Null, "{s}");
    lab.teardown().unwrap();
}

#[test]
fn dhcp_ignores_unknown_macs_and_other_interfaces() {
    let (lab, _ombootd) = lab_with_ombootd("dhcpno");
    // A MAC that is not in the table, on the served bridge.
    let stranger = client(&lab, "c1", "52:54:00:99:00:01".parse().unwrap(), true);
    let out = udhcpc(&lab, &stranger, &[]);
    assert!(
        !out.status.success() && !text(&out).contains("LEASE"),
        "unknown MAC got a lease: {}",
        text(&out)
    );

    // node2's own MAC, but arriving on an interface of the master that is not the configured one.
    let elsewhere = client(&lab, "c2", MacAddr::lab(2), false);
    let out = udhcpc(&lab, &elsewhere, &[]);
    assert!(
        !out.status.success() && !text(&out).contains("LEASE"),
        "other interface got a lease: {}",
        text(&out)
    );

    let watcher = client(&lab, "c3", MacAddr::lab(1), true);
    lab.add_client_addr(&watcher, "10.77.0.200/24").unwrap();
    let s = status(&lab, &watcher);
    assert!(s["dhcp"]["unknown_client"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["dhcp"]["replied"], 0, "{s}");
    // Only the stranger's packets reached ombootd: the other interface's never did.
    assert_eq!(s["dhcp"]["received"], s["dhcp"]["unknown_client"], "{s}");
    assert_eq!(s["nodes"][1]["lease"], serde_json::Value::Null, "{s}");
    lab.teardown().unwrap();
}

fn atftp(lab: &Lab, c: &ClientNs, remote: &str, local: &Path, options: &[&str]) -> Output {
    let mut cmd = Command::new("atftp");
    cmd.args(["--trace", "--tftp-timeout", "1", "-g", "-r", remote, "-l"])
        .arg(local);
    for o in options {
        cmd.args(["--option", o]);
    }
    cmd.arg("10.77.0.1");
    lab.run(cmd, c.netns(), T).unwrap()
}

/// The size of DATA block 1 in an atftp trace (`received … DATA <block: 1, size 1428>`).
fn first_block_size(trace: &str) -> Option<u32> {
    let line = trace.lines().find(|l| l.contains("DATA <block: 1,"))?;
    let after = &line[line.find("size")? + 4..];
    after
        .trim_start_matches([':', ' '])
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn tftp_sends_exact_content_honours_options_and_refuses_escapes() {
    let (lab, _ombootd) = lab_with_ombootd("tftp");
    let c = client(&lab, "c1", MacAddr::lab(1), true);
    lab.add_client_addr(&c, "10.77.0.11/24").unwrap();

    let got = lab.dir().join("got.kpxe");
    let out = atftp(
        &lab,
        &c,
        "undionly.kpxe",
        &got,
        &["blksize 1428", "tsize 0", "windowsize 8"],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(
        std::fs::read(&got).unwrap(),
        std::fs::read("/usr/lib/ipxe/undionly.kpxe").unwrap(),
        "content differs"
    );
    let oack = t
        .lines()
        .find(|l| l.contains("OACK"))
        .unwrap_or_else(|| panic!("no OACK: {t}"));
    assert!(
        oack.contains("blksize: 1428") && oack.contains("windowsize: 8"),
        "{oack}"
    );
    assert!(
        oack.contains(&format!(
            "tsize: {}",
            std::fs::metadata(&got).unwrap().len()
        )),
        "{oack}"
    );
    assert_eq!(
        first_block_size(&t),
        Some(1428),
        "blocks are not 1428 bytes: {t}"
    );

    // Leading slash is fine; the default block size is 512.
    let out = atftp(&lab, &c, "/ipxe.efi", &lab.dir().join("got.efi"), &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(first_block_size(&text(&out)), Some(512), "{}", text(&out));

    for evil in [
        "../outside-secret",
        "leak",
        "leakdir/outside-secret",
        "/../image/vmlinuz",
    ] {
        let dest = lab.dir().join("evil.out");
        let out = atftp(&lab, &c, evil, &dest, &[]);
        let t = text(&out);
        assert!(
            !out.status.success() && t.contains("Permission denied"),
            "{evil} was not refused: {t}"
        );
        assert!(
            std::fs::read(&dest).map(|b| b.is_empty()).unwrap_or(true),
            "{evil} leaked content"
        );
    }
    let out = atftp(&lab, &c, "missing.bin", &lab.dir().join("m.out"), &[]);
    assert!(
        !out.status.success() && text(&out).contains("File not found"),
        "{}",
        text(&out)
    );

    // A tsize probe as PXE firmware makes it: RRQ with tsize, the OACK, then an ERROR
    // (code 8, options refused) to ask again later. Counted, and no INFO line of a transfer.
    let probe = "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(5)\ns.sendto(b'\\x00\\x01ipxe.efi\\x00octet\\x00tsize\\x000\\x00timeout\\x001\\x00', ('10.77.0.1', 69))\nd, a = s.recvfrom(600)\nassert d[:2] == b'\\x00\\x06', d\ns.sendto(b'\\x00\\x05\\x00\\x08tsize probe\\x00', a)\nprint('probed', d)\n";
    let mut py = Command::new("python3");
    py.args(["-c", probe]);
    let out = lab.run(py, c.netns(), T).unwrap();
    assert!(
        out.status.success() && text(&out).contains("probed"),
        "{}",
        text(&out)
    );
    let mut ended_early = serde_json::Value::Null;
    for _ in 0..100 {
        ended_early = status(&lab, &c)["tftp"]["ended_early"].clone();
        if ended_early == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(ended_early, 1, "the aborted probe was not counted");
    let log = std::fs::read_to_string(lab.dir().join("ombootd.log")).unwrap();
    let sent: Vec<&str> = log.lines().filter(|l| l.contains("TFTP sent")).collect();
    // The two whole transfers above, and not the probe.
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|l| l.contains("INFO")), "{sent:?}");
    assert!(
        !log.contains("tsize probe, or it gave up"),
        "the probe was logged above DEBUG"
    );

    let s = status(&lab, &c);
    assert_eq!(s["tftp"]["refused"], 4, "{s}");
    lab.teardown().unwrap();
}

/// A hand-made TFTP client's socket at NODE1:`port` in `c`: it answers nothing by itself.
fn tftp_socket(c: &ClientNs, port: u16) -> UdpSocket {
    let s = c
        .udp_socket(SocketAddr::new(NODE1.parse().unwrap(), port))
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

/// The next datagram on `s` before its read timeout.
fn tftp_recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    match s.recv_from(&mut buf) {
        Ok((n, from)) => Some((buf[..n].to_vec(), from)),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        Err(e) => panic!("recv: {e}"),
    }
}

/// Every datagram on `s` within `window`.
fn tftp_recv_all(s: &UdpSocket, window: Duration) -> Vec<Vec<u8>> {
    let end = std::time::Instant::now() + window;
    let mut got = Vec::new();
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return got;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match tftp_recv(s) {
            Some((p, _)) => got.push(p),
            None => return got,
        }
    }
}

/// Sends `rrq` to the server port from `s`; the first answer and the transfer's address.
fn tftp_ask(s: &UdpSocket, rrq: &[u8]) -> (Vec<u8>, SocketAddr) {
    s.send_to(rrq, "10.77.0.1:69").unwrap();
    tftp_recv(s).expect("no answer to the request")
}

fn tftp_parse(p: &[u8]) -> tftp::Packet<'_> {
    tftp::parse(p).unwrap_or_else(|e| panic!("{e}: {p:?}"))
}

#[test]
fn tftp_follows_rfc_1350_and_its_options_with_a_hand_made_client() {
    let (lab, _ombootd) = lab_with_ombootd("tftprfc");
    let c = client(&lab, "c1", MacAddr::lab(1), true);
    lab.add_client_addr(&c, "10.77.0.11/24").unwrap();
    let tftp_root = lab.dir().join("image/tftp");
    let kpxe = std::fs::read(tftp_root.join("undionly.kpxe")).unwrap();
    let rrq = |file: &str, mode: &str, opts: &[(&str, &str)]| {
        tftp::request_bytes(tftp::RRQ, file, mode, opts)
    };

    // An ERROR from the client ends the transfer at once: no OACK is sent again after it,
    // although the client asked for a 1 s timeout.
    let s = tftp_socket(&c, 3001);
    let (oack, server) = tftp_ask(
        &s,
        &rrq("ipxe.efi", "octet", &[("tsize", "0"), ("timeout", "1")]),
    );
    assert!(
        matches!(tftp_parse(&oack), tftp::Packet::Oack(_)),
        "{oack:?}"
    );
    s.send_to(
        &tftp::error(tftp::ErrorCode::OptionsRefused, "tsize probe"),
        server,
    )
    .unwrap();
    let after = tftp_recv_all(&s, Duration::from_millis(2500));
    assert!(
        after.is_empty(),
        "the server went on after the client's ERROR: {after:?}"
    );

    // The same request again from the same port while its transfer waits is that transfer:
    // one answer. Another request from that port, as firmware sends after a tsize probe, gets
    // a transfer of its own.
    let s = tftp_socket(&c, 3007);
    let probe = rrq("undionly.kpxe", "octet", &[("tsize", "0")]);
    let (_, first) = tftp_ask(&s, &probe);
    s.send_to(&probe, "10.77.0.1:69").unwrap();
    let again = tftp_recv_all(&s, Duration::from_millis(500));
    assert!(
        again.is_empty(),
        "a repeated request started a second transfer: {again:?}"
    );
    s.send_to(
        &tftp::error(tftp::ErrorCode::OptionsRefused, "probe"),
        first,
    )
    .unwrap();
    let (oack, second) = tftp_ask(&s, &rrq("undionly.kpxe", "octet", &[("blksize", "1024")]));
    assert_eq!(
        tftp_parse(&oack),
        tftp::Packet::Oack(vec![("blksize", "1024")])
    );
    assert_ne!(
        first, second,
        "a new transfer answers from a port of its own"
    );
    assert_ne!(second.port(), 69);
    s.send_to(&tftp::error(tftp::ErrorCode::NotDefined, "enough"), second)
        .unwrap();

    // Lock-step, no options: DATA 1; a duplicate ACK sends nothing (RFC 1123's Sorcerer's
    // Apprentice rule), the next ACK the next block.
    let s = tftp_socket(&c, 3002);
    let (d1, server) = tftp_ask(&s, &rrq("undionly.kpxe", "octet", &[]));
    assert_eq!(
        tftp_parse(&d1),
        tftp::Packet::Data {
            block: 1,
            data: &kpxe[..512]
        }
    );
    s.send_to(&tftp::ack(1), server).unwrap();
    let (d2, _) = tftp_recv(&s).expect("no block 2");
    assert_eq!(
        tftp_parse(&d2),
        tftp::Packet::Data {
            block: 2,
            data: &kpxe[512..1024]
        }
    );
    s.send_to(&tftp::ack(1), server).unwrap();
    let dup = tftp_recv_all(&s, Duration::from_millis(600));
    assert!(
        dup.is_empty(),
        "a duplicate ACK made the server send: {dup:?}"
    );
    s.send_to(&tftp::ack(2), server).unwrap();
    let (d3, _) = tftp_recv(&s).expect("no block 3");
    assert!(matches!(
        tftp_parse(&d3),
        tftp::Packet::Data { block: 3, .. }
    ));

    // A packet from another port of the client is answered with ERROR 5 (by the next
    // timeout at the latest), and the transfer goes on.
    let stranger = tftp_socket(&c, 3003);
    stranger.send_to(&tftp::ack(3), server).unwrap();
    let (e5, from) = tftp_recv(&stranger).expect("no ERROR for the stranger");
    assert_eq!(from, server);
    assert!(
        matches!(tftp_parse(&e5), tftp::Packet::Error { code: 5, .. }),
        "{e5:?}"
    );
    s.send_to(&tftp::ack(3), server).unwrap();
    let next = tftp_recv_all(&s, Duration::from_millis(1500));
    assert!(
        next.iter().any(|p| p[..4] == [0, 3, 0, 4]),
        "block 4 did not follow: {next:?}"
    );
    s.send_to(&tftp::error(tftp::ErrorCode::NotDefined, "enough"), server)
        .unwrap();

    // No ACK at all: block 1 goes again at each timeout (1 s, as asked), five times, then the
    // transfer is given up and nothing more comes.
    let s = tftp_socket(&c, 3004);
    let (oack, server) = tftp_ask(&s, &rrq("undionly.kpxe", "octet", &[("timeout", "1")]));
    assert_eq!(
        tftp_parse(&oack),
        tftp::Packet::Oack(vec![("timeout", "1")])
    );
    s.send_to(&tftp::ack(0), server).unwrap();
    let copies = tftp_recv_all(&s, Duration::from_secs(9));
    assert_eq!(copies.len(), 6, "block 1 and five retransmissions");
    assert!(copies.iter().all(|p| p[..4] == [0, 3, 0, 1]), "{copies:?}");

    // netascii: LF as CR LF, CR as CR NUL. tsize is not answered in netascii, and with no
    // other option there is no OACK: DATA 1 comes first.
    std::fs::write(tftp_root.join("notes.txt"), b"one\ntwo\rthree\n").unwrap();
    let s = tftp_socket(&c, 3005);
    let (d1, server) = tftp_ask(&s, &rrq("notes.txt", "NetAscii", &[("tsize", "0")]));
    assert_eq!(
        tftp_parse(&d1),
        tftp::Packet::Data {
            block: 1,
            data: b"one\r\ntwo\r\0three\r\n"
        }
    );
    s.send_to(&tftp::ack(1), server).unwrap();
    // curl asks tsize and blksize in netascii, and keeps the bytes as they came.
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "tftp://10.77.0.1/notes.txt;mode=netascii"]);
    let out = lab.run(cmd, c.netns(), T).unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(out.stdout, b"one\r\ntwo\r\0three\r\n");

    // What is not served: a write (ERROR 2), mail and unknown modes (ERROR 4); a datagram
    // that is not a request gets nothing back.
    let s = tftp_socket(&c, 3006);
    let code = |p: &[u8]| match tftp_parse(p) {
        tftp::Packet::Error { code, .. } => code,
        other => panic!("not an ERROR: {other:?}"),
    };
    let (e, _) = tftp_ask(&s, &tftp::request_bytes(tftp::WRQ, "x.bin", "octet", &[]));
    assert_eq!(code(&e), 2);
    let (e, _) = tftp_ask(&s, &rrq("undionly.kpxe", "mail", &[]));
    assert_eq!(code(&e), 4);
    let (e, _) = tftp_ask(&s, &rrq("undionly.kpxe", "image", &[]));
    assert_eq!(code(&e), 4);
    s.send_to(b"\x00\x01no terminator", "10.77.0.1:69").unwrap();
    s.send_to(&tftp::ack(7), "10.77.0.1:69").unwrap();
    let none = tftp_recv_all(&s, Duration::from_millis(800));
    assert!(none.is_empty(), "a non-request was answered: {none:?}");

    // A file of whole blocks ends with an empty block: atftp gets exactly 1024 bytes.
    let whole: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(tftp_root.join("whole.bin"), &whole).unwrap();
    let got = lab.dir().join("whole.out");
    let out = atftp(&lab, &c, "whole.bin", &got, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(&got).unwrap(), whole);

    // Block numbers wrap after 65535: 3 MB in 32-byte blocks is 93,751 blocks (a window of
    // 64 keeps it quick), fetched whole by atftp.
    let got = lab.dir().join("wrapped.bin");
    let out = atftp(&lab, &c, "big.bin", &got, &["blksize 32", "windowsize 64"]);
    assert!(
        out.status.success(),
        "{}",
        text(&out)
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        std::fs::read(&got).unwrap() == std::fs::read(tftp_root.join("big.bin")).unwrap(),
        "the wrapped transfer differs"
    );

    // Many transfers at once: 100 lock-step atftp clients, every file intact.
    let ok = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let (lab, c, kpxe) = (&lab, &c, &kpxe);
                scope.spawn(move || {
                    let out = lab.dir().join(format!("many-{i}.kpxe"));
                    let mut cmd = Command::new("atftp");
                    cmd.args(["--tftp-timeout", "2", "-g", "-r", "undionly.kpxe", "-l"])
                        .arg(&out)
                        .arg("10.77.0.1");
                    let r = lab.run(cmd, c.netns(), Duration::from_secs(120)).unwrap();
                    r.status.success() && std::fs::read(&out).is_ok_and(|b| b == *kpxe)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .filter(|ok| *ok)
            .count()
    });
    assert_eq!(ok, 100, "transfers at once that arrived intact");

    let st = status(&lab, &c);
    let n = |k: &str| st["tftp"][k].as_u64().unwrap();
    assert_eq!(n("gave_up"), 1, "{st}");
    assert!(n("ended_early") >= 2, "{st}");
    assert!(n("unknown_tid") >= 1, "{st}");
    assert!(n("malformed") >= 4, "{st}");
    lab.teardown().unwrap();
}

/// Threads of process `pid` now.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

#[test]
fn a_tftp_request_flood_is_bounded_and_others_are_still_served() {
    let (lab, ombootd) = lab_with_ombootd("tftpflood");
    let attacker = client(&lab, "c9", MacAddr::lab(9), true);
    lab.add_client_addr(&attacker, "10.77.0.99/24").unwrap();
    let node = client(&lab, "c1", MacAddr::lab(1), true);
    lab.add_client_addr(&node, "10.77.0.11/24").unwrap();
    let before = threads(ombootd.pid());
    // 2000 distinct requests for the big file, each asking the largest blocks and window, and
    // never acknowledged: each would be a transfer holding its first window for half a minute.
    let s = attacker
        .udp_socket(SocketAddr::new("10.77.0.99".parse().unwrap(), 3009))
        .unwrap();
    for i in 0..2000u32 {
        let blksize = (8000 + i).to_string();
        let rrq = tftp::request_bytes(
            tftp::RRQ,
            "big.bin",
            "octet",
            &[("blksize", &blksize), ("windowsize", "64")],
        );
        s.send_to(&rrq, "10.77.0.1:69").unwrap();
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // A node fetching its loader meanwhile gets it whole.
    let got = lab.dir().join("during.kpxe");
    let out = atftp(&lab, &node, "undionly.kpxe", &got, &["blksize 1428"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read(&got).unwrap(),
        std::fs::read(lab.dir().join("image/tftp/undionly.kpxe")).unwrap()
    );
    let during = threads(ombootd.pid());
    let st = status(&lab, &node);
    let n = |k: &str| st["tftp"][k].as_u64().unwrap();
    // The attacker's address holds at most MAX_PER_SOURCE transfers; the rest are counted.
    assert!(
        during <= before + bootserver::tftp::server::MAX_PER_SOURCE + 1,
        "{before} threads before the flood, {during} during it"
    );
    assert!(n("limited") >= 1000, "{st}");
    assert_eq!(
        n("sent"),
        bootserver::tftp::server::MAX_PER_SOURCE as u64 + 1,
        "{st}"
    );
    // Blocks were cut to the bridge's MTU: the first DATA of a transfer is 1468 bytes.
    let mut buf = [0u8; 70000];
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let (len, _) = s.recv_from(&mut buf).unwrap();
    assert!(
        matches!(tftp_parse(&buf[..len]), tftp::Packet::Oack(ref o) if o.contains(&("blksize", "1468"))),
        "{:?}",
        &buf[..len.min(64)]
    );
    lab.teardown().unwrap();
}

/// `path` inside the fake image's root, as a node mounts it (`/<version>/rootfs`).
fn nfs_url(path: &str) -> String {
    format!(
        "nfs://10.77.0.1/{}/rootfs{path}?version=3&nfsport=2049&mountport=2049",
        omlab::fixture::FAKE_VERSION
    )
}

#[test]
fn nfs_serves_files_modes_and_symlinks_and_refuses_writes() {
    let (lab, ombootd) = lab_with_ombootd("nfs");
    let c = client(&lab, "c1", MacAddr::lab(1), true);
    lab.add_client_addr(&c, "10.77.0.11/24").unwrap();

    let mut ls = Command::new("nfs-ls");
    ls.arg(nfs_url("/etc"));
    let out = lab.run(ls, c.netns(), T).unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let line = |name: &str| {
        t.lines()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("{name} not listed: {t}"))
            .to_string()
    };
    assert!(line("shadowish").starts_with("-rw-r-----"), "{t}");
    assert!(line("init-link").starts_with("lrwxrwxrwx"), "{t}");
    assert!(line("deep").starts_with("drwx"), "{t}");

    let mut cat = Command::new("nfs-cat");
    cat.arg(nfs_url("/etc/deep/er/file"));
    let out = lab.run(cat, c.netns(), T).unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        out.stdout,
        std::fs::read(lab.dir().join("image/rootfs/etc/deep/er/file")).unwrap()
    );

    let mut cat = Command::new("nfs-cat");
    cat.arg(nfs_url("/sbin/init"));
    let out = lab.run(cat, c.netns(), T).unwrap();
    assert_eq!(out.stdout, b"#!/bin/sh\n");

    // The host's /etc/passwd must not come through a symlink: the client gets the link, not the file.
    let mut cat = Command::new("nfs-cat");
    cat.arg(nfs_url("/etc/host-passwd"));
    let out = lab.run(cat, c.netns(), T).unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("root:x:0:0"),
        "symlink followed on the server"
    );

    let local = lab.dir().join("upload");
    std::fs::write(&local, b"should not land").unwrap();
    let mut cp = Command::new("nfs-cp");
    cp.arg(&local).arg(nfs_url("/etc/uploaded"));
    let out = lab.run(cp, c.netns(), T).unwrap();
    assert!(!out.status.success(), "write accepted: {}", text(&out));
    assert!(
        !lab.dir().join("image/rootfs/etc/uploaded").exists(),
        "a file appeared in the image"
    );

    // AUTH_SYS is checked against the modes: root's libnfs (a privileged source port) posing as
    // uid 1000 reads the 0644 file, not root's 0600 one nor the 0640 one of root's group.
    let as_uid_1000 = |path: &str| format!("{}&uid=1000&gid=1000", nfs_url(path));
    let mut cat = Command::new("nfs-cat");
    cat.arg(as_uid_1000("/etc/deep/er/file"));
    let out = lab.run(cat, c.netns(), T).unwrap();
    assert!(
        out.status.success(),
        "uid 1000 cannot read a 0644 file: {}",
        text(&out)
    );
    assert_eq!(
        out.stdout,
        std::fs::read(lab.dir().join("image/rootfs/etc/deep/er/file")).unwrap()
    );
    for secret in ["/etc/secret", "/etc/shadowish"] {
        let mut cat = Command::new("nfs-cat");
        cat.arg(as_uid_1000(secret));
        let out = lab.run(cat, c.netns(), T).unwrap();
        assert!(
            !out.status.success() && out.stdout.is_empty(),
            "uid 1000 read {secret}: {}",
            text(&out)
        );
    }
    let mut cat = Command::new("nfs-cat");
    cat.arg(nfs_url("/etc/secret"));
    let out = lab.run(cat, c.netns(), T).unwrap();
    assert_eq!(out.stdout, b"only-root-reads-this\n", "{}", text(&out));

    // An unprivileged user's client (a source port above 1023) is refused before any call, even
    // for a world-readable file.
    let mut cat = Command::new("setpriv");
    cat.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        "nfs-cat",
    ])
    .arg(nfs_url("/etc/deep/er/file"));
    let out = lab.run(cat, c.netns(), T).unwrap();
    assert!(
        !out.status.success() && out.stdout.is_empty(),
        "an unprivileged port was served: {}",
        text(&out)
    );
    let log = std::fs::read_to_string(ombootd.log()).unwrap();
    assert!(
        log.contains("its source port is 1024 or above"),
        "no refusal logged: {log}"
    );
    let s = status(&lab, &c);
    assert!(
        s["nfs_refused"]["unprivileged"].as_u64().unwrap() >= 1,
        "refusal not counted: {s}"
    );
    assert_eq!(s["nfs_refused"]["outside"], 0, "{s}");
    lab.teardown().unwrap();
}

#[test]
fn http_serves_script_and_image_files() {
    let (lab, ombootd) = lab_with_ombootd("http");
    let c = client(&lab, "c1", MacAddr::lab(1), true);
    lab.add_client_addr(&c, "10.77.0.11/24").unwrap();
    let get = |path: &str| {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-s",
            "-w",
            "\n%{http_code}",
            &format!("http://10.77.0.1:8080{path}"),
        ]);
        let out = lab.run(cmd, c.netns(), T).unwrap();
        let mut body = out.stdout;
        let code_at = body.iter().rposition(|b| *b == b'\n').unwrap();
        let code = String::from_utf8_lossy(&body[code_at + 1..]).to_string();
        body.truncate(code_at);
        (code, body)
    };
    let (code, script) = get("/boot/52-54-00-77-00-02.ipxe");
    let script = String::from_utf8(script).unwrap();
    assert_eq!(code, "200");
    assert!(
        script.starts_with("#!ipxe\n")
            && script.contains("omboot.name=node2")
            && script.contains("initrd=initrd.img"),
        "{script}"
    );
    assert_eq!(get("/boot/52-54-00-99-00-01.ipxe").0, "404");
    let (code, kernel) = get(&format!("/image/{}/vmlinuz", omlab::fixture::FAKE_VERSION));
    assert_eq!(code, "200");
    assert_eq!(
        kernel,
        std::fs::read(lab.dir().join("image/vmlinuz")).unwrap()
    );
    // HEAD, a resumed download (Range), a current copy (If-None-Match), a range past the end.
    let path = format!("/image/{}/vmlinuz", omlab::fixture::FAKE_VERSION);
    let (code, head) = curl(&lab, &c, &path, &["-I"]);
    assert_eq!(code, 200, "{head}");
    let head = head.to_lowercase();
    assert!(
        head.contains(&format!("content-length: {}", kernel.len())),
        "{head}"
    );
    assert!(head.contains("accept-ranges: bytes"), "{head}");
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap_or_else(|| panic!("no ETag: {head}"))
        .trim()
        .to_owned();
    let part = lab.dir().join("part.bin");
    let part_arg = part.to_string_lossy().into_owned();
    let (code, _) = curl(&lab, &c, &path, &["-r", "100-1099", "-o", &part_arg]);
    assert_eq!(code, 206);
    assert_eq!(std::fs::read(&part).unwrap(), kernel[100..1100]);
    let (code, _) = curl(
        &lab,
        &c,
        &path,
        &["-H", &format!("If-None-Match: {etag}"), "-o", "/dev/null"],
    );
    assert_eq!(code, 304);
    let (code, _) = curl(
        &lab,
        &c,
        &path,
        &["-r", &format!("{}-", kernel.len()), "-o", "/dev/null"],
    );
    assert_eq!(code, 416);
    assert_eq!(get("/image/..%2f..%2fetc%2fpasswd").0, "404");
    assert_eq!(get("/image/rootfs").0, "404");
    assert_eq!(get("/image/0000000001/rootfs").0, "404");
    assert_eq!(get("/image/..%2f..%2fcluster.key/vmlinuz").0, "404");
    assert_eq!(get("/image/0000000002/vmlinuz").0, "404");

    // The HTTP boot loader: ipxe.efi of the TFTP root, typed for edk2; nothing else of the root.
    let (code, efi) = get("/loader/ipxe.efi");
    assert_eq!(code, "200");
    assert_eq!(
        efi,
        std::fs::read(lab.dir().join("image/tftp/ipxe.efi")).unwrap()
    );
    let (code, head) = curl(&lab, &c, "/loader/ipxe.efi", &["-I"]);
    assert_eq!(code, 200, "{head}");
    assert!(
        head.to_lowercase()
            .contains("content-type: application/efi"),
        "{head}"
    );
    for other in ["undionly.kpxe", "big.bin", "leak", "..%2fcluster.key"] {
        assert_eq!(get(&format!("/loader/{other}")).0, "404", "{other}");
    }

    // The cluster key: c1 is node1 (its MAC, its reserved address). Not before its boot script.
    let key = std::fs::read(lab.dir().join("image/cluster.key")).unwrap();
    let (code, body) = get("/node/key");
    assert_eq!(code, "403", "{}", String::from_utf8_lossy(&body));
    let (_, script) = get("/boot/52-54-00-77-00-01.ipxe");
    let script = String::from_utf8(script).unwrap();
    assert!(
        script.contains(" omboot.key=http://10.77.0.1:8080/node/key ")
            && script.contains(" omboot.boot=1 "),
        "{script}"
    );
    // Once in the boot window, then never again in this boot.
    assert_eq!(get("/node/key"), ("200".to_string(), key.clone()));
    let (code, body) = get("/node/key");
    assert_eq!(code, "403");
    assert!(String::from_utf8_lossy(&body).contains("already taken"));
    // The next boot has the next number.
    let (_, script) = get("/boot/52-54-00-77-00-01.ipxe");
    assert!(
        String::from_utf8(script)
            .unwrap()
            .contains(" omboot.boot=2 ")
    );

    // Another machine posing as node2 by its address, while node2 boots, from its own MAC.
    let thief = client(&lab, "c2", MacAddr::lab(9), true);
    lab.add_client_addr(&thief, "10.77.0.12/24").unwrap();
    let mut curl = Command::new("curl");
    curl.args([
        "-s",
        "-w",
        "\n%{http_code}",
        "http://10.77.0.1:8080/boot/52-54-00-77-00-02.ipxe",
    ]);
    lab.run(curl, thief.netns(), T).unwrap();
    let mut curl = Command::new("curl");
    curl.args([
        "-s",
        "-w",
        "\n%{http_code}",
        "http://10.77.0.1:8080/node/key",
    ]);
    let out = lab.run(curl, thief.netns(), T).unwrap();
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(t.ends_with("403") && t.contains("another MAC"), "{t}");
    let log = std::fs::read_to_string(ombootd.log()).unwrap();
    assert!(
        log.contains("refused the cluster key"),
        "refusal not logged: {log}"
    );
    lab.teardown().unwrap();
}

#[test]
fn startup_errors_are_clear() {
    let lab = Lab::new("errors").unwrap();
    let img = fake_image(&lab);
    let run = |cfg: &Path| {
        let mut cmd = Command::new(ombootd());
        cmd.arg("--config").arg(cfg);
        let out = lab.run(cmd, lab.netns(), T).unwrap();
        assert!(!out.status.success(), "ombootd started: {}", text(&out));
        text(&out)
    };
    let base =
        lab.ombootd_config(&img)
            .node("node1", MacAddr::lab(1), NODE1.parse::<Ipv4Addr>().unwrap());

    let t = run(Path::new("/nonexistent/ombootd.toml"));
    assert!(
        t.contains("Error: cannot read config file /nonexistent/ombootd.toml"),
        "{t}"
    );

    let mut cfg = base.clone();
    cfg.interface = omlab::config::set("nope0".to_owned());
    let t = run(&lab.write_ombootd_config(&cfg).unwrap());
    assert!(t.contains("interface `nope0` does not exist"), "{t}");

    let mut cfg = base.clone();
    cfg.image_dir = lab.dir().join("no-image");
    let t = run(&lab.write_ombootd_config(&cfg).unwrap());
    assert!(
        t.contains("the node image is incomplete") && t.contains("omimage build"),
        "{t}"
    );

    // The first ombootd holds the ports; a second one must say which port is busy.
    let path = lab.write_ombootd_config(&base).unwrap();
    let _first = lab.start_ombootd(&ombootd(), &path).unwrap();
    let t = run(&path);
    assert!(t.contains("already in use"), "{t}");
    lab.teardown().unwrap();
}

/// A BOOTREQUEST from `mac`, as bytes: with the DHCP magic cookie or not, and the options.
fn bootrequest(mac: MacAddr, cookie: bool, options: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 1; // BOOTREQUEST
    b[1] = 1; // Ethernet
    b[2] = 6;
    b[4..8].copy_from_slice(&0x0b00_7001u32.to_be_bytes());
    b[28..34].copy_from_slice(&mac.0);
    if cookie {
        b[236..240].copy_from_slice(&[99, 130, 83, 99]);
    }
    b.extend_from_slice(options);
    b.push(255);
    b
}

#[test]
fn a_dhcp_flood_from_one_mac_leaves_a_node_answered_at_its_first_discover() {
    let (lab, _ombootd) = lab_with_ombootd("flood");
    let flooder = client(&lab, "c9", MacAddr::lab(9), true);
    lab.add_client_addr(&flooder, "10.77.0.99/24").unwrap();
    let node = client(&lab, "c1", MacAddr::lab(1), true);
    // Malformed: the cookie, then a client-identifier option whose length runs past the end.
    let junk = bootrequest(MacAddr::lab(9), true, &[53, 1, 1, 61, 250, 1]);
    let file = lab.dir().join("junk");
    std::fs::write(&file, &junk).unwrap();
    let out = std::thread::scope(|s| {
        let flood = s.spawn(|| {
            let mut cmd = Command::new("bash");
            cmd.arg("-c").arg(format!(
                "exec 3>/dev/udp/10.77.0.1/67; for i in $(seq 1000); do cat {} >&3; done",
                file.display()
            ));
            lab.run(cmd, flooder.netns(), T).unwrap()
        });
        // The node's single DISCOVER goes out while the flood is on.
        std::thread::sleep(Duration::from_millis(300));
        let out = udhcpc(&lab, &node, &["-t", "1", "-T", "5"]);
        assert!(flood.join().unwrap().status.success());
        out
    });
    let t = text(&out);
    assert!(
        t.contains("LEASE ip=10.77.0.11 "),
        "no lease at the first DISCOVER: {t}"
    );
    let t0 = std::time::Instant::now();
    let s = loop {
        let s = status(&lab, &flooder);
        let dropped = ["rate_limited", "malformed", "unknown_client"]
            .iter()
            .map(|k| s["dhcp"][k].as_u64().unwrap_or(0))
            .sum::<u64>();
        if dropped >= 1000 || t0.elapsed() > Duration::from_secs(10) {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Every junk datagram is counted: most undecoded, over the flooder's rate; the rest dropped
    // as malformed or (dhcproto reads leniently) as from a MAC not in the table.
    let count = |k: &str| s["dhcp"][k].as_u64().unwrap();
    let limited = count("rate_limited");
    assert_eq!(
        limited + count("malformed") + count("unknown_client"),
        1000,
        "{s}"
    );
    assert!(limited >= 900, "{s}");
    lab.teardown().unwrap();
}

#[test]
fn ombootd_keeps_only_the_capabilities_it_serves_with() {
    let (lab, ombootd) = lab_with_ombootd("caps");
    // Capabilities are per thread: every thread of ombootd, not only the main one (the
    // runtime's workers start before the drop), and after it has served a little.
    let c = client(&lab, "c1", MacAddr::lab(1), true);
    assert!(udhcpc(&lab, &c, &[]).status.success());
    // A TFTP transfer left waiting for its ACK: its thread, started after the drop, is read too.
    lab.add_client_addr(&c, "10.77.0.11/24").unwrap();
    let s = tftp_socket(&c, 3001);
    let (d1, _) = tftp_ask(
        &s,
        &tftp::request_bytes(tftp::RRQ, "undionly.kpxe", "octet", &[]),
    );
    assert!(matches!(
        tftp_parse(&d1),
        tftp::Packet::Data { block: 1, .. }
    ));
    let mut transfer_threads = 0;
    // NET_ADMIN 12, DAC_READ_SEARCH 2, DAC_OVERRIDE 1, FOWNER 3, CHOWN 0, FSETID 4.
    let kept: u64 = [12, 2, 1, 3, 0, 4].iter().map(|b| 1u64 << b).sum();
    let tasks = format!("/proc/{}/task", ombootd.pid());
    let mut seen = 0;
    for task in std::fs::read_dir(&tasks).unwrap() {
        let task = task.unwrap().path();
        let path = task.join("status");
        let Ok(status) = std::fs::read_to_string(&path) else {
            continue; // the thread ended meanwhile
        };
        if std::fs::read_to_string(task.join("comm")).is_ok_and(|c| c.trim() == "tftp-send") {
            transfer_threads += 1;
        }
        let caps = bootserver::privileges::all_threads::ThreadCaps::parse(&status)
            .unwrap_or_else(|| panic!("no capability lines: {status}"));
        assert_eq!(
            caps,
            bootserver::privileges::all_threads::ThreadCaps {
                effective: kept,
                permitted: kept,
                bounding: kept,
                no_new_privs: true
            },
            "{}: {status}",
            path.display()
        );
        seen += 1;
    }
    assert!(seen > 2, "only {seen} threads in {tasks}");
    assert_eq!(transfer_threads, 1, "the waiting TFTP transfer's thread");
    lab.teardown().unwrap();
}

#[test]
fn dhcp_drops_and_counts_plain_bootp() {
    let (lab, _ombootd) = lab_with_ombootd("bootp");
    let c = client(&lab, "c1", MacAddr::lab(1), true);
    lab.add_client_addr(&c, "10.77.0.11/24").unwrap();
    let discover = [53, 1, 1];
    let packets = [
        (
            "no magic cookie",
            bootrequest(MacAddr::lab(1), false, &discover),
        ),
        ("no option 53", bootrequest(MacAddr::lab(1), true, &[])),
        (
            "a DHCPDISCOVER",
            bootrequest(MacAddr::lab(1), true, &discover),
        ),
    ];
    for (what, bytes) in &packets {
        let file = lab.dir().join("datagram");
        std::fs::write(&file, bytes).unwrap();
        // bash's /dev/udp: one datagram of the file's bytes.
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(format!("cat {} > /dev/udp/10.77.0.1/67", file.display()));
        let out = lab.run(cmd, c.netns(), T).unwrap();
        assert!(out.status.success(), "sending {what}: {}", text(&out));
    }
    // The datagrams are handled as they come: wait until all three are counted.
    let t = std::time::Instant::now();
    let s = loop {
        let s = status(&lab, &c);
        if s["dhcp"]["received"] == 3 || t.elapsed() > Duration::from_secs(10) {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(s["dhcp"]["not_dhcp"], 2, "{s}");
    assert_eq!(
        s["dhcp"]["replied"], 1,
        "only the DISCOVER is answered: {s}"
    );
    lab.teardown().unwrap();
}

/// `curl` from `c`: (HTTP status, body), with extra arguments.
fn curl(lab: &Lab, c: &ClientNs, path: &str, args: &[&str]) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .arg(format!("http://10.77.0.1:8080{path}"));
    let out = lab.run(cmd, c.netns(), T).unwrap();
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = body.rsplit_once('\n').unwrap_or(("", &body));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn dashboard_shows_boot_stages_is_read_only_and_bounds_its_viewers() {
    let (lab, _ombootd) = lab_with_ombootd("dashboard");
    let c = client(&lab, "c1", MacAddr::lab(1), true);
    // node1 boots as far as its kernel: DHCP, the script, the kernel.
    assert!(text(&udhcpc(&lab, &c, &[])).contains("LEASE ip=10.77.0.11"));
    lab.add_client_addr(&c, "10.77.0.11/24").unwrap();
    assert_eq!(
        curl(
            &lab,
            &c,
            "/boot/52-54-00-77-00-01.ipxe",
            &["-o", "/dev/null"]
        )
        .0,
        200
    );
    let kernel = format!("/image/{}/vmlinuz", omlab::fixture::FAKE_VERSION);
    assert_eq!(curl(&lab, &c, &kernel, &["-o", "/dev/null"]).0, 200);
    let mut snap = serde_json::Value::Null;
    for _ in 0..30 {
        let (code, body) = curl(&lab, &c, "/api/dashboard", &[]);
        assert_eq!(code, 200);
        snap = serde_json::from_str(&body).unwrap();
        if snap["nodes"][0]["stage"]["label"] == "kernel" {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(snap["nodes"][0]["name"], "node1");
    assert_eq!(snap["nodes"][0]["state"], "booting", "{snap}");
    assert_eq!(snap["nodes"][0]["stage"]["label"], "kernel", "{snap}");
    assert_eq!(snap["nodes"][1]["state"], "off", "{snap}");
    assert_eq!(snap["boot"][0]["mac"], "52:54:00:77:00:01", "{snap}");

    // The same for scripts: Prometheus text, and `ombootd status` as an operator runs it.
    let (code, metrics) = curl(&lab, &c, "/metrics", &[]);
    assert_eq!(code, 200);
    assert!(
        metrics.contains(
            "ombootd_node_boot_stage{node=\"node1\",mac=\"52:54:00:77:00:01\",stage=\"kernel\"} 1\n"
        ) && metrics.contains("ombootd_leases 1\n"),
        "{metrics}"
    );
    let mut status = Command::new(ombootd());
    status
        .arg("--config")
        .arg(lab.dir().join("ombootd.toml"))
        .arg("status");
    let out = lab.run(status, lab.netns(), T).unwrap();
    let table = text(&out);
    println!("ombootd status:\n{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("node1"))
        .unwrap_or_default();
    assert!(
        out.status.success()
            && row.contains("booting")
            && row.contains("kernel")
            && row.contains("min left"),
        "{table}"
    );

    // The page and its assets, served with a policy that runs no inline or foreign script.
    let (code, headers) = curl(&lab, &c, "/", &["-D", "-", "-o", "/dev/null"]);
    assert_eq!(code, 200);
    assert!(
        headers
            .to_lowercase()
            .contains("content-security-policy: default-src 'self'; script-src 'self'"),
        "{headers}"
    );
    for asset in ["/dashboard/app.js", "/dashboard/style.css"] {
        assert_eq!(
            curl(&lab, &c, asset, &["-o", "/dev/null"]).0,
            200,
            "{asset}"
        );
    }

    // Controls: refused without the token or with a wrong one; the token is root's alone.
    let token_file = lab.dir().join("state/dashboard.token");
    let token = std::fs::read_to_string(&token_file).unwrap();
    let mut as_nobody = Command::new("runuser");
    as_nobody
        .args(["-u", "nobody", "--", "cat"])
        .arg(&token_file);
    assert!(
        !as_nobody.output().unwrap().status.success(),
        "nobody read the token"
    );
    let block = ["-X", "POST", "-d", r#"{"action":"block"}"#];
    let (code, body) = curl(&lab, &c, "/api/nodes/node1/control", &block);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("needs the dashboard token"), "{body}");
    let wrong = format!("Authorization: Bearer {}", "f".repeat(64));
    let good = format!("Authorization: Bearer {}", token.trim());
    assert_eq!(curl(&lab, &c, "/api/control", &["-H", &wrong]).0, 401);
    assert_eq!(curl(&lab, &c, "/api/control", &[]).0, 401);
    assert_eq!(curl(&lab, &c, "/api/control", &["-H", &good]).0, 200);
    // With it, a control for a node that is not in the cluster is a sentence, not a crash.
    let (code, body) = curl(
        &lab,
        &c,
        "/api/nodes/node1/control",
        &[&block[..], &["-H", &good]].concat(),
    );
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("node1"), "{body}");
    let (code, body) = curl(
        &lab,
        &c,
        "/api/nodes/node1/control",
        &["-X", "POST", "-H", &good, "-d", r#"{"action":"reboot"}"#],
    );
    assert_eq!(code, 400, "{body}");

    // A flood of viewers: 32 live streams, the 33rd refused, a slot free again once one closes.
    let mut viewers = Vec::new();
    for i in 0..32 {
        let out = lab.dir().join(format!("viewer-{i}.sse"));
        let mut cmd = Command::new("curl");
        cmd.args(["-sN", "-o"])
            .arg(&out)
            .arg("http://10.77.0.1:8080/api/events");
        viewers.push((
            lab.spawn(&format!("viewer-{i}"), cmd, c.netns()).unwrap(),
            out,
        ));
    }
    std::thread::sleep(Duration::from_secs(3));
    for (_, out) in &viewers {
        let got = std::fs::read_to_string(out).unwrap_or_default();
        assert!(
            got.contains("event: snapshot\ndata: {"),
            "{}: {got:.200}",
            out.display()
        );
    }
    let (code, body) = curl(&lab, &c, "/api/events", &["-m", "5"]);
    assert_eq!(code, 503, "{body}");
    // The boot files are still served to nodes meanwhile.
    assert_eq!(curl(&lab, &c, &kernel, &["-o", "/dev/null"]).0, 200);
    lab.stop(&viewers.pop().unwrap().0).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let (code, body) = curl(&lab, &c, "/api/events", &["-m", "3", "-o", "/dev/null"]);
    // curl ends the open stream at its time limit: the status is still the stream's 200.
    assert_eq!(code, 200, "{body}");
    for (p, _) in &viewers {
        lab.stop(p).unwrap();
    }
    lab.teardown().unwrap();
}

/// `ombootd ARGS` with the lab's config, run in the lab's namespace: (success, output).
fn ombootd_cli(lab: &Lab, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(ombootd());
    cmd.arg("--config")
        .arg(lab.dir().join("ombootd.toml"))
        .args(args);
    let out = lab.run(cmd, lab.netns(), T).unwrap();
    (out.status.success(), text(&out))
}

/// udhcpc in `c` until it gets a lease, up to `tries` times a second apart.
fn lease_within(lab: &Lab, c: &ClientNs, tries: usize) -> Option<String> {
    for _ in 0..tries {
        let t = text(&udhcpc(lab, c, &[]));
        if let Some(l) = t.lines().find(|l| l.starts_with("LEASE")) {
            return Some(l.to_owned());
        }
    }
    None
}

#[test]
fn nodes_are_added_approved_and_removed_while_serving() {
    let lab = Lab::new("nodes").unwrap();
    let img = fake_image(&lab);
    let mut cfg = lab
        .ombootd_config(&img)
        .node("node1", MacAddr::lab(1), NODE1.parse().unwrap());
    cfg.unknown_macs = bootserver::config::wire::UnknownMacs::Register;
    let path = lab.write_ombootd_config(&cfg).unwrap();
    // Comments in the operator's file survive every edit.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.insert_str(0, "# our cluster: keep this comment\n");
    std::fs::write(&path, text).unwrap();
    let _ombootd = lab.start_ombootd(&ombootd(), &path).unwrap();

    // An unknown MAC asks: no answer, but it waits in the pending list.
    let c7 = client(&lab, "c7", MacAddr::lab(7), true);
    assert!(
        lease_within(&lab, &c7, 1).is_none(),
        "an unknown MAC got a lease"
    );
    let (ok, list) = ombootd_cli(&lab, &["node", "list", "--json"]);
    let list: serde_json::Value =
        serde_json::from_str(list.trim()).unwrap_or_else(|_| panic!("{ok} {list}"));
    assert_eq!(list["pending"][0]["mac"], "52:54:00:77:00:07", "{list}");
    assert_eq!(list["nodes"].as_array().map(Vec::len), Some(1), "{list}");

    // Approved on the command line: it boots at its next request, no restart.
    let (ok, out) = ombootd_cli(
        &lab,
        &[
            "node",
            "approve",
            "52:54:00:77:00:07",
            "--name",
            "node7",
            "--ip",
            "10.77.0.17",
        ],
    );
    assert!(ok, "{out}");
    let lease = lease_within(&lab, &c7, 10).expect("the approved node got no lease");
    assert!(
        lease.contains("ip=10.77.0.17") && lease.contains("hostname=node7"),
        "{lease}"
    );

    // Added while serving, with the first free address; a duplicate name is refused naming both.
    let (ok, out) = ombootd_cli(
        &lab,
        &["node", "add", "52:54:00:77:00:08", "--name", "node8"],
    );
    assert!(ok && out.contains("10.77.0.2"), "{out}");
    let c8 = client(&lab, "c8", MacAddr::lab(8), true);
    let lease = lease_within(&lab, &c8, 10).expect("the added node got no lease");
    assert!(
        lease.contains("ip=10.77.0.2 ") && lease.contains("hostname=node8"),
        "{lease}"
    );
    let (ok, out) = ombootd_cli(
        &lab,
        &["node", "add", "52:54:00:77:00:09", "--name", "node8"],
    );
    assert!(
        !ok && out.contains("`node8` is listed twice") && out.contains("52:54:00:77:00:08"),
        "{out}"
    );
    let (ok, out) = ombootd_cli(
        &lab,
        &["node", "approve", "52:54:00:77:00:09", "--name", "node9"],
    );
    assert!(!ok && out.contains("not waiting for approval"), "{out}");

    // A hand edit that breaks the file: refused with its line, the last good table kept.
    let good = std::fs::read_to_string(&path).unwrap();
    assert!(
        good.starts_with("# our cluster: keep this comment\n"),
        "{good}"
    );
    std::fs::write(
        &path,
        format!(
            "{good}\n[[node]]\nmac = \"52:54:00:77:00:0a\"\nname = \"node1\"\nip = \"10.77.0.30\"\n"
        ),
    )
    .unwrap();
    let c1 = client(&lab, "c1", MacAddr::lab(1), true);
    let log = lab.dir().join("ombootd.log");
    let mut refused = String::new();
    for _ in 0..50 {
        refused = std::fs::read_to_string(&log).unwrap_or_default();
        if refused.contains("keeping the node table as it was") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        refused.contains("ombootd.toml:")
            && refused.contains("`node1` is listed twice")
            && refused.contains("keeping the node table as it was"),
        "{refused}"
    );
    assert!(lease_within(&lab, &c1, 3).is_some_and(|l| l.contains("ip=10.77.0.11")));
    assert!(lease_within(&lab, &c8, 3).is_some(), "the table was lost");
    std::fs::write(&path, &good).unwrap();

    // Removed: no more answers for it (after the reload).
    let (ok, out) = ombootd_cli(&lab, &["node", "remove", "node8"]);
    assert!(ok, "{out}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        lease_within(&lab, &c8, 1).is_none(),
        "a removed node still got a lease"
    );
    let kept = std::fs::read_to_string(&path).unwrap();
    assert!(
        kept.starts_with("# our cluster: keep this comment\n") && kept.contains("node7"),
        "{kept}"
    );

    // The dashboard's approve: refused without the token, the same edit with it.
    let c9 = client(&lab, "c9", MacAddr::lab(9), true);
    assert!(lease_within(&lab, &c9, 1).is_none());
    lab.add_client_addr(&c9, "10.77.0.50/24").unwrap();
    let approve = "/api/pending/52:54:00:77:00:09/approve";
    let body = r#"{"name":"node9"}"#;
    let (code, _) = curl(&lab, &c9, approve, &["-X", "POST", "-d", body]);
    assert_eq!(code, 401);
    let token = std::fs::read_to_string(lab.dir().join("state/dashboard.token")).unwrap();
    let auth = format!("Authorization: Bearer {}", token.trim());
    let (code, out) = curl(&lab, &c9, approve, &["-X", "POST", "-H", &auth, "-d", body]);
    assert_eq!(code, 200, "{out}");
    let lease =
        lease_within(&lab, &c9, 10).expect("the node approved on the dashboard got no lease");
    assert!(lease.contains("hostname=node9"), "{lease}");
    let (code, out) = curl(&lab, &c9, approve, &["-X", "POST", "-H", &auth, "-d", body]);
    assert_eq!(code, 409, "{out}");
    lab.teardown().unwrap();
}

/// Solicits a router advertisement from `c`'s eth0 (a raw ICMPv6 socket in Python) and returns
/// the first one received, in hex.
fn router_advertisement(lab: &Lab, c: &ClientNs) -> String {
    let solicit = "import socket, time\ns = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)\ns.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'eth0')\ns.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)\nidx = socket.if_nametoindex('eth0')\ns.settimeout(1)\nend = time.time() + 10\nwhile time.time() < end:\n    try:\n        s.sendto(bytes([133, 0, 0, 0, 0, 0, 0, 0]), ('ff02::2', 0, 0, idx))\n    except OSError as e:\n        time.sleep(0.5)\n        continue\n    try:\n        while True:\n            d, a = s.recvfrom(1500)\n            if d[0] == 134:\n                print('RA', d.hex())\n                raise SystemExit(0)\n    except socket.timeout:\n        pass\nraise SystemExit(1)\n";
    let mut py = Command::new("python3");
    py.args(["-c", solicit]);
    let out = lab.run(py, c.netns(), T).unwrap();
    let t = text(&out);
    t.lines()
        .find_map(|l| l.strip_prefix("RA "))
        .unwrap_or_else(|| panic!("no advertisement: {t}"))
        .to_owned()
}

#[test]
fn a_router_solicitation_gets_an_advertisement_that_configures_nothing() {
    let (lab, ombootd) = lab_with_ombootd("ra");
    let line = lab
        .wait_for_output(&ombootd, "advertising on", Duration::from_secs(1))
        .unwrap();
    assert!(line.contains("nothing to configure"), "{line}");
    let c = client(&lab, "c1", MacAddr::lab(1), true);
    let ra = router_advertisement(&lab, &c);
    // Type 134, code 0; M = O = 0; router lifetime 0; the master's link-layer address.
    assert!(ra.starts_with("8600"), "{ra}");
    assert_eq!(&ra[10..16], "000000", "flags and lifetime: {ra}");
    assert!(ra.contains("0101"), "no source link-layer option: {ra}");
    lab.teardown().unwrap();
}

/// The bound leases on disk (snapshot and journal, read as ombootd reads them), MAC → address.
fn leases_on_disk(lab: &Lab) -> std::collections::BTreeMap<String, String> {
    use bootserver::leases::{FileLeases, LeaseState, LeaseStore};
    FileLeases::open(&lab.dir().join("state"))
        .unwrap()
        .all()
        .into_iter()
        .filter(|l| l.state == LeaseState::Bound)
        .map(|l| (l.mac, l.ip.to_string()))
        .collect()
}

#[test]
fn no_acked_lease_is_lost_when_ombootd_is_killed() {
    use omlab::dhcp_client::{DhcpClient, Dora};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    const NODES: usize = 1000;
    const CLIENTS: u32 = 4;
    let lab = Lab::with_master("durable", "10.77.0.1".parse().unwrap(), 21).unwrap();
    let img = fake_image(&lab);
    let mut cfg = lab.ombootd_config(&img);
    let mac = |i: usize| MacAddr([0x52, 0x54, 0x00, 0xd0, (i >> 8) as u8, i as u8]);
    for i in 0..NODES {
        let ip = Ipv4Addr::new(10, 77, 1 + (i / 200) as u8, 1 + (i % 200) as u8);
        cfg = cfg.node(&format!("n{i}"), mac(i), ip);
    }
    let path = lab.write_ombootd_config(&cfg).unwrap();
    let binary = ombootd();
    let c = lab.add_client_ns("cd", true).unwrap();

    // Leases taken by CLIENTS threads, each over its share of `todo`, until `stop`.
    let run = |todo: &[usize], stop: &AtomicBool, acked: &Mutex<Vec<(String, String)>>| {
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for k in 0..CLIENTS {
                let (next, lab_ns) = (&next, c.netns());
                s.spawn(move || {
                    let mut client = DhcpClient::open(lab_ns, "eth0", k + 1).unwrap();
                    client.wait = Duration::from_millis(1500);
                    while !stop.load(Ordering::SeqCst) {
                        let Some(&i) = todo.get(next.fetch_add(1, Ordering::SeqCst)) else {
                            break;
                        };
                        if let Dora::Bound(ip) = client.dora(mac(i)).unwrap() {
                            acked
                                .lock()
                                .unwrap()
                                .push((mac(i).to_string(), ip.to_string()));
                        }
                    }
                });
            }
        });
    };

    // Round 1: killed with SIGKILL at some moment while the ACKs stream in.
    let kill_after = 300 + (std::process::id() as usize % 400);
    let server = lab.start_ombootd(&binary, &path).unwrap();
    let all: Vec<usize> = (0..NODES).collect();
    let stop = AtomicBool::new(false);
    let acked = Mutex::new(Vec::new());
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| run(&all, &stop, &acked));
        while acked.lock().unwrap().len() < kill_after && started.elapsed() < T {
            std::thread::sleep(Duration::from_millis(1));
        }
        lab.crash(&server).unwrap();
        stop.store(true, Ordering::SeqCst);
    });
    let first = acked.into_inner().unwrap();
    assert!(
        first.len() >= kill_after,
        "only {} ACKs in {T:?}",
        first.len()
    );
    let disk = leases_on_disk(&lab);
    let lost: Vec<_> = first
        .iter()
        .filter(|(m, ip)| disk.get(m) != Some(ip))
        .collect();
    println!(
        "killed after {} ACKs ({:.0} ACKs/s): {} bound leases on disk, {} ACKed ones missing",
        first.len(),
        first.len() as f64 / started.elapsed().as_secs_f64(),
        disk.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "ACKed but lost by the crash: {lost:?}");

    // Round 2: a new ombootd on the same state gives the rest; killed right after the last ACK.
    let server = lab.start_ombootd(&binary, &path).unwrap();
    let done: std::collections::BTreeSet<&str> = first.iter().map(|(m, _)| m.as_str()).collect();
    let rest: Vec<usize> = (0..NODES)
        .filter(|&i| !done.contains(mac(i).to_string().as_str()))
        .collect();
    let stop = AtomicBool::new(false);
    let acked = Mutex::new(Vec::new());
    run(&rest, &stop, &acked);
    lab.crash(&server).unwrap();
    let second = acked.into_inner().unwrap();
    let disk = leases_on_disk(&lab);
    let every: Vec<_> = first.iter().chain(&second).collect();
    assert_eq!(every.len(), NODES, "every node got its lease in the end");
    let lost: Vec<_> = every
        .iter()
        .filter(|(m, ip)| disk.get(m) != Some(ip))
        .collect();
    assert!(
        lost.is_empty(),
        "ACKed but lost by the second crash: {lost:?}"
    );
    assert_eq!(disk.len(), NODES, "{NODES} bound leases on disk");
    lab.teardown().unwrap();
}

#[test]
fn unknown_macs_boot_from_the_pool_without_the_cluster_key() {
    let lab = Lab::new("pool").unwrap();
    let img = fake_image(&lab);
    let mut cfg = lab
        .ombootd_config(&img)
        .node("node1", MacAddr::lab(1), NODE1.parse().unwrap());
    cfg.unknown_macs = bootserver::config::wire::UnknownMacs::Boot;
    cfg.pool = Some(omlab::config::set("10.77.0.200-10.77.0.202".to_owned()));
    let path = lab.write_ombootd_config(&cfg).unwrap();
    let _ombootd = lab.start_ombootd(&ombootd(), &path).unwrap();

    // Two machines nobody registered get pool addresses and names from their MACs.
    let c7 = client(&lab, "c7", MacAddr::lab(7), true);
    let c8 = client(&lab, "c8", MacAddr::lab(8), true);
    let pool = ["10.77.0.200", "10.77.0.201", "10.77.0.202"];
    let ip_of = |l: &str| {
        l.split_whitespace()
            .find_map(|w| w.strip_prefix("ip="))
            .unwrap_or("")
            .to_owned()
    };
    let l7 = lease_within(&lab, &c7, 3).expect("no pool lease");
    let ip7 = ip_of(&l7);
    assert!(
        pool.contains(&ip7.as_str()) && l7.contains("hostname=node-525400770007 "),
        "{l7}"
    );
    let ip8 = ip_of(&lease_within(&lab, &c8, 3).expect("no pool lease"));
    assert!(
        pool.contains(&ip8.as_str()) && ip8 != ip7,
        "{ip8} after {ip7}"
    );
    // Asked again, a client keeps its address; the table node keeps its reservation.
    assert_eq!(ip_of(&lease_within(&lab, &c7, 3).unwrap()), ip7);
    let c1 = client(&lab, "c1", MacAddr::lab(1), true);
    assert!(
        lease_within(&lab, &c1, 3)
            .unwrap()
            .contains("ip=10.77.0.11 ")
    );

    // A pool machine boots the image, but is no cluster member: no key in its kernel line, and
    // the key refused at its address.
    lab.add_client_addr(&c7, &format!("{ip7}/24")).unwrap();
    let (code, script) = curl(&lab, &c7, "/boot/52-54-00-77-00-07.ipxe", &[]);
    assert_eq!(code, 200, "{script}");
    assert!(
        script.contains("omboot.name=node-525400770007 ") && !script.contains("omboot.key"),
        "{script}"
    );
    let (code, body) = curl(&lab, &c7, "/node/key", &[]);
    assert_eq!(code, 403, "a pool machine got the cluster key: {body}");

    // A squatter answers for the last pool address: the client checking it by ARP declines it,
    // ombootd keeps it out of use, and with nothing left the next DISCOVERs go unanswered,
    // counted.
    let last = pool.iter().find(|ip| **ip != ip7 && **ip != ip8).unwrap();
    let squatter = client(&lab, "sq", MacAddr::lab(6), true);
    lab.add_client_addr(&squatter, &format!("{last}/24"))
        .unwrap();
    let c9 = client(&lab, "c9", MacAddr::lab(9), true);
    let out = text(&udhcpc(&lab, &c9, &["-a"]));
    assert!(
        !out.contains(&format!("LEASE ip={last} ")),
        "took an address another host uses: {out}"
    );
    let s = status(&lab, &c7);
    assert_eq!(s["dhcp"]["declined"], 1, "{}", s["dhcp"]);
    assert!(
        s["dhcp"]["pool_exhausted"].as_u64().unwrap_or(0) >= 1,
        "{}",
        s["dhcp"]
    );
    let log = std::fs::read_to_string(lab.dir().join("ombootd.log")).unwrap();
    assert!(
        log.contains("declined its address") && log.contains("no address left in the pool"),
        "{log}"
    );
    lab.teardown().unwrap();
}

/// Runs `args` (an `ip`, `sysctl`… command line) in namespace `ns` and asserts it worked.
fn sh(lab: &Lab, ns: &str, args: &[&str]) {
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..]);
    let out = lab.run(cmd, ns, T).unwrap();
    assert!(out.status.success(), "{args:?}: {}", text(&out));
}

#[test]
fn nodes_behind_a_dhcp_relay_get_their_subnet_and_their_key() {
    // The lab network 10.77.0.0/24 and, behind a router at 10.77.0.254, the subnet
    // 10.78.0.0/24, whose router forwards DHCP to ombootd (dnsmasq as the relay agent).
    let lab = Lab::new("relay").unwrap();
    let img = fake_image(&lab);
    let mut cfg = lab
        .ombootd_config(&img)
        .node("node1", MacAddr::lab(1), NODE1.parse().unwrap())
        .node("node5", MacAddr::lab(5), "10.78.0.15".parse().unwrap());
    cfg.relayed_subnets
        .push(bootserver::config::wire::WireRelayedSubnet {
            subnet: omlab::config::set("10.78.0.0/24".to_owned()),
            router: omlab::config::set(Ipv4Addr::new(10, 78, 0, 1)),
        });
    let path = lab.write_ombootd_config(&cfg).unwrap();
    let ombootd = lab.start_ombootd(&ombootd(), &path).unwrap();

    let router = lab.add_client_ns("router", true).unwrap();
    lab.add_client_addr(&router, "10.77.0.254/24").unwrap();
    // The far segment: a client namespace whose other end moves into the router.
    let far = client(&lab, "far", MacAddr::lab(5), false);
    sh(
        &lab,
        lab.netns(),
        &["ip", "link", "set", "far", "netns", router.netns()],
    );
    for args in [
        &["ip", "addr", "add", "10.78.0.1/24", "dev", "far"][..],
        &["ip", "link", "set", "far", "up"],
        &["sysctl", "-qw", "net.ipv4.ip_forward=1"],
    ] {
        sh(&lab, router.netns(), args);
    }
    sh(
        &lab,
        lab.netns(),
        &["ip", "route", "add", "10.78.0.0/24", "via", "10.77.0.254"],
    );
    let dnsmasq =
        omlab::anchors::dnsmasq(&omlab::cluster::workspace_root().join("build/anchors")).unwrap();
    let mut relay = dnsmasq.command(lab.dir(), "relay");
    relay.args([
        "--log-dhcp",
        "--log-facility=-",
        "--dhcp-relay=10.78.0.1,10.77.0.1",
    ]);
    let relay = lab.spawn("relay", relay, router.netns()).unwrap();
    lab.wait_for_output(&relay, "DHCP relay", T).unwrap();

    // node5, on the far segment: its address, the far subnet's mask and the relay as router.
    let out = udhcpc(&lab, &far, &[]);
    let t = text(&out);
    assert!(
        out.status.success()
            && t.contains("LEASE ip=10.78.0.15 mask=255.255.255.0 hostname=node5 ")
            && t.contains(" router=10.78.0.1"),
        "{t}"
    );
    // node1 moved to the far segment: no address there, and the log says why.
    sh(
        &lab,
        far.netns(),
        &[
            "ip",
            "link",
            "set",
            "eth0",
            "address",
            &MacAddr::lab(1).to_string(),
        ],
    );
    let out = udhcpc(&lab, &far, &[]);
    assert!(
        !out.status.success(),
        "node1 got an address behind the relay: {}",
        text(&out)
    );
    let log = std::fs::read_to_string(ombootd.log()).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("another network than its address's")
                && l.contains("node=node1")
                && l.contains("network=10.78.0.0/24")),
        "{log}"
    );

    // Routed, node5 boots as any node: its script opens its window, and the key goes to its
    // address once, though the master cannot see its MAC behind the router.
    sh(
        &lab,
        far.netns(),
        &[
            "ip",
            "link",
            "set",
            "eth0",
            "address",
            &MacAddr::lab(5).to_string(),
        ],
    );
    lab.add_client_addr(&far, "10.78.0.15/24").unwrap();
    sh(
        &lab,
        far.netns(),
        &["ip", "route", "add", "default", "via", "10.78.0.1"],
    );
    let script = format!("/boot/{}.ipxe", MacAddr::lab(5).hyphenated());
    assert_eq!(curl(&lab, &far, &script, &["-o", "/dev/null"]).0, 200);
    let key = std::fs::read(lab.dir().join("image/cluster.key")).unwrap();
    let got = lab.dir().join("far.key");
    let got_arg = got.to_string_lossy().into_owned();
    assert_eq!(curl(&lab, &far, "/node/key", &["-o", &got_arg]).0, 200);
    assert_eq!(std::fs::read(&got).unwrap(), key);
    assert_eq!(curl(&lab, &far, "/node/key", &["-o", "/dev/null"]).0, 403);
    // From an address of the far subnet that is no node's, the routed check still refuses.
    lab.add_client_addr(&far, "10.78.0.99/24").unwrap();
    let (code, body) = curl(&lab, &far, "/node/key", &["--interface", "10.78.0.99"]);
    assert_eq!(code, 403, "{body}");
    let relayed = std::fs::read_to_string(lab.dir().join("relay.log")).unwrap();
    // It went through the relay agent, not around it.
    assert!(
        relayed.contains("DHCP relay at 10.78.0.1 -> 10.77.0.1"),
        "{relayed}"
    );
    lab.teardown().unwrap();
}

#[test]
fn ipv6_netboot_gives_a_node_its_address_and_the_loader_url() {
    let lab = Lab::new("dhcp6").unwrap();
    sh(
        &lab,
        lab.netns(),
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "fd77::1/64",
            "dev",
            lab.bridge(),
            "nodad",
        ],
    );
    let img = fake_image(&lab);
    let mut cfg = lab
        .ombootd_config(&img)
        .node("node1", MacAddr::lab(1), NODE1.parse().unwrap());
    cfg.ipv6_boot = Some(omlab::config::set("fd77::1/64".to_owned()));
    let path = lab.write_ombootd_config(&cfg).unwrap();
    let ombootd = lab.start_ombootd(&ombootd(), &path).unwrap();
    let line = lab
        .wait_for_output(&ombootd, "listening for DHCPv6", Duration::from_secs(1))
        .unwrap();
    assert!(line.contains("[::]:547"), "{line}");

    let (dhclient, _) = {
        let root = omlab::anchors::unpack(
            "isc-dhcp-client",
            &omlab::cluster::workspace_root().join("build/anchors"),
        )
        .unwrap();
        (root.join("sbin/dhclient"), root)
    };
    let conf = lab.dir().join("dhclient6.conf");
    // edk2's HTTP boot client says architecture 16 and asks for the boot file URL.
    std::fs::write(
        &conf,
        "send dhcp6.client-arch-type 16;\nalso request dhcp6.bootfile-url;\n",
    )
    .unwrap();
    let script = lab.dir().join("dhclient6.sh");
    let out = lab.dir().join("dhclient6.out");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$reason\" = BOUND6 ] && echo \"V6LEASE addr=$new_ip6_address url=$new_dhcp6_bootfile_url\" >> {}\nexit 0\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run_dhclient = |c: &ClientNs, name: &str| {
        // The link-local address must have finished duplicate detection before dhclient binds.
        for _ in 0..50 {
            let mut ip = Command::new("ip");
            ip.args(["-6", "addr", "show", "dev", "eth0", "scope", "link"]);
            let o = text(&lab.run(ip, c.netns(), T).unwrap());
            if o.contains("inet6") && !o.contains("tentative") {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut cmd = Command::new(&dhclient);
        cmd.args(["-6", "-d", "-cf"])
            .arg(&conf)
            .arg("-sf")
            .arg(&script)
            .arg("-lf")
            .arg(lab.dir().join(format!("{name}.leases")))
            .arg("-pf")
            .arg(lab.dir().join(format!("{name}.pid")))
            .arg("eth0");
        lab.spawn(name, cmd, c.netns()).unwrap()
    };
    let lease = || std::fs::read_to_string(&out).unwrap_or_default();

    // node1: its IPv4 address inside the prefix, and the loader's URL.
    let c = client(&lab, "c1", MacAddr::lab(1), true);
    let ra = router_advertisement(&lab, &c);
    assert_eq!(
        &ra[10..16],
        "c00000",
        "M and O set, no default router: {ra}"
    );
    let p = run_dhclient(&c, "dhclient1");
    let t = std::time::Instant::now();
    while !lease().contains("V6LEASE") && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    lab.stop(&p).unwrap();
    assert!(
        lease().contains("V6LEASE addr=fd77::a4d:b url=http://[fd77::1]:8080/loader/ipxe.efi"),
        "{}\n{}",
        lease(),
        std::fs::read_to_string(lab.dir().join("dhclient1.log")).unwrap_or_default()
    );
    // At that address the node fetches the loader over IPv6.
    lab.add_client_addr(&c, "fd77::a4d:b/64").unwrap();
    let efi = lab.dir().join("efi6.bin");
    let mut curl = Command::new("curl");
    curl.args(["-sf", "-g", "-o"])
        .arg(&efi)
        .arg("http://[fd77::1]:8080/loader/ipxe.efi");
    let o = lab.run(curl, c.netns(), T).unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(&efi).unwrap(),
        std::fs::read(lab.dir().join("image/tftp/ipxe.efi")).unwrap()
    );

    // A MAC outside the table gets no answer.
    std::fs::remove_file(&out).ok();
    let stranger = client(&lab, "c2", MacAddr::lab(9), true);
    let p = run_dhclient(&stranger, "dhclient2");
    std::thread::sleep(Duration::from_secs(5));
    lab.stop(&p).unwrap();
    assert_eq!(lease(), "", "a stranger got an IPv6 lease");
    lab.teardown().unwrap();
}
