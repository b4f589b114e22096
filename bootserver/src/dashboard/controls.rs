//! The dashboard's controls: one guard ([`require_token`]) on all of them, and each is the
//! request `omctl` would make on the node (a node control, a job move), sent to it over the peer
//! protocol signed with the cluster key, or `ombootd node approve`'s edit. Every one is logged
//! with who asked and what came of it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use migrator::api::Control;
use migrator::job::record::JobId;
use migrator::jobs::client;
use migrator::migration::protocol::{Msg, Target};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::http::AppState;
use crate::mac::MacAddr;
use crate::node_admin;

/// A node control may move jobs (expel, bring): as long as `omctl migrate` waits.
const WAIT: Duration = Duration::from_secs(600);

fn reply(code: StatusCode, key: &str, text: &str) -> Response {
    (code, axum::Json(serde_json::json!({ key: text }))).into_response()
}

/// The guard of every control route: without the token in `Authorization: Bearer`, a 401 (and
/// an INFO line naming who asked for what); with it, the control.
pub async fn require_token(
    State(st): State<AppState>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if st.dashboard.token.admits(given) {
        return next.run(req).await;
    }
    tracing::info!(%from, method = %req.method(), path = %req.uri().path(), "refused a dashboard control without the token");
    reply(
        StatusCode::UNAUTHORIZED,
        "error",
        "this control needs the dashboard token (root-only, dashboard.token in ombootd's state directory on the master)",
    )
}

/// A control's JSON body, or the sentence of its 400: what was `expected`, and what is wrong.
fn body<T: DeserializeOwned>(bytes: &[u8], expected: &str) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("expected {expected}: {e}"))
}

fn outcome(result: Option<Msg>, node: &str) -> Response {
    match result {
        Some(Msg::Result { result: Ok(text) }) => reply(StatusCode::OK, "message", &text),
        Some(Msg::Result { result: Err(e) }) => reply(StatusCode::CONFLICT, "error", &e),
        Some(other) => reply(
            StatusCode::BAD_GATEWAY,
            "error",
            &format!("{node} answered {other:?}"),
        ),
        None => reply(
            StatusCode::GATEWAY_TIMEOUT,
            "error",
            &format!("{node} did not answer"),
        ),
    }
}

/// Send `msg` to the live node `name`, signed with the cluster key; its answer, if any. `Err`:
/// there is no such live node, or the master does not observe the cluster.
async fn ask(st: &AppState, name: &str, msg: &Msg) -> Result<Option<Msg>, String> {
    let d = &st.dashboard;
    let key = d
        .key
        .as_ref()
        .ok_or("the master does not observe the cluster ([cluster] observe = false)")?;
    let peer = d.peer_of(name)?;
    Ok(client::ask(peer, key, msg, WAIT).await)
}

/// `GET /api/control`: the token is good (the guard answered otherwise); the page shows its
/// controls only then.
pub async fn check() -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({ "controls": true })),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeControl {
    action: Control,
}

/// `POST /api/nodes/{name}/control` `{"action": "block"}`: the node's `omctl block`.
pub async fn node(
    State(st): State<AppState>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Response {
    let action = match body::<NodeControl>(
        &bytes,
        "{\"action\": \"stay|nostay|lstay|block|noblock|quiet|noquiet|expel|bring\"}",
    ) {
        Ok(c) => c.action,
        Err(why) => return reply(StatusCode::BAD_REQUEST, "error", &why),
    };
    let answer = match ask(&st, &name, &Msg::Control { action }).await {
        Ok(a) => a,
        Err(why) => return reply(StatusCode::NOT_FOUND, "error", &why),
    };
    tracing::info!(%from, node = %name, ?action, ?answer, "dashboard node control");
    outcome(answer, &name)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Move {
    to: String,
}

/// `POST /api/jobs/{id}/migrate` `{"to": "node2" | "home"}`: `omctl migrate`, as root, sent to
/// the job's home, which knows where it runs.
pub async fn migrate(
    State(st): State<AppState>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Response {
    let to = match body::<Move>(&bytes, "{\"to\": \"<node>\" or \"home\"}") {
        Ok(m) if m.to == "home" => Target::Home,
        Ok(m) => Target::Node(m.to),
        Err(why) => return reply(StatusCode::BAD_REQUEST, "error", &why),
    };
    let job = JobId(id.clone());
    let Some((home, _)) = id.rsplit_once('.').filter(|_| job.is_valid()) else {
        return reply(
            StatusCode::BAD_REQUEST,
            "error",
            &format!("{id:?} is not a job id (home.pid)"),
        );
    };
    let msg = Msg::Migrate {
        job,
        to: to.clone(),
        uid: 0,
    };
    let answer = match ask(&st, home, &msg).await {
        Ok(a) => a,
        Err(why) => return reply(StatusCode::NOT_FOUND, "error", &format!("job {id}: {why}")),
    };
    tracing::info!(%from, job = %id, ?to, ?answer, "dashboard job move");
    outcome(answer, home)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Approve {
    name: String,
    #[serde(default)]
    ip: Option<std::net::Ipv4Addr>,
}

/// `POST /api/pending/{mac}/approve` `{"name": "node7", "ip": "10.77.0.17"}` (ip optional):
/// `ombootd node approve`, the same edit of the config file; the server takes it at once.
pub async fn approve(
    State(st): State<AppState>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(mac): Path<String>,
    bytes: Bytes,
) -> Response {
    let a = match body::<Approve>(
        &bytes,
        "{\"name\": \"<host name>\", \"ip\": \"<address>\" (optional)}",
    ) {
        Ok(a) => a,
        Err(why) => return reply(StatusCode::BAD_REQUEST, "error", &why),
    };
    let Ok(mac) = mac.parse::<MacAddr>() else {
        return reply(
            StatusCode::BAD_REQUEST,
            "error",
            &format!("{mac:?} is not a MAC address"),
        );
    };
    let (live, pending) = (st.config.clone(), st.pending.clone());
    let done = tokio::task::spawn_blocking(move || {
        node_admin::approve(&live, &pending, mac, &a.name, a.ip)
    })
    .await;
    match done {
        Ok(Ok(text)) => {
            tracing::info!(%from, %mac, "dashboard approval: {text}");
            reply(StatusCode::OK, "message", &text)
        }
        Ok(Err(e)) => reply(StatusCode::CONFLICT, "error", &e.to_string()),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, "error", &e.to_string()),
    }
}
