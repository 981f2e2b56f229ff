//! Word wrapping of styled text into rows of a fixed width.
//!
//! The scrollback needs to know how many rows each entry takes to anchor the view to the
//! newest line and to scroll by rows, so it wraps itself instead of leaving it to
//! ratatui's `Paragraph`. Widths are display columns (CJK and emoji count double).

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthChar;

type Cell = (char, Style);

/// Wraps `spans` into lines at most `width` columns wide; continuation lines start with
/// `indent` spaces. Words longer than a line are split.
pub fn wrap(spans: &[Span<'_>], width: usize, indent: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let indent = if indent + 1 > width { 0 } else { indent };
    let cells: Vec<Cell> = spans.iter().flat_map(|s| s.content.chars().map(move |c| (c, s.style))).collect();
    let mut rows = Rows { rows: vec![Vec::new()], used: 0, avail: width, next: width - indent };
    for word in words(&cells) {
        let word_width: usize = word.iter().map(|(c, _)| char_width(*c)).sum();
        if word.first().is_some_and(|(c, _)| *c == ' ') {
            if rows.used + word_width <= rows.avail {
                rows.extend(word, word_width);
            } else {
                rows.newline(); // the space is swallowed by the break
            }
            continue;
        }
        if rows.used + word_width > rows.avail && rows.used > 0 && word_width <= rows.next {
            rows.newline();
        }
        for &cell in word {
            let w = char_width(cell.0);
            if rows.used + w > rows.avail && rows.used > 0 {
                rows.newline();
            }
            rows.extend(&[cell], w);
        }
    }
    rows.rows
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let mut spans: Vec<Span<'static>> = Vec::new();
            if i > 0 && indent > 0 {
                spans.push(Span::raw(" ".repeat(indent)));
            }
            for (c, style) in row {
                match spans.last_mut() {
                    Some(last) if last.style == style => last.content.to_mut().push(c),
                    _ => spans.push(Span::styled(c.to_string(), style)),
                }
            }
            Line::from(spans)
        })
        .collect()
}

/// Rows being filled.
struct Rows {
    rows: Vec<Vec<Cell>>,
    /// Columns used in the current row.
    used: usize,
    /// Columns available in the current row.
    avail: usize,
    /// Columns available in continuation rows.
    next: usize,
}

impl Rows {
    fn newline(&mut self) {
        if let Some(row) = self.rows.last_mut() {
            while row.last().is_some_and(|(c, _)| *c == ' ') {
                row.pop();
            }
        }
        self.rows.push(Vec::new());
        self.used = 0;
        self.avail = self.next;
    }

    fn extend(&mut self, cells: &[Cell], width: usize) {
        if let Some(row) = self.rows.last_mut() {
            row.extend_from_slice(cells);
        }
        self.used += width;
    }
}

/// Control characters are shown as nothing; everything else by its display width.
fn char_width(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// Splits into runs of spaces and runs of non-spaces.
fn words(cells: &[Cell]) -> Vec<&[Cell]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=cells.len() {
        let boundary = i == cells.len() || (cells[i].0 == ' ') != (cells[i - 1].0 == ' ');
        if boundary && start < i {
            out.push(&cells[start..i]);
            start = i;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: &[Line<'_>]) -> Vec<String> {
        lines.iter().map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect()).collect()
    }

    #[test]
    fn wraps_at_word_boundaries_with_indent() {
        let lines = wrap(&[Span::raw("12:00 "), Span::raw("hello there big world")], 14, 6);
        assert_eq!(text(&lines), vec!["12:00 hello", "      there", "      big", "      world"]);
    }

    #[test]
    fn splits_words_longer_than_a_line() {
        let lines = wrap(&[Span::raw("abcdefghij")], 4, 0);
        assert_eq!(text(&lines), vec!["abcd", "efgh", "ij"]);
    }

    #[test]
    fn counts_wide_characters_double() {
        let lines = wrap(&[Span::raw("日本語です")], 4, 0);
        assert_eq!(text(&lines), vec!["日本", "語で", "す"]);
    }

    #[test]
    fn keeps_styles_and_short_text_on_one_line() {
        let bold = Style::default().add_modifier(ratatui::style::Modifier::BOLD);
        let lines = wrap(&[Span::styled("Bob", bold), Span::raw(": hi")], 20, 2);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].spans.len(), 2);
        assert_eq!(lines[0].spans[0].style, bold);
        assert_eq!(wrap(&[], 10, 2).len(), 1, "an empty entry still takes a row");
    }
}
