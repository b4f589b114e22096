//! The terminal for the live monitor: raw mode, alternate screen, hidden cursor, and their undoing
//! on every way out (return, error, panic), so a crash never leaves the user's shell unusable.

use std::io::{IsTerminal, Stdout, stdout};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use crossterm::cursor::{Hide, Show};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

/// Whether the terminal is currently set up. Restoring twice is not harmless: leaving the
/// alternate screen again moves the cursor back to where it was saved, over the panic message
/// the first restore made readable.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The set-up terminal; dropping it restores the user's terminal.
#[derive(Debug)]
pub struct Term {
    /// The ratatui terminal drawing to stdout.
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Term {
    /// Puts the terminal into full-screen mode. Fails (restoring what was done) when stdout is not
    /// a terminal, pointing at `--once`.
    pub fn enter() -> Result<Self> {
        if !stdout().is_terminal() {
            bail!("omctl mon needs a terminal; for plain text use `omctl mon --once`");
        }
        install_panic_hook();
        ACTIVE.store(true, Ordering::SeqCst);
        // From here on any failure must undo the half-done set-up; `restore` runs only once.
        let setup = || -> Result<Terminal<CrosstermBackend<Stdout>>> {
            enable_raw_mode().context("switching the terminal to raw mode")?;
            execute!(stdout(), EnterAlternateScreen, Hide)
                .context("entering the alternate screen")?;
            Terminal::new(CrosstermBackend::new(stdout())).context("setting up the terminal")
        };
        match setup() {
            Ok(terminal) => Ok(Self { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves raw mode and the alternate screen and shows the cursor, once per [`Term::enter`]. Errors
/// are ignored: this runs on the way out, often already because of an error, with nobody to tell.
pub fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let _ = disable_raw_mode();
    let _ = execute!(stdout(), LeaveAlternateScreen, Show);
}

/// Restores the terminal before the default hook prints the panic, so the message is readable
/// (on the normal screen, with newlines that work) and the shell is usable afterwards.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}
