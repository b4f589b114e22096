//! Runs the real `omctl` binary against a fake omd: a unix socket in a temp dir, served by a test
//! thread with canned [`Reply`]s for a three-node cluster (this node, a dead node, an observer)
//! and its three latest moves. One test also drives `omctl mon` in a real terminal (tmux), when
//! tmux is installed; `omctl stress` runs real omwork jobs through a fake omrun.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use migrator::api::{Control, Flags, Load, MemberState, NodeInfo, Reply, Request};
use migrator::job::record::JobId;
use migrator::migration::history::{MoveEvent, Why, now_ms};

const GIB: u64 = 1024 * 1024 * 1024;

/// The canned cluster, deliberately not in display order.
fn cluster() -> Vec<NodeInfo> {
    let load = |load: f64| Load {
        cpus: 2,
        speed: 1000,
        load,
        loadavg1: load * 2.0,
        mem_total: 4 * GIB,
        mem_free: GIB,
        guests: 0,
        migration: true,
    };
    let node = |id: &str, name: &str, ip: &str, state, is_self, observer, l| NodeInfo {
        id: id.into(),
        name: name.into(),
        addr: format!("{ip}:7946"),
        state,
        is_self,
        observer,
        load: l,
        load_age_ms: l.map(|_| 400),
        flags: Flags::default(),
    };
    vec![
        node(
            "00000000000000b2",
            "node2",
            "10.77.0.12",
            MemberState::Dead,
            false,
            false,
            Some(load(2.0)),
        ),
        node(
            "00000000000000a0",
            "master",
            "10.77.0.1",
            MemberState::Alive,
            false,
            true,
            None,
        ),
        node(
            "00000000000000b1",
            "node1",
            "10.77.0.11",
            MemberState::Alive,
            true,
            false,
            Some(load(0.6)),
        ),
    ]
}

/// The canned moves, oldest first: node1.834 moved to node2, node1.839 failed to, and node2.77
/// (newest) moved to node1. Counts: node1 out 1, in 1, failed 1; node2 out 1, in 1.
fn moves() -> Vec<MoveEvent> {
    let now = now_ms();
    let event = |job: JobId, from: &str, to: &str, ago_s: u64, why, ok: bool| MoveEvent {
        job,
        command: "omwork spin 40".into(),
        from: from.into(),
        to: to.into(),
        at_ms: now - ago_s * 1000,
        why,
        ok,
        frozen_ms: if ok { 1351 } else { 0 },
        total_ms: 1880,
        bytes: if ok { 3 << 20 } else { 0 },
        error: (!ok).then(|| "node2 refuses guests (block)".to_owned()),
    };
    vec![
        event(
            JobId::new("node1", 834),
            "node1",
            "node2",
            30,
            Why::Load,
            true,
        ),
        event(
            JobId::new("node1", 839),
            "node1",
            "node2",
            20,
            Why::Manual,
            false,
        ),
        event(
            JobId::new("node2", 77),
            "node2",
            "node1",
            10,
            Why::Memory,
            true,
        ),
    ]
}

/// What the fake omd answers; matching as the contract describes it (id, name or IP).
fn answer(request: Request) -> Reply {
    match request {
        Request::Nodes => Reply::Nodes { nodes: cluster() },
        Request::Whois { who } => cluster()
            .into_iter()
            .find(|n| n.id == who || n.name == who || n.addr.split(':').next() == Some(&who))
            .map_or_else(
                || Reply::Error {
                    error: format!("no node matches `{who}`"),
                },
                |node| Reply::Node { node },
            ),
        Request::Control {
            action: Control::Expel,
        } => Reply::Message {
            text: "job node2.77 moved from node1 to node2".into(),
        },
        Request::Control {
            action: Control::Bring,
        } => Reply::Error {
            error: "node2 refused job node1.5: node2 refuses guests (block)".into(),
        },
        // This test process stands for a deputy whose job runs on node2.
        Request::Jobs => Reply::Jobs {
            jobs: vec![migrator::job::record::JobView {
                id: migrator::job::record::JobId::new("node1", std::process::id()),
                uid: 0,
                command: "sleep 100".into(),
                home: "node1".into(),
                node: "node2".into(),
                state: migrator::job::record::JobState::Running,
                migrations: 1,
                pid: 0,
                unmovable: None,
            }],
        },
        Request::Migrate { job, to } => Reply::Error {
            error: format!("there is no job {job} (asked to move it to {to})"),
        },
        Request::Moves => Reply::Moves { moves: moves() },
        Request::Run(_) => Reply::Error {
            error: "not in this fake".into(),
        },
        Request::Control { action } => Reply::Done {
            flags: Flags {
                stay: action == Control::Stay,
                ..Flags::default()
            },
        },
    }
}

/// A fake omd listening in its own temp dir; the socket disappears with the dir.
struct FakeOmd {
    dir: tempfile::TempDir,
}

impl FakeOmd {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("omd.sock")).unwrap();
        // Detached: it blocks in accept until the test process exits.
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                serve(stream);
            }
        });
        Self { dir }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("omd.sock")
    }
}

fn serve(stream: UnixStream) {
    let mut writer = &stream;
    for line in BufReader::new(&stream).lines() {
        let Ok(line) = line else { return };
        let reply = match serde_json::from_str(&line) {
            Ok(request) => answer(request),
            Err(e) => Reply::Error {
                error: format!("bad request: {e}"),
            },
        };
        let mut text = serde_json::to_string(&reply).unwrap();
        text.push('\n');
        if writer.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

fn omctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_omctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn nodes_table_this_node_first_then_by_name() {
    let omd = FakeOmd::start();
    let out = omctl(&omd.socket(), &["nodes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].contains("ID") && lines[0].contains("FLAGS"),
        "{text}"
    );
    assert!(lines[1].starts_with("*  00000000000000b1  node1"), "{text}");
    assert!(
        lines[1].contains("0.60") && lines[1].contains("1.0G/4.0G"),
        "{text}"
    );
    assert!(
        lines[2].contains("master") && lines[2].ends_with("observer"),
        "{text}"
    );
    assert!(
        lines[3].contains("node2") && lines[3].contains("dead"),
        "{text}"
    );
}

#[test]
fn nodes_json_round_trips() {
    let omd = FakeOmd::start();
    let out = omctl(&omd.socket(), &["nodes", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let nodes: Vec<NodeInfo> = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["node1", "master", "node2"]);
    let mut expected = cluster();
    expected.sort_by(|a, b| a.name.cmp(&b.name));
    let mut got = nodes.clone();
    got.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(got, expected);
}

#[test]
fn whois_by_name_and_ip() {
    let omd = FakeOmd::start();
    for who in ["node2", "10.77.0.12", "00000000000000b2"] {
        let out = omctl(&omd.socket(), &["whois", who]);
        assert!(out.status.success(), "{who}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("id:      00000000000000b2\n"), "{text}");
        assert!(text.contains("name:    node2\n"), "{text}");
        assert!(text.contains("address: 10.77.0.12\n"), "{text}");
        assert!(text.contains("state:   dead\n"), "{text}");
    }
}

#[test]
fn whois_unknown_exits_1() {
    let omd = FakeOmd::start();
    let out = omctl(&omd.socket(), &["whois", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("Error: no node `nosuch` in the cluster"),
        "{err}"
    );
    assert!(
        err.contains("caused by: omd: no node matches `nosuch`"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn mon_once_shows_every_node_and_the_count() {
    let omd = FakeOmd::start();
    let out = omctl(
        &omd.socket(),
        &["mon", "--once", "--width", "80", "--height", "20"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 20, "{text}");
    for needle in [
        "*node1",
        "master",
        "node2",
        "nodes: 2/3 alive",
        "0.60",
        "obs",
        "dead",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    let out = omctl(&omd.socket(), &["mon", "--once", "--view", "mem"]);
    assert!(stdout(&out).contains("75%"), "{}", stdout(&out));
}

/// The whitespace-separated words of the line of `text` that contains `needle`.
fn words_of<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    let line = text.lines().find(|l| l.contains(needle));
    line.unwrap_or_else(|| panic!("no line with {needle}:\n{text}"))
        .split_whitespace()
        .collect()
}

/// The migrations panel: per-node counts (node1: 1 out, 1 in, 1 failed) and the newest move
/// first, on an 80×24 screen.
fn assert_moves_panel(text: &str) {
    assert!(text.contains("migrations: 2 moves, 1 failed"), "{text}");
    assert_eq!(
        &words_of(text, "│*node1 ")[..4],
        ["│*node1", "1", "1", "1"],
        "{text}"
    );
    assert_eq!(
        &words_of(text, "│node2 ")[..4],
        ["│node2", "1", "1", "0"],
        "{text}"
    );
    let newest = words_of(text, "node2.77");
    assert!(
        newest.contains(&"node2→node1") && newest.contains(&"memory"),
        "{text}"
    );
    let first = text.find("node2.77").unwrap();
    let older = text.find("node1.839").expect("the failed move is listed");
    assert!(first < older, "newest first:\n{text}");
}

#[test]
fn mon_once_shows_migrations_per_node_and_the_last_moves() {
    let omd = FakeOmd::start();
    let out = omctl(
        &omd.socket(),
        &["mon", "--once", "--width", "80", "--height", "24"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 24, "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    assert_moves_panel(&text);
    // The bars are still there above the panel.
    assert!(text.contains("0.60") && text.contains("obs"), "{text}");
}

#[test]
fn migrations_lists_every_move_oldest_first() {
    let omd = FakeOmd::start();
    let out = omctl(&omd.socket(), &["migrations"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("TIME") && lines[0].contains("FROZEN(ms)"),
        "{text}"
    );
    let first: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &first[1..9],
        [
            "node1.834",
            "node1",
            "node2",
            "load",
            "ok",
            "1351",
            "1880",
            "3.0M"
        ],
        "{text}"
    );
    assert!(
        lines[2].contains("manual") && lines[2].ends_with("node2 refuses guests (block)"),
        "{text}"
    );
    assert!(lines[3].contains("node2.77"), "{text}");

    let out = omctl(&omd.socket(), &["migrations", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Vec<MoveEvent> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].why, Why::Memory);
}

/// A stand-in for omrun: skips its options, says where the job "started" as `omrun -v` does,
/// and runs the command right here.
const FAKE_OMRUN: &str = r#"#!/bin/sh
while [ "$1" != "--" ]; do shift; done
shift
echo "omrun: job node1.$$ started on node1" >&2
exec "$@"
"#;

/// A stand-in for omwork whose spin prints a wrong checksum.
const LYING_OMWORK: &str = r#"#!/bin/sh
echo "result ok spin units=$2 x=0000000000000000"
"#;

fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn has(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn stress_runs_the_mix_checks_it_and_cleans_up() {
    if !["gzip", "gunzip", "sha256sum"].into_iter().all(has) {
        eprintln!("SKIPPED: gzip, gunzip or sha256sum missing");
        return;
    }
    let omd = FakeOmd::start();
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("cluster");
    std::fs::create_dir(&shared).unwrap();
    let omrun = script(dir.path(), "omrun", FAKE_OMRUN);
    let out = omctl(
        &omd.socket(),
        &[
            "stress",
            "--cluster-dir",
            shared.to_str().unwrap(),
            "--omrun",
            omrun.to_str().unwrap(),
            "--omwork",
            env!("CARGO_BIN_EXE_omwork"),
            "--cpu-jobs",
            "2",
            "--units",
            "1",
            "--mem-mib",
            "4",
            "--mem-pct",
            "50",
            "--secs",
            "0.5",
            "--threads",
            "2",
            "--pipe-mib",
            "1",
        ],
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    for (line, name) in lines[1..6]
        .iter()
        .zip(["spin1", "spin2", "mem", "threads", "pipe"])
    {
        let w: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((w[0], *w.last().unwrap()), (name, "ok"), "{text}");
        assert!(line.contains("node1."), "{text}");
    }
    assert!(lines[6].starts_with("makespan balanced "), "{text}");
    assert!(
        lines[6].contains("speedup") && lines[6].ends_with("migrations 0"),
        "{text}"
    );
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0, "cleaned up");

    let out = omctl(
        &omd.socket(),
        &[
            "stress",
            "--json",
            "--cluster-dir",
            shared.to_str().unwrap(),
            "--omrun",
            omrun.to_str().unwrap(),
            "--omwork",
            script(dir.path(), "omwork", LYING_OMWORK).to_str().unwrap(),
            "--cpu-jobs",
            "1",
            "--mem-mib",
            "0",
            "--threads",
            "0",
            "--pipe-mib",
            "0",
            "--no-baseline",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let result = report["jobs"][0]["result"].as_str().unwrap();
    assert!(result.starts_with("wrong checksum"), "{result}");
    assert!(
        stderr(&out).contains("1 of 1 jobs failed or gave a wrong result"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0, "cleaned up");
}

#[test]
fn mon_without_a_terminal_points_at_once() {
    let omd = FakeOmd::start();
    let out = omctl(&omd.socket(), &["mon"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("omctl mon --once"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn expel_and_bring_print_what_omd_did_or_its_refusal() {
    let omd = FakeOmd::start();
    let out = omctl(&omd.socket(), &["expel"]);
    if !is_root() {
        assert!(stderr(&out).contains("needs root"));
        return;
    }
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("moved from node1 to node2"));
    let out = omctl(&omd.socket(), &["bring"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("refuses guests"), "{}", stderr(&out));
}

#[test]
fn migrate_and_jobs_report_omds_answer() {
    let omd = FakeOmd::start();
    let out = omctl(&omd.socket(), &["migrate", "node1.9", "node2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("there is no job node1.9"),
        "{}",
        stderr(&out)
    );
    let out = omctl(&omd.socket(), &["jobs"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.starts_with("JOB") && text.contains("node2") && text.contains("sleep 100"),
        "{text}"
    );
}

#[test]
fn stay_prints_flags() {
    let omd = FakeOmd::start();
    let out = omctl(&omd.socket(), &["stay"]);
    if is_root() {
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), "stay=on lstay=off block=off quiet=off\n");
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("needs root"));
    }
}

#[test]
fn no_omd_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("omd.sock");
    for args in [&["nodes"][..], &["whois", "node1"], &["mon", "--once"]] {
        let out = omctl(&socket, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        let want = format!(
            "Error: cannot reach omd at {}: is omd running? (systemctl status omd)",
            socket.display()
        );
        assert!(err.starts_with(&want), "{err}");
        assert!(
            err.contains("caused by: No such file or directory"),
            "{err}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let omd = FakeOmd::start();
    assert_eq!(omctl(&omd.socket(), &["frobnicate"]).status.code(), Some(2));
    assert_eq!(omctl(&omd.socket(), &["whois"]).status.code(), Some(2));
    assert_eq!(
        omctl(&omd.socket(), &["top", "-d", "0"]).status.code(),
        Some(2)
    );
    assert_eq!(omctl(&omd.socket(), &["--help"]).status.code(), Some(0));
}

#[test]
fn ps_lists_local_processes_on_this_node() {
    let omd = FakeOmd::start();
    let out = omctl(&omd.socket(), &["ps", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let me = rows
        .iter()
        .find(|r| r["pid"] == std::process::id())
        .expect("the test process is listed");
    // The fake omd says this process is the deputy of a job on node2.
    assert_eq!(
        (&me["node"], &me["home"]),
        (&"node2".into(), &"node1".into())
    );
    assert!(
        rows.iter()
            .filter(|r| r["pid"] != std::process::id())
            .all(|r| r["node"] == "node1" && r["home"] == "node1")
    );

    let out = omctl(&omd.socket(), &["ps"]);
    let text = stdout(&out);
    let header = text.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "PID", "USER", "NODE", "HOME", "%CPU", "RSS", "STAT", "COMMAND"
        ]
    );
}

#[test]
fn ps_without_omd_falls_back_to_the_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = omctl(&dir.path().join("omd.sock"), &["ps", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("NODE shows the host name"),
        "{}",
        stderr(&out)
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["node"], host.trim());
}

#[test]
fn top_runs_n_iterations() {
    let omd = FakeOmd::start();
    let out = omctl(&omd.socket(), &["top", "-n", "2", "-d", "0.2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text.matches("omctl top - node node1 - ").count(),
        2,
        "{text}"
    );
    assert_eq!(text.matches("%CPU").count(), 2, "{text}");
}

/// A private tmux server (own socket name), killed on drop whatever happens.
struct Tmux {
    name: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.name, "-f", "/dev/null"])
            .args(args)
            .output()
            .unwrap()
    }

    fn screen(&self) -> String {
        stdout(&self.run(&["capture-pane", "-p", "-t", "mon"]))
    }

    /// Polls the screen until `pred` holds, for at most 10 s.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{screen}"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // tmux leaves its socket file behind when killed; remove it too.
        let socket = stdout(&self.run(&["display-message", "-p", "#{socket_path}"]));
        let _ = self.run(&["kill-server"]);
        let socket = socket.trim();
        if !socket.is_empty() {
            let _ = std::fs::remove_file(socket);
        }
    }
}

/// `omctl mon` in a real 100×30 terminal: it draws, switches views on keys, quits on `q`, and
/// leaves the terminal as it found it (main screen, cooked mode with echo, cursor shown).
/// Set OMCTL_MON_SCREEN=path to save the first captured screen.
#[test]
fn mon_in_a_real_terminal() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("SKIPPED: tmux is not installed");
        return;
    }
    let omd = FakeOmd::start();
    let tmux = Tmux {
        name: format!("omctl-test-{}", std::process::id()),
    };
    let script = format!(
        "'{}' mon --socket '{}'; echo omctl-exit=$?; stty -a; echo stty-done; sleep 60",
        env!("CARGO_BIN_EXE_omctl"),
        omd.socket().display()
    );
    let out = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "mon",
        "-x",
        "100",
        "-y",
        "30",
        "sh",
        "-c",
        &script,
    ]);
    assert!(out.status.success(), "tmux: {}", stderr(&out));

    let first = tmux.wait_for("the monitor", |s| {
        s.contains("balance:") && s.contains("node2")
    });
    // The moves are polled like the table, once a second.
    let panel = tmux.wait_for("the migrations panel", |s| s.contains("node2→node1"));
    assert_moves_panel(&panel);
    assert!(first.contains("nodes: 2/3 alive"), "{first}");
    assert!(
        first.contains("load: 1.0 = one standard CPU busy"),
        "{first}"
    );
    let alt = tmux.run(&["display-message", "-p", "-t", "mon", "#{alternate_on}"]);
    assert_eq!(
        stdout(&alt).trim(),
        "1",
        "monitor runs on the alternate screen"
    );
    if let Some(path) = std::env::var_os("OMCTL_MON_SCREEN") {
        std::fs::write(path, &first).unwrap();
    }

    tmux.run(&["send-keys", "-t", "mon", "m"]);
    tmux.wait_for("the memory view", |s| s.contains("memory: used of total"));
    // omd going away mid-run is shown on the status line, not fatal; the last table stays.
    std::fs::remove_file(omd.socket()).unwrap();
    let lost = tmux.wait_for("the lost-omd status", |s| s.contains("(retrying)"));
    assert!(lost.contains("cannot reach omd at"), "{lost}");
    assert!(lost.contains("*node1"), "{lost}");
    tmux.run(&["send-keys", "-t", "mon", "q"]);
    let after = tmux.wait_for("omctl to exit", |s| s.contains("stty-done"));
    assert!(after.contains("omctl-exit=0"), "{after}");
    // Back on the main screen, in cooked mode with echo, cursor visible.
    assert!(!after.contains("balance:"), "{after}");
    let words: Vec<&str> = after.split_whitespace().collect();
    for mode in ["icanon", "echo", "isig"] {
        assert!(words.contains(&mode), "{mode} not restored:\n{after}");
    }
    let state = tmux.run(&[
        "display-message",
        "-p",
        "-t",
        "mon",
        "#{alternate_on} #{cursor_flag}",
    ]);
    assert_eq!(
        stdout(&state).trim(),
        "0 1",
        "alternate screen off, cursor on"
    );
}
