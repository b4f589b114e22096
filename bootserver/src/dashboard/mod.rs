//! The cluster in a browser: a single page served at `/` (its assets compiled in, nothing to
//! install, no CDN), live over Server-Sent Events from one [`feed`] task, read-only unless a
//! request carries the root-only [`token`]; its controls use the nodes' own peer requests.
//!
//! Routes: `/`, `/dashboard/{app.js,style.css}`, `/api/events` (SSE: `snapshot`, `sample`),
//! `/api/dashboard`, `/api/history`, and with the token `/api/control`,
//! `POST /api/nodes/{name}/control`, `POST /api/jobs/{id}/migrate`,
//! `POST /api/pending/{mac}/approve`.

pub mod controls;
pub mod feed;
pub mod history;
pub mod snapshot;
pub mod token;
pub mod users;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::broadcast::error::RecvError;

pub use feed::Dashboard;

use crate::http::AppState;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// Scripts, styles and connections from this server only: a job's command line shown on the
/// page can never run as script.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The dashboard's routes; the controls behind the token guard, which needs `state`.
pub fn routes(state: &AppState) -> Router<AppState> {
    let controls = Router::new()
        .route("/api/control", get(controls::check))
        .route("/api/nodes/{name}/control", post(controls::node))
        .route("/api/jobs/{id}/migrate", post(controls::migrate))
        .route("/api/pending/{mac}/approve", post(controls::approve))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            controls::require_token,
        ));
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/dashboard/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/dashboard/style.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/api/events", get(events))
        .route("/api/dashboard", get(current))
        .route("/api/history", get(history))
        .merge(controls)
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut r = ([(header::CONTENT_TYPE, kind)], body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn json(body: Arc<str>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn current(State(st): State<AppState>) -> Response {
    let d = &st.dashboard;
    d.asked_at.store(feed::now_ms(), Ordering::Relaxed);
    json(d.snapshot.borrow().clone())
}

async fn history(State(st): State<AppState>) -> Response {
    let text = {
        let h = st
            .dashboard
            .history
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        serde_json::to_string(&*h).unwrap_or_default()
    };
    json(Arc::from(text))
}

/// The live stream: the current snapshot at once, then each new one and each history sample.
async fn events(State(st): State<AppState>) -> Response {
    let d = &st.dashboard;
    let Ok(permit) = d.viewers.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} dashboards are open already; close one and reload\n",
                feed::MAX_VIEWERS
            ),
        )
            .into_response();
    };
    let mut snap = d.snapshot.subscribe();
    snap.mark_changed();
    let samples = d.samples.subscribe();
    let stream = futures_lite::stream::unfold(
        (snap, samples, permit),
        |(mut snap, mut samples, permit)| async move {
            let event = loop {
                tokio::select! {
                    changed = snap.changed() => {
                        changed.ok()?;
                        let data = snap.borrow_and_update().clone();
                        break Event::default().event("snapshot").data(&*data);
                    }
                    sample = samples.recv() => match sample {
                        Ok(data) => break Event::default().event("sample").data(&*data),
                        // A slow reader skips samples; its next history load fills the gap.
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => return None,
                    },
                }
            };
            Some((Ok::<_, Infallible>(event), (snap, samples, permit)))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
