//! Plain-text tables in the style of ps and mosctl: a header row, columns two spaces apart,
//! numbers right-aligned, no trailing blanks (so output diffs and greps cleanly).

/// Which side of its column a cell sticks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A column: its header and alignment.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Header text.
    pub header: &'static str,
    /// Alignment of header and cells.
    pub align: Align,
}

impl Column {
    /// A left-aligned column.
    pub const fn left(header: &'static str) -> Self {
        Self {
            header,
            align: Align::Left,
        }
    }

    /// A right-aligned column.
    pub const fn right(header: &'static str) -> Self {
        Self {
            header,
            align: Align::Right,
        }
    }
}

/// Renders `rows` under `columns`; each line ends with '\n'. Widths count chars, not bytes.
/// The last left-aligned column is not padded, so long commands do not drag blanks behind them.
pub fn render(columns: &[Column], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|c| c.header.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let headers: Vec<String> = columns.iter().map(|c| c.header.to_owned()).collect();
    let mut out = String::new();
    for row in std::iter::once(&headers).chain(rows) {
        let mut line = String::new();
        for (i, ((col, width), cell)) in columns.iter().zip(&widths).zip(row).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = width.saturating_sub(cell.chars().count());
            match col.align {
                Align::Left => {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
                Align::Right => {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Cuts every line to `width` chars, as ps does on a terminal (long command lines would wrap and
/// break the columns); pipes get full lines.
pub fn fit_width(text: &str, width: usize) -> String {
    text.lines()
        .map(|l| {
            let mut line: String = l.chars().take(width).collect();
            line.push('\n');
            line
        })
        .collect()
}

/// The terminal's width when stdout is a terminal.
pub fn terminal_width() -> Option<usize> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    crossterm::terminal::size()
        .ok()
        .map(|(w, _)| usize::from(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn aligns_and_trims() {
        let cols = [
            Column::left("NAME"),
            Column::right("LOAD"),
            Column::left("CMD"),
        ];
        let rows = vec![
            cells(&["node1", "0.50", "sleep 1"]),
            cells(&["n2", "12.00", "x"]),
        ];
        assert_eq!(
            render(&cols, &rows),
            "NAME    LOAD  CMD\n\
             node1   0.50  sleep 1\n\
             n2     12.00  x\n"
        );
    }

    #[test]
    fn cuts_to_width() {
        assert_eq!(fit_width("abcdef\nab\n", 3), "abc\nab\n");
        assert_eq!(fit_width("", 3), "");
    }

    #[test]
    fn header_only_when_empty() {
        assert_eq!(render(&[Column::left("PID")], &[]), "PID\n");
    }

    #[test]
    fn counts_chars_not_bytes() {
        let rows = vec![cells(&["é", "1"])];
        assert_eq!(
            render(&[Column::left("N"), Column::right("V")], &rows),
            "N  V\né  1\n"
        );
    }
}
