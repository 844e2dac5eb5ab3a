//! Human output: aligned columns and aligned `label: value` blocks. Missing values print as `-`
//! so every row has every column and `awk`/`cut` still line up.

use std::fmt::Write as _;

/// Rows under a header, each column as wide as its widest cell.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    /// Adds a row; empty cells print as `-`.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.into_iter().map(|c| if c.is_empty() { "-".into() } else { c }).collect());
    }

    /// The table as text, two spaces between columns, no trailing spaces.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count());
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out
    }
}

/// `label:  value` lines with the values aligned.
#[derive(Default)]
pub struct Fields {
    lines: Vec<(&'static str, String)>,
}

impl Fields {
    /// Adds a line; an empty value prints as `-`.
    pub fn add(&mut self, label: &'static str, value: impl Into<String>) -> &mut Fields {
        let value = value.into();
        self.lines.push((label, if value.is_empty() { "-".into() } else { value }));
        self
    }

    /// The block as text.
    pub fn render(&self) -> String {
        let width = self.lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0) + 1;
        let mut out = String::new();
        for (label, value) in &self.lines {
            let _ = writeln!(out, "{:<width$} {value}", format!("{label}:"));
        }
        out
    }
}

/// An optional value as a cell.
pub fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Milliseconds as a short duration (`850ms`, `1.2s`).
pub fn millis(ms: Option<i64>) -> String {
    match ms {
        None => String::new(),
        Some(ms) if ms < 1000 => format!("{ms}ms"),
        Some(ms) => format!("{:.1}s", ms as f64 / 1000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell_and_empty_cells_show_a_dash() {
        let mut t = Table::new(&["NAME", "NEXT"]);
        t.row(vec!["a-long-name".into(), "2026-01-01T00:00:00.000Z".into()]);
        t.row(vec!["b".into(), String::new()]);
        assert_eq!(t.render(), "NAME         NEXT\na-long-name  2026-01-01T00:00:00.000Z\nb            -\n");
    }

    #[test]
    fn fields_align_their_values() {
        let mut f = Fields::default();
        f.add("name", "x").add("version", "3").add("body", "");
        assert_eq!(f.render(), "name:    x\nversion: 3\nbody:    -\n");
    }
}
