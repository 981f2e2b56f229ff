//! The input box's layout: its text broken into rows (at line breaks, and wherever a
//! line is wider than the box), and where the cursor is. The box grows with its text up
//! to [`MAX_ROWS`], then scrolls to keep the cursor's row in view.

use unicode_width::UnicodeWidthChar;

/// The most rows the input box takes; longer text scrolls inside it.
pub const MAX_ROWS: usize = 5;

/// The rows of the input and the cursor's place among them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputLayout {
    /// Every row's text, without the prompt.
    pub rows: Vec<String>,
    /// The cursor's row.
    pub cursor_row: usize,
    /// The cursor's column within its row's text.
    pub cursor_col: usize,
}

impl InputLayout {
    /// Breaks `chars` into rows of at most `avail` columns (at least 1). A line break
    /// starts a new row; a character that does not fit starts one too.
    pub fn new(chars: &[char], cursor: usize, avail: usize) -> InputLayout {
        let avail = avail.max(1);
        let mut rows = vec![String::new()];
        let mut used = 0;
        let (mut cursor_row, mut cursor_col) = (0, 0);
        for (i, &c) in chars.iter().enumerate() {
            if i == cursor {
                (cursor_row, cursor_col) = (rows.len() - 1, used);
            }
            if c == '\n' {
                rows.push(String::new());
                used = 0;
                continue;
            }
            let w = c.width().unwrap_or(0);
            if used + w > avail && used > 0 {
                rows.push(String::new());
                used = 0;
                if i == cursor {
                    (cursor_row, cursor_col) = (rows.len() - 1, 0);
                }
            }
            if let Some(row) = rows.last_mut() {
                row.push(c);
            }
            used += w;
        }
        if cursor >= chars.len() {
            // After the last character: at the end of the last row, or at the start of a
            // fresh one when that row is full.
            if used >= avail && chars.last().is_some_and(|c| *c != '\n') {
                rows.push(String::new());
                used = 0;
            }
            (cursor_row, cursor_col) = (rows.len() - 1, used);
        }
        InputLayout { rows, cursor_row, cursor_col }
    }

    /// How many rows the box shows.
    pub fn height(&self) -> usize {
        self.rows.len().clamp(1, MAX_ROWS)
    }

    /// The first row shown, so that the cursor's row is in view.
    pub fn first_shown(&self) -> usize {
        let height = self.height();
        (self.cursor_row + 1).saturating_sub(height).min(self.rows.len().saturating_sub(height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(text: &str, cursor: usize, avail: usize) -> InputLayout {
        let chars: Vec<char> = text.chars().collect();
        InputLayout::new(&chars, cursor, avail)
    }

    #[test]
    fn line_breaks_and_long_lines_make_rows() {
        let l = layout("one\ntwo three", 13, 5);
        assert_eq!(l.rows, ["one", "two t", "hree"]);
        assert_eq!((l.cursor_row, l.cursor_col), (2, 4));
        assert_eq!(l.height(), 3);
        let l = layout("one\n", 4, 5);
        assert_eq!(l.rows, ["one", ""]);
        assert_eq!((l.cursor_row, l.cursor_col), (1, 0));
        let l = layout("abcde", 5, 5);
        assert_eq!(l.rows, ["abcde", ""], "a full row: the cursor goes to the next one");
        assert_eq!((l.cursor_row, l.cursor_col), (1, 0));
        let l = layout("abcdef", 5, 5);
        assert_eq!((l.cursor_row, l.cursor_col), (1, 0), "on the character that wrapped");
    }

    #[test]
    fn wide_characters_wrap_whole() {
        let l = layout("日本語", 3, 5);
        assert_eq!(l.rows, ["日本", "語"]);
        assert_eq!((l.cursor_row, l.cursor_col), (1, 2));
    }

    #[test]
    fn the_box_grows_then_scrolls_to_the_cursor() {
        let text = "1\n2\n3\n4\n5\n6\n7";
        let end = layout(text, 13, 10);
        assert_eq!(end.height(), MAX_ROWS);
        assert_eq!(end.first_shown(), 2, "rows 3 to 7, the cursor's on the last");
        let top = layout(text, 0, 10);
        assert_eq!(top.first_shown(), 0);
        assert_eq!(layout("", 0, 10).rows, [""]);
    }
}
