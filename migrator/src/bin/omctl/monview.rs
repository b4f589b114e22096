//! One frame of `omctl mon`, drawn into a ratatui [`Buffer`]: header (view, node count, balance),
//! a bar per node (vertical like mosmon when they fit, else horizontal), the migrations panel
//! when there is room ([`monmoves`](crate::monmoves)), key help and status.
//! The live monitor and `mon --once` both draw with this; no terminal I/O here.

use migrator::api::{MemberState, NodeInfo};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Widget};

use crate::balance;
use crate::bars::{self, Bar, Chart, Class, View};
use crate::monmoves::Panel;
use crate::units;

/// Eighth blocks, bottom-up, for the partial top cell of a vertical bar.
const VERTICAL_EIGHTHS: [&str; 9] = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];
/// Eighth blocks, left to right, for the partial end cell of a horizontal bar.
const HORIZONTAL_EIGHTHS: [&str; 9] = [" ", "▏", "▎", "▍", "▌", "▋", "▊", "▉", "█"];
/// Narrowest column that still shows a readable name under a vertical bar.
const MIN_SLOT: u16 = 8;
/// Widest vertical bar; wider ones just look like walls.
const MAX_BAR: u16 = 9;
/// Rows the bar chart keeps (border included) before the migrations panel may take any.
const MIN_CHART: u16 = 8;

/// What the monitor shows.
#[derive(Debug, Clone)]
pub struct Screen {
    /// Current view.
    pub view: View,
    /// Latest node table, in display order.
    pub nodes: Vec<NodeInfo>,
    /// A problem to show in the status line (e.g. omd unreachable), if any.
    pub status: Option<String>,
    /// The cluster's moves, once asked for; `None` leaves the whole body to the bars.
    pub moves: Option<Panel>,
}

impl Widget for &Screen {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.height < 3 || area.width < 20 {
            Line::from("omctl mon: window too small").render(area, buf);
            return;
        }
        let header = Rect { height: 1, ..area };
        let footer = Rect {
            y: area.bottom() - 1,
            height: 1,
            ..area
        };
        let mut body = Rect {
            y: area.y + 1,
            height: area.height - 2,
            ..area
        };
        if let Some(panel) = &self.moves {
            let wanted = panel.wanted_height(&self.nodes);
            let height = wanted.min(body.height.saturating_sub(MIN_CHART));
            if height >= 4 {
                body.height -= height;
                let area = Rect {
                    y: body.bottom(),
                    height,
                    ..body
                };
                panel.draw(&self.nodes, area, buf);
            }
        }
        header_line(self).render(header, buf);
        footer_line(self).render(footer, buf);

        let chart = bars::chart(&self.nodes, self.view);
        let block = Block::bordered().title(format!(
            " {}: {} · full bar = {} ",
            self.view.name(),
            self.view.legend(),
            chart.top
        ));
        let inner = block.inner(body);
        block.render(body, buf);
        draw_chart(&chart, inner, buf);
    }
}

/// View, node count and balance.
fn header_line(s: &Screen) -> Line<'static> {
    let (alive, total) = balance::counts(&s.nodes);
    let suspect = s
        .nodes
        .iter()
        .filter(|n| n.state == MemberState::Suspect)
        .count();
    let suspect = if suspect > 0 {
        format!(" ({suspect} suspect)")
    } else {
        String::new()
    };
    let balance =
        balance::cluster_balance(&s.nodes).map_or_else(|| "n/a".to_owned(), units::percent);
    Line::from(vec![
        Span::styled("omctl mon", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!("  view: {}", s.view.name())),
        Span::raw(format!("  nodes: {alive}/{total} alive{suspect}")),
        Span::raw(format!("  balance: {balance}")),
    ])
}

/// Keys, or the current problem.
fn footer_line(s: &Screen) -> Line<'static> {
    match &s.status {
        Some(problem) => Line::from(Span::styled(
            problem.clone(),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        )),
        None => Line::from("l load  s speed  m memory  u utilisation  q quit   (* = this node)"),
    }
}

/// Draws bars vertically when every node gets a readable column, else one row per node.
pub fn draw_chart(chart: &Chart, area: Rect, buf: &mut Buffer) {
    if chart.bars.is_empty() {
        Line::from("no nodes yet").render(area, buf);
        return;
    }
    let n = u16::try_from(chart.bars.len()).unwrap_or(u16::MAX);
    if area.width / n >= MIN_SLOT && area.height >= 4 {
        draw_vertical(chart, area, buf);
    } else {
        draw_horizontal(chart, area, buf);
    }
}

fn draw_vertical(chart: &Chart, area: Rect, buf: &mut Buffer) {
    let n = u16::try_from(chart.bars.len()).unwrap_or(u16::MAX);
    let slot = area.width / n;
    let bar_width = (slot - 2).clamp(1, MAX_BAR);
    // One row for the figure above the tallest bar, one for the name below.
    let max_rows = area.height - 2;
    let label_y = area.bottom() - 1;
    for (i, bar) in (0..n).zip(&chart.bars) {
        let slot_x = area.x + i * slot;
        let bar_x = slot_x + (slot - bar_width) / 2;
        let (full, partial) = cells(bar.fraction, max_rows);
        let style = bar_style(bar.class);
        for row in 0..full {
            fill(buf, bar_x, label_y - 1 - row, bar_width, "█", style);
        }
        if partial > 0 {
            fill(
                buf,
                bar_x,
                label_y - 1 - full,
                bar_width,
                VERTICAL_EIGHTHS[partial],
                style,
            );
        }
        let top_row = full + u16::from(partial > 0);
        let text_y = label_y - 1 - top_row.min(max_rows);
        centered(buf, slot_x, text_y, slot, &bar.text, text_style(bar.class));
        centered(
            buf,
            slot_x,
            label_y,
            slot,
            &bar.label,
            label_style(bar.class),
        );
    }
}

fn draw_horizontal(chart: &Chart, area: Rect, buf: &mut Buffer) {
    let widest = |f: fn(&Bar) -> &str| {
        let w = chart.bars.iter().map(|b| f(b).chars().count()).max();
        u16::try_from(w.unwrap_or(0)).unwrap_or(u16::MAX)
    };
    // Names get at most a third of the width, so the bars stay visible next to long names.
    let name_width = widest(|b| &b.label).min(20).min(area.width / 3);
    let detail_width = widest(|b| &b.detail);
    let shown = usize::from(area.height);
    for (row, bar) in (0..area.height).zip(&chart.bars) {
        let y = area.y + row;
        // Rows left over: say how many nodes did not fit rather than silently dropping them.
        if usize::from(row) + 1 == shown && chart.bars.len() > shown {
            let more = chart.bars.len() - shown + 1;
            put(
                buf,
                area,
                area.x,
                y,
                &format!("… {more} more nodes"),
                Style::new(),
            );
            break;
        }
        let name = bar
            .label
            .chars()
            .take(usize::from(name_width))
            .collect::<String>();
        put(buf, area, area.x, y, &name, label_style(bar.class));
        let bar_x = area.x + name_width + 1;
        let room = area.width.saturating_sub(name_width + 1);
        // Prefer the long figure; fall back to the short one on narrow screens.
        let (text, text_width) = if detail_width.saturating_add(12) <= room {
            (&bar.detail, detail_width)
        } else {
            let w = u16::try_from(bar.text.chars().count()).unwrap_or(room);
            (&bar.text, w)
        };
        let bar_len = room.saturating_sub(text_width.saturating_add(1));
        let (full, partial) = cells(bar.fraction, bar_len);
        let style = bar_style(bar.class);
        fill(buf, bar_x, y, full, "█", style);
        if partial > 0 {
            fill(buf, bar_x + full, y, 1, HORIZONTAL_EIGHTHS[partial], style);
        }
        let text_x = bar_x.saturating_add(bar_len).saturating_add(1);
        put(buf, area, text_x, y, text, text_style(bar.class));
    }
}

/// Writes `text` at (`x`, `y`), cut at the right edge of `area` (not just of the buffer: the
/// chart's border is in the same buffer).
pub fn put(buf: &mut Buffer, area: Rect, x: u16, y: u16, text: &str, style: Style) {
    if x < area.right() && y < area.bottom() {
        buf.set_stringn(x, y, text, usize::from(area.right() - x), style);
    }
}

/// A bar of `fraction` over `len` cells: whole cells and the eighths (0..8) of the next one.
pub fn cells(fraction: f64, len: u16) -> (u16, usize) {
    let eighths = (fraction.clamp(0.0, 1.0) * f64::from(len) * 8.0).round();
    // Bounded by len * 8 ≤ 524280 by the clamp above, so the cast is exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let eighths = eighths as u32;
    let full = u16::try_from(eighths / 8).unwrap_or(len);
    let partial = usize::try_from(eighths % 8).unwrap_or(0);
    (full, partial)
}

fn fill(buf: &mut Buffer, x: u16, y: u16, width: u16, symbol: &str, style: Style) {
    for dx in 0..width {
        if let Some(cell) = buf.cell_mut((x + dx, y)) {
            cell.set_symbol(symbol).set_style(style);
        }
    }
}

/// Writes `text` centred in `width` cells from `x`, cut to fit.
fn centered(buf: &mut Buffer, x: u16, y: u16, width: u16, text: &str, style: Style) {
    let len = u16::try_from(text.chars().count()).unwrap_or(u16::MAX);
    let pad = width.saturating_sub(len) / 2;
    buf.set_stringn(x + pad, y, text, usize::from(width), style);
}

fn bar_style(class: Class) -> Style {
    Style::new().fg(match class {
        Class::Ok => Color::Green,
        Class::Busy => Color::Yellow,
        Class::Over => Color::Red,
        Class::Suspect => Color::Magenta,
        Class::Dead | Class::NoData => Color::DarkGray,
    })
}

fn text_style(class: Class) -> Style {
    match class {
        Class::Dead | Class::NoData => Style::new().fg(Color::DarkGray),
        _ => Style::new().add_modifier(Modifier::BOLD),
    }
}

fn label_style(class: Class) -> Style {
    match class {
        Class::Dead => Style::new().fg(Color::DarkGray),
        Class::Suspect => Style::new().fg(Color::Magenta),
        _ => Style::new(),
    }
}

/// A buffer as plain text, one line per row, trailing blanks trimmed (for `--once` and tests).
pub fn buffer_text(buf: &Buffer) -> String {
    let mut out = String::new();
    let width = usize::from(buf.area.width).max(1);
    for row in buf.content.chunks(width) {
        let line: String = row.iter().map(|c| c.symbol()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Draws `screen` into a fresh `width`×`height` buffer and returns its text.
pub fn render_text(screen: &Screen, width: u16, height: u16) -> String {
    let mut buf = Buffer::empty(Rect::new(0, 0, width, height));
    screen.render(buf.area, &mut buf);
    buffer_text(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::{sort, tests::sample};

    fn screen(view: View) -> Screen {
        let mut nodes = sample();
        sort(&mut nodes);
        Screen {
            view,
            nodes,
            status: None,
            moves: None,
        }
    }

    #[test]
    fn bar_cells() {
        assert_eq!(cells(0.0, 10), (0, 0));
        assert_eq!(cells(1.0, 10), (10, 0));
        assert_eq!(cells(0.25, 10), (2, 4));
        assert_eq!(cells(2.0, 3), (3, 0));
        assert_eq!(cells(0.5, 0), (0, 0));
    }

    #[test]
    fn vertical_frame() {
        let text = render_text(&screen(View::Load), 60, 14);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 14);
        assert!(lines[0].contains("nodes: 2/3 alive"), "{text}");
        assert!(lines[0].contains("balance: 100%"), "{text}");
        assert!(
            lines[1].contains("load: 1.0 = one standard CPU busy"),
            "{text}"
        );
        // Names sit on the last row inside the border.
        for name in ["*node1", "master", "node2"] {
            assert!(lines[11].contains(name), "{name} missing:\n{text}");
        }
        for figure in ["0.25", "obs", "dead"] {
            assert!(text.contains(figure), "{figure} missing:\n{text}");
        }
        // 10 inner rows leave 8 for bars; a quarter is 2 rows of node1's 9-wide bar, the
        // figure just above them.
        assert_eq!(text.matches('█').count(), 2 * 9, "{text}");
        assert!(
            lines[9].contains('█') && lines[8].contains("0.25"),
            "{text}"
        );
        assert!(!lines[7].contains('█'), "{text}");
        assert!(lines[13].starts_with("l load"), "{text}");
    }

    #[test]
    fn horizontal_when_columns_are_too_narrow() {
        let text = render_text(&screen(View::Mem), 25, 8);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[2].starts_with("│*node1"), "{text}");
        assert!(lines[2].contains("50%"), "{text}");
        assert!(
            lines[3].contains("master") && lines[3].contains("obs"),
            "{text}"
        );
        assert!(
            lines[4].contains("node2") && lines[4].contains("dead"),
            "{text}"
        );
    }

    #[test]
    fn horizontal_shows_details_when_wide() {
        let mut s = screen(View::Mem);
        s.nodes.truncate(1);
        let mut buf = Buffer::empty(Rect::new(0, 0, 60, 1));
        draw_horizontal(&bars::chart(&s.nodes, s.view), buf.area, &mut buf);
        let text = buffer_text(&buf);
        assert!(text.starts_with("*node1 "), "{text}");
        assert!(text.trim_end().ends_with("1.0G used, 1.0G free"), "{text}");
    }

    #[test]
    fn too_many_nodes_says_so() {
        let mut s = screen(View::Load);
        let extra = s.nodes.clone();
        for _ in 0..3 {
            s.nodes.extend(extra.clone());
        }
        let mut buf = Buffer::empty(Rect::new(0, 0, 40, 4));
        draw_horizontal(&bars::chart(&s.nodes, s.view), buf.area, &mut buf);
        assert!(buffer_text(&buf).contains("… 9 more nodes"));
    }

    #[test]
    fn status_replaces_key_help() {
        let mut s = screen(View::Util);
        s.status = Some("cannot reach omd".into());
        let text = render_text(&s, 60, 10);
        assert!(text.lines().last().is_some_and(|l| l == "cannot reach omd"));
        assert!(text.contains("25%"), "{text}");
    }

    #[test]
    fn partial_cells_use_eighths() {
        let mut s = screen(View::Load);
        s.nodes.truncate(1);
        if let Some(l) = s.nodes[0].load.as_mut() {
            l.load = 0.3;
        }
        // 8 bar rows × 0.3 = 2.4 rows: two full rows and 3/8 of the next.
        let text = render_text(&s, 30, 14);
        assert_eq!(text.matches('█').count(), 2 * 9, "{text}");
        assert_eq!(text.matches('▃').count(), 9, "{text}");
    }

    #[test]
    fn any_size_stays_inside_its_border() {
        let mut s = screen(View::Mem);
        s.nodes[1].name = "a-very-long-node-name-that-goes-on-and-on".into();
        let base = s.nodes.clone();
        for count in [1, 3, 9, 30] {
            s.nodes = base.iter().cycle().take(count).cloned().collect();
            for width in (20..=120).step_by(7) {
                for height in 3..=20 {
                    let text = render_text(&s, width, height);
                    // Every row between the border lines ends with the right border.
                    for line in text
                        .lines()
                        .skip(2)
                        .take(usize::from(height).saturating_sub(4))
                    {
                        assert!(
                            line.ends_with('│'),
                            "{count} nodes {width}x{height}:\n{text}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn suspects_are_counted_apart() {
        let mut s = screen(View::Load);
        s.nodes[0].state = MemberState::Suspect;
        let text = render_text(&s, 80, 12);
        assert!(text.contains("nodes: 1/3 alive (1 suspect)"), "{text}");
    }

    #[test]
    fn the_moves_panel_takes_rows_only_when_the_bars_keep_enough() {
        use crate::migrations::tests::{CLOCK, event};
        let mut s = screen(View::Load);
        s.moves = Some(Panel {
            moves: Ok(vec![event(1, "node1", "node2", 1, true)]),
            clock: CLOCK,
        });
        let text = render_text(&s, 80, 24);
        let lines: Vec<&str> = text.lines().collect();
        // Two counted nodes and a header: a panel of 5 rows above the key help.
        assert!(lines[18].starts_with("┌ migrations: 1 moves"), "{text}");
        assert!(lines[20].starts_with("│*node1    1   0"), "{text}");
        assert!(
            lines[22].starts_with('└') && lines[17].starts_with('└'),
            "{text}"
        );
        // Too short for both: the bars keep the screen.
        let text = render_text(&s, 80, 12);
        assert!(!text.contains("migrations"), "{text}");
        assert!(text.contains("*node1"), "{text}");
        // Whatever the size, every row of the panel stays inside its border.
        for height in 3..=30 {
            for width in [20, 33, 80, 120] {
                let text = render_text(&s, width, height);
                for line in text.lines().filter(|l| l.starts_with('│')) {
                    assert!(line.ends_with('│'), "{width}x{height}:\n{text}");
                }
            }
        }
    }

    #[test]
    fn tiny_window() {
        assert_eq!(render_text(&screen(View::Load), 10, 2), "omctl mon:\n\n");
    }
}
