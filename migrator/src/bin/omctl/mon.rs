//! `omctl mon`: the live monitor (mosmon's successor). Polls omd every second on helper threads,
//! the node table and the cluster's moves apart, so keys stay responsive when omd is slow;
//! `--once` prints one frame as text instead.

use std::time::Duration;

use anyhow::{Context, Result};
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use migrator::api::NodeInfo;

use crate::bars::View;
use crate::client::Omd;
use crate::migrations::Clock;
use crate::monmoves::Panel;
use crate::monview::{Screen, render_text};
use crate::nodes::sort;
use crate::poll;
use crate::term::Term;

/// How often omd is asked for the table and the moves (its gossip moves once a second too).
const REFRESH: Duration = Duration::from_secs(1);
/// How long to wait for a key before redrawing.
const TICK: Duration = Duration::from_millis(200);

/// Prints one frame of `width`×`height` as plain text.
pub fn once(omd: &Omd, view: View, width: u16, height: u16) -> Result<()> {
    let screen = Screen {
        view,
        nodes: fetch(omd)?,
        status: None,
        moves: Some(moves(omd)),
    };
    print!("{}", render_text(&screen, width, height));
    Ok(())
}

/// Runs the full-screen monitor until `q`, Esc or Ctrl-C.
pub fn live(omd: &Omd, view: View) -> Result<()> {
    // Fail before touching the terminal when omd is not there at all: a plain error is clearer
    // than a screen that only says so.
    let nodes = fetch(omd)?;
    let mut screen = Screen {
        view,
        nodes,
        status: None,
        moves: None,
    };
    let updates = poll::every(omd.clone(), REFRESH, fetch);
    let move_updates = poll::every(omd.clone(), REFRESH, |omd| Ok(moves(omd)));
    let mut term = Term::enter()?;
    loop {
        if let Some(panel) = move_updates.try_iter().filter_map(Result::ok).last() {
            screen.moves = Some(panel);
        }
        for update in updates.try_iter() {
            match update {
                Ok(nodes) => {
                    screen.nodes = nodes;
                    screen.status = None;
                }
                // Keep the last table on screen; say why it is not moving.
                Err(problem) => screen.status = Some(format!("(retrying) {problem}")),
            }
        }
        term.terminal
            .draw(|frame| frame.render_widget(&screen, frame.area()))
            .context("drawing the monitor")?;
        if !event::poll(TICK).context("reading the keyboard")? {
            continue;
        }
        if let Event::Key(key) = event::read().context("reading the keyboard")? {
            if key.kind != KeyEventKind::Press {
                continue;
            }
            match key.code {
                KeyCode::Char('q') | KeyCode::Esc => break,
                // Raw mode turns Ctrl-C into a key; honour it as the user means it.
                KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => break,
                KeyCode::Char(c) => {
                    if let Some(v) = View::from_key(c) {
                        screen.view = v;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The node table in display order.
fn fetch(omd: &Omd) -> Result<Vec<NodeInfo>> {
    let mut nodes = omd.nodes()?;
    sort(&mut nodes);
    Ok(nodes)
}

/// The cluster's moves for the panel, or why they cannot be shown (an observer has none; an
/// older omd does not know the request).
fn moves(omd: &Omd) -> Panel {
    Panel {
        moves: omd.moves().map_err(|e| format!("{e:#}")),
        clock: Clock::local(),
    }
}
