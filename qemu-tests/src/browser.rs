//! Headless Chromium for the dashboard's tests, driven over W3C WebDriver. chromedriver and the
//! browser run inside the lab's namespace, so the page is reached on the lab bridge as a node's
//! operator would reach it and teardown ends them with the lab; the test talks to chromedriver
//! through a [`Forward`].

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::error::{Error, Result, io};
use crate::forward::Forward;
use crate::{Lab, Proc};

/// chromedriver's port inside the lab namespace.
const DRIVER_PORT: u16 = 9515;
/// The window: the dashboard must fit a 1920×1080 screen.
pub const WINDOW: (u32, u32) = (1920, 1080);

/// A browser session in the lab.
#[derive(Debug)]
pub struct Browser {
    driver: Proc,
    forward: Forward,
    session: String,
    http: ureq::Agent,
}

fn failed(what: &str, reason: impl ToString) -> Error {
    Error::Browser {
        what: what.to_owned(),
        reason: reason.to_string(),
    }
}

impl Browser {
    /// Starts chromedriver in `lab`'s namespace and opens a headless Chromium session.
    pub fn start(lab: &Lab) -> Result<Browser> {
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={DRIVER_PORT}"));
        let driver = lab.spawn("chromedriver", cmd, lab.netns())?;
        lab.wait_for_output(&driver, "started successfully", Duration::from_secs(30))?;
        let forward = Forward::start(
            lab.netns(),
            SocketAddr::from((Ipv4Addr::LOCALHOST, DRIVER_PORT)),
        )?;
        let profile = lab.dir().join("chromium-profile");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--hide-scrollbars", "--no-first-run",
                    format!("--window-size={},{}", WINDOW.0, WINDOW.1),
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let http = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        let mut b = Browser {
            driver,
            forward,
            session: String::new(),
            http,
        };
        let v = b.call("open a session", "POST", "/session", Some(caps))?;
        b.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| failed("open a session", format!("no session id in {v}")))?
            .to_owned();
        // The page itself gets the whole screen, as on a 1920×1080 monitor in full screen.
        b.call(
            "size the page",
            "POST",
            "/goog/cdp/execute",
            Some(
                json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                    "width": WINDOW.0, "height": WINDOW.1, "deviceScaleFactor": 1, "mobile": false,
                }}),
            ),
        )?;
        Ok(b)
    }

    /// The chromedriver process (its log is the lab's `chromedriver.log`).
    pub fn driver(&self) -> &Proc {
        &self.driver
    }

    fn call(&self, what: &str, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!(
            "http://127.0.0.1:{}{}",
            self.forward.port(),
            if self.session.is_empty() || path == "/session" {
                path.to_owned()
            } else {
                format!("/session/{}{path}", self.session)
            }
        );
        let agent = &self.http;
        let resp = match (method, body) {
            ("GET", _) => agent.get(&url).call(),
            ("DELETE", _) => agent.delete(&url).call(),
            (_, b) => agent.post(&url).send_json(b.unwrap_or_else(|| json!({}))),
        };
        let mut resp = resp.map_err(|e| failed(what, e))?;
        let ok = resp.status().is_success();
        let v: Value = resp.body_mut().read_json().map_err(|e| failed(what, e))?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if ok {
            Ok(value)
        } else {
            Err(failed(
                what,
                value["message"].as_str().unwrap_or("(no message)"),
            ))
        }
    }

    /// Opens `url` and waits for it to load.
    pub fn goto(&self, url: &str) -> Result<()> {
        self.call("open the page", "POST", "/url", Some(json!({ "url": url })))
            .map(drop)
    }

    /// Runs `body` (a function body: `return …;`) in the page and returns its value.
    pub fn eval(&self, body: &str) -> Result<Value> {
        self.call(
            "run a script",
            "POST",
            "/execute/sync",
            Some(json!({ "script": body, "args": [] })),
        )
    }

    /// Polls `body` every 200 ms until it returns something other than null or false; returns
    /// that value and how long it took.
    pub fn wait_until(
        &self,
        what: &str,
        body: &str,
        timeout: Duration,
    ) -> Result<(Value, Duration)> {
        let t = Instant::now();
        loop {
            let v = self.eval(body)?;
            if !matches!(v, Value::Null | Value::Bool(false)) {
                return Ok((v, t.elapsed()));
            }
            if t.elapsed() > timeout {
                return Err(Error::Timeout {
                    what: what.to_owned(),
                    secs: t.elapsed().as_secs_f64(),
                    detail: format!("\nthe page says: {v}"),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Writes a PNG of the window to `path`.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let v = self.call("take a screenshot", "GET", "/screenshot", None)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .map_err(|e| failed("take a screenshot", e))?;
        std::fs::write(path, png).map_err(io(format!("write {}", path.display())))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The lab stops chromedriver and whatever it started; closing the session first lets
        // Chromium exit cleanly.
        if !self.session.is_empty() {
            let _ = self.call("close the session", "DELETE", "", None);
        }
    }
}
