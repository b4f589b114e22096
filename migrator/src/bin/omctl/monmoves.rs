//! The migrations panel of `omctl mon`: per node, the moves out and in (and failed attempts)
//! in the cluster's kept history, beside the newest moves, newest first. Counting is pure; the
//! panel is drawn into a ratatui buffer with the plain-text table of [`table`].

use migrator::api::NodeInfo;
use migrator::migration::history::MoveEvent;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::widgets::{Block, Widget};

use crate::migrations::{self, Clock};
use crate::monview::put;
use crate::table::{self, Column};

/// Most rows inside the panel (a header and five lines): the bars keep the rest of the screen.
const MAX_ROWS: u16 = 6;
/// Narrowest room for the moves list beside the counts; below it only the counts are shown.
const MIN_MOVES_WIDTH: u16 = 24;

/// What the panel shows: the moves as last asked for (or why they are unknown), and the clock
/// their times are shown by.
#[derive(Debug, Clone)]
pub struct Panel {
    /// The cluster's moves, oldest first, or the problem asking for them.
    pub moves: Result<Vec<MoveEvent>, String>,
    /// Now and the local zone.
    pub clock: Clock,
}

impl Panel {
    /// Rows this panel would like beside `nodes`, borders included.
    pub fn wanted_height(&self, nodes: &[NodeInfo]) -> u16 {
        match &self.moves {
            Ok(m) => wanted_height(counts(nodes, m).len(), m.len()),
            Err(_) => wanted_height(0, 0),
        }
    }

    /// Draws it into `area`.
    pub fn draw(&self, nodes: &[NodeInfo], area: Rect, buf: &mut Buffer) {
        draw(nodes, &self.moves, self.clock, area, buf);
    }
}

/// One node's moves in the kept history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMoves {
    /// Node name (`*` prefix for this node, as under the bars).
    pub label: String,
    /// Moves that left it.
    pub out: usize,
    /// Moves that arrived.
    pub arrived: usize,
    /// Attempts from it that failed.
    pub failed: usize,
}

/// Counts for every non-observer node of `nodes` (in their order), then for any other node the
/// moves name (gone from the table since), by name.
pub fn counts(nodes: &[NodeInfo], moves: &[MoveEvent]) -> Vec<NodeMoves> {
    let mut names: Vec<(String, String)> = nodes
        .iter()
        .filter(|n| !n.observer)
        .map(|n| {
            let label = if n.is_self {
                format!("*{}", n.name)
            } else {
                n.name.clone()
            };
            (n.name.clone(), label)
        })
        .collect();
    let mut others: Vec<&str> = moves
        .iter()
        .flat_map(|e| [e.from.as_str(), e.to.as_str()])
        .filter(|m| !names.iter().any(|(n, _)| n == m))
        .collect();
    others.sort_unstable();
    others.dedup();
    names.extend(others.into_iter().map(|n| (n.to_owned(), n.to_owned())));
    names
        .into_iter()
        .map(|(name, label)| NodeMoves {
            label,
            out: moves.iter().filter(|e| e.ok && e.from == name).count(),
            arrived: moves.iter().filter(|e| e.ok && e.to == name).count(),
            failed: moves.iter().filter(|e| !e.ok && e.from == name).count(),
        })
        .collect()
}

/// Rows the panel would like, borders included, for `nodes` counted nodes and `moves` moves.
pub fn wanted_height(nodes: usize, moves: usize) -> u16 {
    let rows = u16::try_from(nodes.max(moves).max(1)).unwrap_or(u16::MAX);
    rows.saturating_add(1).min(MAX_ROWS) + 2
}

/// The counts as a table.
fn counts_text(counts: &[NodeMoves]) -> String {
    let rows: Vec<Vec<String>> = counts
        .iter()
        .map(|c| {
            vec![
                c.label.clone(),
                c.out.to_string(),
                c.arrived.to_string(),
                c.failed.to_string(),
            ]
        })
        .collect();
    let columns = [
        Column::left("NODE"),
        Column::right("OUT"),
        Column::right("IN"),
        Column::right("FAIL"),
    ];
    table::render(&columns, &rows)
}

/// The newest `n` moves, newest first, as a table.
fn recent_text(moves: &[MoveEvent], n: usize, clock: Clock) -> String {
    let rows: Vec<Vec<String>> = moves
        .iter()
        .rev()
        .take(n)
        .map(|e| {
            vec![
                clock.time(e),
                e.job.to_string(),
                format!("{}→{}", e.from, e.to),
                e.why.to_string(),
                if e.ok {
                    format!("ok {}ms", e.frozen_ms)
                } else {
                    migrations::result(e).to_owned()
                },
            ]
        })
        .collect();
    let columns = [
        Column::left("TIME"),
        Column::left("JOB"),
        Column::left("MOVE"),
        Column::left("WHY"),
        Column::left("RESULT"),
    ];
    table::render(&columns, &rows)
}

/// Writes the lines of `text` from (`x`, `area.y`) down, cut to `area`; a table longer than
/// the area ends with a line saying how many rows did not fit.
fn put_lines(buf: &mut Buffer, area: Rect, x: u16, text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    let room = usize::from(area.height);
    for (i, (y, line)) in (area.y..area.bottom()).zip(&lines).enumerate() {
        if i + 1 == room && lines.len() > room {
            let more = lines.len() - room + 1;
            put(buf, area, x, y, &format!("… {more} more"), Style::new());
            break;
        }
        put(buf, area, x, y, line, Style::new());
    }
}

/// Draws the panel for `moves` (or the reason they are unknown) into `area`.
fn draw(
    nodes: &[NodeInfo],
    moves: &Result<Vec<MoveEvent>, String>,
    clock: Clock,
    area: Rect,
    buf: &mut Buffer,
) {
    let title = match moves {
        Ok(m) => {
            let ok = m.iter().filter(|e| e.ok).count();
            format!(
                " migrations: {ok} moves, {} failed · newest first · ms: time frozen ",
                m.len() - ok
            )
        }
        Err(_) => " migrations ".to_owned(),
    };
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    block.render(area, buf);
    let moves = match moves {
        Ok(m) => m,
        Err(problem) => {
            put(buf, inner, inner.x, inner.y, problem, Style::new());
            return;
        }
    };
    let counts = counts_text(&counts(nodes, moves));
    put_lines(buf, inner, inner.x, &counts);
    let counts_width = counts.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    let x = inner
        .x
        .saturating_add(u16::try_from(counts_width).unwrap_or(u16::MAX))
        .saturating_add(3);
    if x >= inner.right() || inner.right() - x < MIN_MOVES_WIDTH {
        return;
    }
    if moves.is_empty() {
        put(
            buf,
            inner,
            x,
            inner.y,
            "no migrations in the kept history",
            Style::new(),
        );
        return;
    }
    let shown = usize::from(inner.height.saturating_sub(1));
    put_lines(buf, inner, x, &recent_text(moves, shown, clock));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::tests::{CLOCK, event};
    use crate::monview::buffer_text;
    use crate::nodes::{sort, tests::sample};

    fn nodes() -> Vec<NodeInfo> {
        let mut n = sample();
        sort(&mut n);
        n
    }

    fn moves() -> Vec<MoveEvent> {
        vec![
            event(1, "node1", "node2", 1, true),
            event(2, "node1", "node2", 2, false),
            event(3, "node2", "node1", 3, true),
            event(4, "node1", "node3", 4, true),
        ]
    }

    #[test]
    fn counts_per_node_skip_observers_and_keep_gone_nodes() {
        let c = counts(&nodes(), &moves());
        let got: Vec<(&str, usize, usize, usize)> = c
            .iter()
            .map(|n| (n.label.as_str(), n.out, n.arrived, n.failed))
            .collect();
        assert_eq!(
            got,
            [("*node1", 2, 1, 1), ("node2", 1, 1, 0), ("node3", 0, 1, 0)]
        );
    }

    #[test]
    fn height_grows_with_rows_up_to_a_limit() {
        assert_eq!(wanted_height(0, 0), 4);
        assert_eq!(wanted_height(3, 1), 6);
        assert_eq!(wanted_height(2, 50), 8);
    }

    #[test]
    fn panel_shows_counts_and_newest_moves_first() {
        let mut buf = Buffer::empty(Rect::new(0, 0, 80, 7));
        draw(&nodes(), &Ok(moves()), CLOCK, buf.area, &mut buf);
        let text = buffer_text(&buf);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("migrations: 3 moves, 1 failed"), "{text}");
        assert!(
            lines[1].contains("NODE") && lines[1].contains("TIME"),
            "{text}"
        );
        assert!(lines[2].starts_with("│*node1    2   1     1"), "{text}");
        // Four rows of moves fit; the newest is first.
        assert!(
            lines[2].contains("14:00:04  node1.4  node1→node3  load    ok 1351ms"),
            "{text}"
        );
        assert!(lines[5].contains("node1.1"), "{text}");
        assert!(lines.iter().all(|l| l.chars().count() <= 80));
    }

    #[test]
    fn narrow_panels_keep_the_counts_and_problems_are_shown() {
        let mut buf = Buffer::empty(Rect::new(0, 0, 30, 6));
        draw(&nodes(), &Ok(moves()), CLOCK, buf.area, &mut buf);
        let text = buffer_text(&buf);
        assert!(text.contains("node3") && !text.contains("TIME"), "{text}");

        let mut buf = Buffer::empty(Rect::new(0, 0, 60, 4));
        draw(&nodes(), &Ok(Vec::new()), CLOCK, buf.area, &mut buf);
        let text = buffer_text(&buf);
        assert!(text.contains("no migrations in the kept history"), "{text}");
        assert!(text.contains("… 2 more"), "{text}");

        let mut buf = Buffer::empty(Rect::new(0, 0, 60, 4));
        draw(&nodes(), &Err("omd: no".into()), CLOCK, buf.area, &mut buf);
        assert!(buffer_text(&buf).contains("│omd: no"));
    }
}
