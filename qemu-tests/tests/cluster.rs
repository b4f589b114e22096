//! End to end for the node daemon: three QEMU nodes booted from ombootd run omd from the image,
//! find each other with no per-node configuration, and the master (ombootd as observer) sees the
//! same table; a node powered off is declared dead everywhere; it rejoins after a reboot. The
//! image is rebuilt while two nodes run: they keep the version they booted, the rebooted node
//! gets the new one.
//!
//! Times are measured from the lab's clock on every console and on ombootd's log at once
//! (`LogWatch`) and printed; the assertions are about what happens, with bounds loose enough for
//! TCG guests on a loaded 2-core CI machine.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use node_image::image_dir;
use omlab::browser::Browser;
use omlab::logwatch::{LogWatch, Pattern};
use omlab::{Lab, LabMac, Nic, RunningNode, cluster, jobs};

const BOUND: Duration = Duration::from_secs(60);

/// (name, state) of every row, from `omctl nodes --json` or ombootd's `/api/cluster`.
fn table(rows: &serde_json::Value) -> BTreeSet<(String, String)> {
    rows.as_array()
        .unwrap_or_else(|| panic!("not a table: {rows}"))
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn master_table(lab: &Lab) -> BTreeSet<(String, String)> {
    let mut curl = Command::new("curl");
    curl.args(["-sf", "http://10.77.0.1:8080/api/cluster"]);
    let out = lab.run(curl, lab.netns(), Duration::from_secs(10)).unwrap();
    assert!(out.status.success(), "ombootd /api/cluster failed");
    table(&serde_json::from_slice(&out.stdout).unwrap())
}

fn node_table(node: &RunningNode<'_>) -> BTreeSet<(String, String)> {
    let out = node
        .shell("omctl nodes --json", Duration::from_secs(60))
        .unwrap();
    assert_eq!(
        out.status,
        0,
        "omctl nodes on {}: {:?}",
        node.name(),
        out.lines
    );
    table(
        &out.json()
            .unwrap_or_else(|| panic!("no JSON from omctl on {}: {:?}", node.name(), out.lines)),
    )
}

/// Waits until `f` returns `want` (polling), up to `BOUND`; returns how long it took.
fn until_equal(
    what: &str,
    want: &BTreeSet<(String, String)>,
    mut f: impl FnMut() -> BTreeSet<(String, String)>,
) -> Duration {
    let t = Instant::now();
    loop {
        let got = f();
        if &got == want {
            return t.elapsed();
        }
        assert!(t.elapsed() < BOUND, "{what}: still {got:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[test]
fn nodes_and_master_share_one_cluster_table_detect_failure_and_rejoin() {
    let built = cluster::built_image("rootfs/usr/local/sbin/omd").unwrap();
    let lab = Lab::new("cluster").unwrap();
    let image = private_image(&lab, &built);
    let mut plan = cluster::bios_nodes(3, 512, false);
    // node3 carries a vmxnet3: a driver outside drivers/net/ethernet, which the initramfs must
    // find by modalias like the others (the boot suite covers three more NIC models).
    plan[2].node = plan[2].node.clone().nic(Nic::Vmxnet3);
    let names: Vec<&str> = plan.iter().map(|p| p.node.name()).collect();
    let _ombootd = cluster::start_master(&lab, &image, &plan).unwrap();

    // Everything the consoles and the master will say, watched from before power-on.
    let serial = |n: &str| lab.dir().join(format!("{n}.serial"));
    let master_log = lab.dir().join("ombootd.log");
    let started: Vec<Pattern> = names
        .iter()
        .map(|n| Pattern::new(serial(n), &["omd listening on"]))
        .collect();
    let mut joined = Vec::new();
    for a in &names {
        for b in names.iter().filter(|b| b != &a) {
            joined.push(Pattern::new(
                serial(a),
                &["member up", &format!("name={b}")],
            ));
        }
        joined.push(Pattern::new(
            &master_log,
            &["member up", &format!("name={a}")],
        ));
    }
    let watch = LogWatch::start(started.iter().chain(&joined).cloned().collect());

    let nodes: Vec<RunningNode<'_>> = cluster::boot_all(&lab, &plan, Duration::from_secs(300))
        .into_iter()
        .zip(&names)
        .map(|(r, n)| r.unwrap_or_else(|e| panic!("{n} did not come up: {e}")).0)
        .collect();
    let node3_console = std::fs::read_to_string(serial("node3")).unwrap();
    assert!(
        node3_console.contains(", driver vmxnet3 for pci:"),
        "node3's initramfs did not load vmxnet3: {:?}",
        node3_console
            .lines()
            .filter(|l| l.contains("omboot:"))
            .collect::<Vec<_>>()
    );
    let starts = watch
        .wait_all(&started, BOUND)
        .unwrap_or_else(|m| panic!("omd did not start: {m:?}"));
    let joins = watch
        .wait_all(&joined, BOUND)
        .unwrap_or_else(|m| panic!("never joined: {m:?}"));
    let last_start = *starts.iter().max().unwrap();
    let join_time = joins
        .iter()
        .max()
        .unwrap()
        .saturating_duration_since(last_start);
    println!(
        "join: every node and the master saw every node {} after the last omd start",
        secs(join_time)
    );

    // The same table everywhere: three nodes and the master (an observer), all alive.
    let mut want: BTreeSet<(String, String)> = names
        .iter()
        .map(|n| ((*n).to_owned(), "alive".to_owned()))
        .collect();
    want.insert(("ombootd".to_owned(), "alive".to_owned()));
    until_equal("master table", &want, || master_table(&lab));
    for n in &nodes {
        until_equal(&format!("table on {}", n.name()), &want, || node_table(n));
    }
    let mon = nodes[0]
        .shell(
            "omctl mon --once --width 100 --height 20",
            Duration::from_secs(60),
        )
        .unwrap();
    let screen = mon.lines.join("\n");
    assert!(
        mon.status == 0 && names.iter().all(|n| screen.contains(n)) && screen.contains("4/4 alive"),
        "{screen}"
    );
    std::fs::write(lab.dir().join("mon-screen.txt"), &screen).unwrap();
    println!("omctl mon --once on node1:\n{screen}");
    let ps = nodes[0]
        .shell("omctl ps | head -3", Duration::from_secs(60))
        .unwrap();
    assert!(
        ps.lines.iter().any(|l| l.contains("NODE"))
            && ps.lines.iter().any(|l| l.contains(" node1 ")),
        "{:?}",
        ps.lines
    );
    let whois = nodes[1]
        .shell("omctl whois 10.77.0.13", Duration::from_secs(60))
        .unwrap();
    assert!(
        whois.status == 0 && whois.lines.iter().any(|l| l.contains("node3")),
        "{:?}",
        whois.lines
    );

    // The dashboard, in a real browser: every node up with its IP and a load bar, read-only
    // without the token, its controls refused without it and working with it, a job and its
    // migration shown as they happen.
    let browser = Browser::start(&lab).unwrap();
    dashboard_shows_the_cluster(&lab, &browser, &nodes);

    // node3 powered off: dead on the other nodes and on the master.
    let mut nodes = nodes;
    let node3 = nodes.pop().unwrap();
    browser.eval("window.omSameLoad = 1; return true;").unwrap();
    let down: Vec<Pattern> = names[..2]
        .iter()
        .map(|n| Pattern::new(serial(n), &["member down", "name=node3"]))
        .chain([Pattern::new(&master_log, &["member down", "name=node3"])])
        .collect();
    let watch_down = LogWatch::start(down.clone());
    let off = Instant::now();
    node3.power_off().unwrap();
    let detected = watch_down
        .wait_all(&down, BOUND)
        .unwrap_or_else(|m| panic!("node3 never declared dead: {m:?}"));
    // The page turns node3 dead by itself (no reload: the marker set above is still there).
    browser
        .wait_until(
            "the dashboard to show node3 dead",
            "const c = document.querySelector('.node[data-node=\"node3\"]'); return window.omSameLoad === 1 && c && c.dataset.state === 'dead';",
            Duration::from_secs(10).saturating_sub(off.elapsed()),
        )
        .unwrap();
    println!(
        "dashboard: node3 shown dead {} after power-off, without a reload",
        secs(off.elapsed())
    );
    drop(browser);
    let times: Vec<String> = detected
        .iter()
        .map(|t| secs(t.saturating_duration_since(off)))
        .collect();
    println!(
        "failure: node3 declared dead on node1, node2, master after {}",
        times.join(", ")
    );
    let mut want_dead = want.clone();
    want_dead.remove(&("node3".to_owned(), "alive".to_owned()));
    want_dead.insert(("node3".to_owned(), "dead".to_owned()));
    until_equal("master table after power-off", &want_dead, || {
        master_table(&lab)
    });
    for n in &nodes {
        until_equal(
            &format!("table on {} after power-off", n.name()),
            &want_dead,
            || node_table(n),
        );
    }

    // The image is rebuilt while node1 and node2 run from it.
    let before = image_dir::current(&image).unwrap();
    let out = Command::new(cluster::workspace_root().join("target/debug/omimage"))
        .args(["build", "--console-autologin", "--out"])
        .arg(&image)
        .current_dir(cluster::workspace_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "omimage build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = image_dir::current(&image).unwrap();
    assert_ne!(before, after, "the rebuild made no new version");
    for n in &nodes {
        // With its page cache dropped, the node reads its root from the server again.
        let o = n
            .shell(
                "echo 3 > /proc/sys/vm/drop_caches; cat /etc/omboot-image; md5sum /usr/bin/bash /usr/local/bin/omctl > /dev/null && omctl nodes > /dev/null && echo still-reads",
                Duration::from_secs(120),
            )
            .unwrap();
        assert!(
            o.lines.iter().any(|l| l.trim() == before)
                && o.lines.iter().any(|l| l == "still-reads"),
            "{} after the rebuild: {:?}",
            n.name(),
            o.lines
        );
    }

    // node3 boots again (same MAC, same machine-id, same node id) and rejoins everywhere.
    let reboot_started = Pattern::new(serial("node3.boot2"), &["omd listening on"]);
    let back: Vec<Pattern> = names[..2]
        .iter()
        .map(|n| Pattern::new(serial(n), &["name=node3"]))
        .chain([Pattern::new(&master_log, &["member up", "name=node3"])])
        .collect();
    let watch_back = LogWatch::start(
        back.iter()
            .cloned()
            .chain([reboot_started.clone()])
            .collect(),
    );
    let node3 = plan[2].node.boot(&lab).unwrap();
    node3.wait_up(Duration::from_secs(300)).unwrap();
    let rejoined = watch_back
        .wait_all(&back, BOUND)
        .unwrap_or_else(|m| panic!("node3 did not rejoin: {m:?}"));
    let started = watch_back
        .wait_all(std::slice::from_ref(&reboot_started), BOUND)
        .unwrap()[0];
    println!(
        "rejoin: node3 seen again by node1, node2 and the master {} after its omd started",
        secs(
            rejoined
                .iter()
                .max()
                .unwrap()
                .saturating_duration_since(started)
        )
    );
    until_equal("master table after rejoin", &want, || master_table(&lab));
    for n in nodes.iter().chain([&node3]) {
        until_equal(
            &format!("table on {} after rejoin", n.name()),
            &want,
            || node_table(n),
        );
    }
    // node3 booted after the rebuild: the new version. The old one stays while node1 and node2
    // use it (ombootd records both as in use).
    let o = node3
        .shell("cat /etc/omboot-image", Duration::from_secs(60))
        .unwrap();
    assert!(o.lines.iter().any(|l| l.trim() == after), "{:?}", o.lines);
    assert!(image_dir::version_dir(&image, &before).exists());
    let t = Instant::now();
    while image_dir::read_in_use(&image).len() < 2 && t.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(
        image_dir::read_in_use(&image),
        BTreeSet::from([before.clone(), after.clone()])
    );
    drop(nodes);
    drop(node3);
    lab.teardown().unwrap();
}

/// Every node card, as the page shows it: name, state, IP text, load and the bar's width.
const CARDS: &str = "return Array.from(document.querySelectorAll('.node')).map(c => { const f = c.querySelector('.load-fill'); return {name: c.dataset.node, state: c.dataset.state, ip: c.dataset.ip, text: c.innerText, load: f ? f.dataset.load : null, width: f ? f.getBoundingClientRect().width : 0}; });";

/// `curl` on the lab bridge: (HTTP status, body).
fn http(lab: &Lab, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut curl = Command::new("curl");
    curl.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method])
        .arg(format!("http://{}:8080{path}", lab.master_ip()));
    if let Some(t) = token {
        curl.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if !body.is_empty() {
        curl.args(["-H", "Content-Type: application/json", "-d", body]);
    }
    let out = lab
        .run(curl, lab.netns(), Duration::from_secs(120))
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn dashboard_shows_the_cluster(lab: &Lab, browser: &Browser, nodes: &[RunningNode<'_>]) {
    let t = Instant::now();
    browser
        .goto(&format!("http://{}:8080/", lab.master_ip()))
        .unwrap();
    let ips = ["10.77.0.11", "10.77.0.12", "10.77.0.13"];
    let (cards, took) = browser
        .wait_until(
            "the dashboard to list the three nodes up with their load",
            &format!(
                "const cards = (function() {{ {CARDS} }})(); const up = cards.filter(c => c.state === 'up' && c.load !== '' && c.load !== null && !isNaN(Number(c.load)) && c.width > 0 && c.text.includes(c.ip)); return up.length === 3 && document.body.dataset.connection === 'live' ? cards : null;"
            ),
            Duration::from_secs(60),
        )
        .unwrap();
    for ip in ips {
        assert!(
            cards.as_array().unwrap().iter().any(|c| c["ip"] == ip),
            "no card for {ip}: {cards}"
        );
    }
    println!(
        "dashboard: three nodes up with IPs and load bars {} after opening the page",
        secs(took)
    );
    // Each node's boot, to the end.
    let boot = browser
        .eval("return Array.from(document.querySelectorAll('tr[data-mac]')).map(r => r.innerText);")
        .unwrap();
    for n in 1..=3 {
        let mac = omlab::MacAddr::lab(n).to_string();
        assert!(
            boot.as_array().unwrap().iter().any(|r| {
                let r = r.as_str().unwrap_or_default().to_lowercase();
                r.contains(&mac) && r.contains("omd joined")
            }),
            "boot view lacks {mac} joined: {boot}"
        );
    }

    // The same from the command line, as an operator on the master asks.
    let mut status = Command::new(cluster::workspace_root().join("target/debug/ombootd"));
    status
        .arg("--config")
        .arg(lab.dir().join("ombootd.toml"))
        .arg("status");
    let out = lab
        .run(status, lab.netns(), Duration::from_secs(30))
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("ombootd status:\n{table}");
    let up = table
        .lines()
        .filter(|l| l.starts_with("node") && l.contains(" up ") && l.contains("omd joined"))
        .count();
    assert!(out.status.success() && up == 3, "{table}");

    // Read-only without the token: no control on the page, and the API refuses them.
    let controls = browser
        .eval("return document.querySelectorAll('.control').length;")
        .unwrap();
    assert_eq!(controls, 0, "controls shown without the token");
    let block = r#"{"action":"block"}"#;
    assert_eq!(
        http(lab, "POST", "/api/nodes/node2/control", None, block).0,
        401
    );
    let wrong = "0".repeat(64);
    assert_eq!(
        http(lab, "POST", "/api/nodes/node2/control", Some(&wrong), block).0,
        401
    );
    assert_eq!(http(lab, "GET", "/api/control", None, "").0, 401);
    assert_eq!(
        http(
            lab,
            "POST",
            "/api/jobs/node1.1/migrate",
            None,
            r#"{"to":"node2"}"#
        )
        .0,
        401
    );
    let token_file = lab.dir().join("state/dashboard.token");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&token_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o077, 0, "the token is readable by others");
    let token = std::fs::read_to_string(&token_file).unwrap();
    let token = token.trim();

    // With the token: node2 blocked, on the page within seconds, then free again.
    let (code, body) = http(lab, "POST", "/api/nodes/node2/control", Some(token), block);
    assert_eq!(code, 200, "{body}");
    browser
        .wait_until(
            "the dashboard to show node2 blocked",
            "const c = document.querySelector('.node[data-node=\"node2\"]'); return c && c.innerText.includes('block');",
            Duration::from_secs(20),
        )
        .unwrap();
    let (code, body) = http(
        lab,
        "POST",
        "/api/nodes/node2/control",
        Some(token),
        r#"{"action":"noblock"}"#,
    );
    assert_eq!(code, 200, "{body}");
    // The page with the token pasted: its controls appear; locked again, they are gone.
    browser
        .eval(&format!(
            "document.querySelector('#unlock').click(); document.querySelector('#token-input').value = '{token}'; document.querySelector('#unlock-form').requestSubmit(); return true;"
        ))
        .unwrap();
    browser
        .wait_until(
            "the dashboard's controls after the token",
            "return document.querySelectorAll('.node .control').length >= 3;",
            Duration::from_secs(20),
        )
        .unwrap();
    browser
        .eval("document.querySelector('#lock').click(); return true;")
        .unwrap();
    browser
        .wait_until(
            "the dashboard locked again",
            "return document.querySelectorAll('.control').length === 0;",
            Duration::from_secs(20),
        )
        .unwrap();

    // A job on node1, moved to node2 through the dashboard's API: its row and the migration.
    jobs::start(&nodes[0], "dash", "sleep 900");
    let (row, _) = browser
        .wait_until(
            "the dashboard to list the job",
            "const r = Array.from(document.querySelectorAll('tr[data-job]')).find(r => r.innerText.includes('sleep 900')); return r ? r.dataset.job : null;",
            Duration::from_secs(60),
        )
        .unwrap();
    let job = row.as_str().unwrap().to_owned();
    let (code, body) = http(
        lab,
        "POST",
        &format!("/api/jobs/{job}/migrate"),
        Some(token),
        r#"{"to":"node2"}"#,
    );
    assert_eq!(code, 200, "moving {job}: {body}");
    browser
        .wait_until(
            "the dashboard to show the job on node2 and its migration",
            &format!(
                "const r = document.querySelector('tr[data-job=\"{job}\"]'); const moves = Array.from(document.querySelectorAll('li.move')).filter(m => m.innerText.includes('node1') && m.innerText.includes('node2')); return r && r.innerText.includes('node2') && moves.length > 0;"
            ),
            Duration::from_secs(30),
        )
        .unwrap();
    let shot = lab.dir().join("dashboard.png");
    browser.screenshot(&shot).unwrap();
    let keep = cluster::workspace_root().join("target/omlab-dashboard.png");
    std::fs::copy(&shot, &keep).unwrap();
    println!(
        "dashboard: screenshot {} ({} s in the browser)",
        keep.display(),
        t.elapsed().as_secs()
    );
}

/// The workspace image's current version copied into the lab, so rebuilding it touches nothing
/// the other suites use.
fn private_image(lab: &Lab, built: &std::path::Path) -> std::path::PathBuf {
    let image = lab.dir().join("image");
    let version = image_dir::current(built).unwrap();
    std::fs::create_dir_all(image.join(image_dir::VERSIONS)).unwrap();
    for (from, to) in [
        (
            image_dir::version_dir(built, &version),
            image_dir::version_dir(&image, &version),
        ),
        (built.join("tftp"), image.join("tftp")),
        (built.join("cluster.key"), image.join("cluster.key")),
    ] {
        let ok = Command::new("cp")
            .arg("-a")
            .arg(&from)
            .arg(&to)
            .status()
            .unwrap();
        assert!(ok.success(), "cp -a {} {}", from.display(), to.display());
    }
    image_dir::switch_current(&image, &version).unwrap();
    image
}
