//! The input box: a small editor with history, independent of any terminal. Its text
//! may span lines (a pasted paragraph, Alt-Enter): one submission is one message, line
//! breaks included.
//!
//! Positions are counted in `char`s, never bytes, so editing in the middle of
//! multi-byte text cannot split a character.

/// How many submitted lines are remembered for Up/Down.
const HISTORY_LIMIT: usize = 200;

/// An editable line plus the history of submitted lines.
#[derive(Clone, Debug, Default)]
pub struct LineEditor {
    chars: Vec<char>,
    cursor: usize,
    history: Vec<String>,
    /// While browsing history: the index shown, and the draft to return to.
    browsing: Option<(usize, String)>,
}

impl LineEditor {
    /// The current text.
    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }

    /// Whether the line is empty.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The cursor position, in chars from the start.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Inserts `c` at the cursor.
    pub fn insert(&mut self, c: char) {
        self.chars.insert(self.cursor, c);
        self.cursor += 1;
    }

    /// Inserts a line break at the cursor (Alt-Enter, Shift-Enter).
    pub fn newline(&mut self) {
        self.insert('\n');
    }

    /// Whether the text spans more than one line.
    pub fn is_multiline(&self) -> bool {
        self.chars.contains(&'\n')
    }

    /// Inserts pasted text at the cursor, keeping its line breaks: the paste becomes one
    /// message. Terminals send a pasted line break as CR, some as CRLF or LF: each of
    /// those is one break (`\n`). A tab becomes a space; other control characters
    /// (which the server refuses) are dropped.
    pub fn insert_str(&mut self, text: &str) {
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    self.newline();
                }
                '\n' => self.newline(),
                '\t' => self.insert(' '),
                c if c.is_control() => {}
                c => self.insert(c),
            }
        }
    }

    /// Deletes the char before the cursor. Returns whether anything changed.
    pub fn backspace(&mut self) -> bool {
        if self.cursor == 0 {
            return false;
        }
        self.cursor -= 1;
        self.chars.remove(self.cursor);
        true
    }

    /// Deletes the char under the cursor. Returns whether anything changed.
    pub fn delete(&mut self) -> bool {
        if self.cursor >= self.chars.len() {
            return false;
        }
        self.chars.remove(self.cursor);
        true
    }

    /// Moves one char left.
    pub fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }

    /// Moves one char right.
    pub fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.chars.len());
    }

    /// Where the cursor's line starts (a char index).
    fn line_start(&self) -> usize {
        self.chars[..self.cursor].iter().rposition(|c| *c == '\n').map_or(0, |i| i + 1)
    }

    /// Where the cursor's line ends (the index of its `\n`, or the end of the text).
    fn line_end(&self) -> usize {
        self.chars[self.cursor..]
            .iter()
            .position(|c| *c == '\n')
            .map_or(self.chars.len(), |i| self.cursor + i)
    }

    /// Moves to the start of the cursor's line.
    pub fn home(&mut self) {
        self.cursor = self.line_start();
    }

    /// Moves to the end of the cursor's line.
    pub fn end(&mut self) {
        self.cursor = self.line_end();
    }

    /// Moves to the same column of the line above. Returns `false` (and stays) on the
    /// first line, where Up recalls history instead.
    pub fn line_up(&mut self) -> bool {
        let start = self.line_start();
        if start == 0 {
            return false;
        }
        let column = self.cursor - start;
        let above_end = start - 1;
        let above_start = self.chars[..above_end].iter().rposition(|c| *c == '\n').map_or(0, |i| i + 1);
        self.cursor = above_start + column.min(above_end - above_start);
        true
    }

    /// Moves to the same column of the line below. Returns `false` (and stays) on the
    /// last line, where Down recalls history instead.
    pub fn line_down(&mut self) -> bool {
        let end = self.line_end();
        if end >= self.chars.len() {
            return false;
        }
        let column = self.cursor - self.line_start();
        let below_start = end + 1;
        let below_end = self.chars[below_start..]
            .iter()
            .position(|c| *c == '\n')
            .map_or(self.chars.len(), |i| below_start + i);
        self.cursor = below_start + column.min(below_end - below_start);
        true
    }

    /// Moves to the start of the previous word.
    pub fn word_left(&mut self) {
        while self.cursor > 0 && self.chars[self.cursor - 1].is_whitespace() {
            self.cursor -= 1;
        }
        while self.cursor > 0 && !self.chars[self.cursor - 1].is_whitespace() {
            self.cursor -= 1;
        }
    }

    /// Moves past the end of the next word.
    pub fn word_right(&mut self) {
        let len = self.chars.len();
        while self.cursor < len && self.chars[self.cursor].is_whitespace() {
            self.cursor += 1;
        }
        while self.cursor < len && !self.chars[self.cursor].is_whitespace() {
            self.cursor += 1;
        }
    }

    /// Deletes the word before the cursor (Ctrl-W). Returns whether anything changed.
    pub fn delete_word(&mut self) -> bool {
        let end = self.cursor;
        self.word_left();
        self.chars.drain(self.cursor..end);
        self.cursor != end
    }

    /// Deletes from the start of the cursor's line to the cursor (Ctrl-U).
    pub fn kill_to_start(&mut self) -> bool {
        let start = self.line_start();
        let changed = self.cursor > start;
        self.chars.drain(start..self.cursor);
        self.cursor = start;
        changed
    }

    /// Deletes from the cursor to the end of its line (Ctrl-K).
    pub fn kill_to_end(&mut self) -> bool {
        let end = self.line_end();
        let changed = self.cursor < end;
        self.chars.drain(self.cursor..end);
        changed
    }

    /// Shows the previous history entry (Up), keeping the draft for the way back.
    pub fn history_prev(&mut self) {
        let index = match &self.browsing {
            Some((0, _)) => return,
            Some((i, _)) => i - 1,
            None if self.history.is_empty() => return,
            None => {
                let draft = self.text();
                self.browsing = Some((self.history.len(), draft));
                self.history.len() - 1
            }
        };
        if let Some((shown, _)) = &mut self.browsing {
            *shown = index;
        }
        let line = self.history.get(index).cloned().unwrap_or_default();
        self.set(&line);
    }

    /// Shows the next history entry (Down), or the draft after the newest.
    pub fn history_next(&mut self) {
        let Some((index, draft)) = self.browsing.take() else { return };
        if index + 1 >= self.history.len() {
            self.set(&draft);
        } else {
            self.browsing = Some((index + 1, draft));
            let line = self.history.get(index + 1).cloned().unwrap_or_default();
            self.set(&line);
        }
    }

    /// Takes the line for submission, remembers it in the history and clears the editor.
    pub fn take(&mut self) -> String {
        let line = self.text();
        self.chars.clear();
        self.cursor = 0;
        self.browsing = None;
        if !line.trim().is_empty() && self.history.last() != Some(&line) {
            self.history.push(line.clone());
            if self.history.len() > HISTORY_LIMIT {
                self.history.remove(0);
            }
        }
        line
    }

    fn set(&mut self, text: &str) {
        self.chars = text.chars().collect();
        self.cursor = self.chars.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> LineEditor {
        let mut e = LineEditor::default();
        e.insert_str(text);
        e
    }

    #[test]
    fn edits_in_the_middle_of_multibyte_text() {
        let mut e = typed("héllo");
        e.left();
        e.left();
        e.insert('X');
        assert_eq!(e.text(), "hélXlo");
        assert!(e.backspace());
        e.home();
        assert!(!e.backspace());
        assert!(e.delete());
        assert_eq!(e.text(), "éllo");
        e.end();
        assert_eq!(e.cursor(), 4);
        assert!(!e.delete());
    }

    #[test]
    fn word_motions_and_kills() {
        let mut e = typed("one two  three");
        assert!(e.delete_word());
        assert_eq!(e.text(), "one two  ");
        e.word_left();
        assert_eq!(e.cursor(), 4);
        assert!(e.kill_to_end());
        assert_eq!(e.text(), "one ");
        e.home();
        e.word_right();
        assert_eq!(e.cursor(), 3);
        assert!(e.kill_to_start());
        assert_eq!(e.text(), " ");
    }

    #[test]
    fn a_paste_keeps_its_line_breaks() {
        assert_eq!(typed("a\r\nb\tc\u{7}").text(), "a\nb c");
        // What terminals send for a pasted line break: CR alone.
        assert_eq!(typed("line one\rline two").text(), "line one\nline two");
        assert_eq!(typed("x\r\r\ny\nz").text(), "x\n\ny\nz");
        assert!(typed("x\ry").is_multiline());
        assert!(!typed("x y").is_multiline());
    }

    #[test]
    fn lines_are_edited_and_walked_one_at_a_time() {
        let mut e = typed("first line\nsecond");
        assert_eq!(e.cursor(), 17);
        e.home();
        assert_eq!(e.cursor(), 11, "the start of the second line");
        assert!(e.line_up());
        assert_eq!(e.cursor(), 0);
        assert!(!e.line_up(), "no line above the first");
        e.end();
        assert_eq!(e.cursor(), 10);
        assert!(e.line_down());
        assert_eq!(e.cursor(), 17, "the column, clamped to the shorter line");
        assert!(!e.line_down());
        assert!(e.kill_to_start());
        assert_eq!(e.text(), "first line\n");
        e.insert_str("2nd");
        e.home();
        e.line_up();
        e.right();
        assert!(e.kill_to_end());
        assert_eq!(e.text(), "f\n2nd");
        e.end();
        e.newline();
        assert_eq!(e.text(), "f\n\n2nd");
        assert!(e.backspace());
        assert_eq!(e.text(), "f\n2nd", "a line break is deleted like a character");
    }

    #[test]
    fn history_browses_back_and_returns_to_the_draft() {
        let mut e = LineEditor::default();
        for line in ["first", "second", "second", "  "] {
            e.insert_str(line);
            e.take();
        }
        e.insert_str("draft");
        e.history_prev();
        assert_eq!(e.text(), "second");
        e.history_prev();
        assert_eq!(e.text(), "first");
        e.history_prev();
        assert_eq!(e.text(), "first", "stays at the oldest");
        e.history_next();
        assert_eq!(e.text(), "second");
        e.history_next();
        assert_eq!(e.text(), "draft");
        e.history_next();
        assert_eq!(e.text(), "draft");
    }

    #[test]
    fn history_is_bounded() {
        let mut e = LineEditor::default();
        for i in 0..HISTORY_LIMIT + 10 {
            e.insert_str(&i.to_string());
            e.take();
        }
        assert_eq!(e.history.len(), HISTORY_LIMIT);
        assert_eq!(e.history.first().map(String::as_str), Some("10"));
    }
}
