//! The dashboard's controls: each needs the token, and each is the request `omctl` would make on
//! the node (a node control, a job move), sent to it over the peer protocol signed with the
//! cluster key. Every one is logged with who asked and what came of it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use migrator::api::Control;

use crate::mac::MacAddr;
use crate::node_admin;
use migrator::job::record::JobId;
use migrator::jobs::client;
use migrator::migration::protocol::{Msg, Target};
use serde::Deserialize;

use crate::http::AppState;

/// A node control may move jobs (expel, bring): as long as `omctl migrate` waits.
const WAIT: Duration = Duration::from_secs(600);

fn reply(code: StatusCode, key: &str, text: &str) -> Response {
    (code, axum::Json(serde_json::json!({ key: text }))).into_response()
}

fn refused() -> Response {
    reply(
        StatusCode::UNAUTHORIZED,
        "error",
        "this control needs the dashboard token (root-only, dashboard.token in ombootd's state directory on the master)",
    )
}

fn authorized(st: &AppState, headers: &HeaderMap) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    st.dashboard.token.admits(given)
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

/// `GET /api/control`: whether the token is good (the page shows controls only then).
pub async fn check(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if authorized(&st, &headers) {
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({ "controls": true })),
        )
            .into_response()
    } else {
        refused()
    }
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
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&st, &headers) {
        tracing::info!(%from, node = %name, "refused a dashboard control without the token");
        return refused();
    }
    let action = match serde_json::from_slice::<NodeControl>(&body) {
        Ok(c) => c.action,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                "error",
                &format!(
                    "expected {{\"action\": \"stay|nostay|lstay|block|noblock|quiet|noquiet|expel|bring\"}}: {e}"
                ),
            );
        }
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
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&st, &headers) {
        tracing::info!(%from, job = %id, "refused a dashboard move without the token");
        return refused();
    }
    let to = match serde_json::from_slice::<Move>(&body) {
        Ok(m) if m.to == "home" => Target::Home,
        Ok(m) => Target::Node(m.to),
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                "error",
                &format!("expected {{\"to\": \"<node>\" or \"home\"}}: {e}"),
            );
        }
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
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&st, &headers) {
        tracing::info!(%from, %mac, "refused a dashboard approval without the token");
        return refused();
    }
    let a = match serde_json::from_slice::<Approve>(&body) {
        Ok(a) => a,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                "error",
                &format!(
                    "expected {{\"name\": \"<host name>\", \"ip\": \"<address>\" (optional)}}: {e}"
                ),
            );
        }
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
