//! The input line: a small line editor with history, independent of any terminal.
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

    /// Inserts pasted text at the cursor; line breaks become spaces because one line is
    /// one message. Terminals send a pasted line break as CR, some as CRLF or LF: each
    /// of those is one break, so words on two lines never run together.
    pub fn insert_str(&mut self, text: &str) {
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    self.insert(' ');
                }
                '\n' | '\t' => self.insert(' '),
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

    /// Moves to the start of the line.
    pub fn home(&mut self) {
        self.cursor = 0;
    }

    /// Moves to the end of the line.
    pub fn end(&mut self) {
        self.cursor = self.chars.len();
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

    /// Deletes from the start of the line to the cursor (Ctrl-U).
    pub fn kill_to_start(&mut self) -> bool {
        let changed = self.cursor > 0;
        self.chars.drain(..self.cursor);
        self.cursor = 0;
        changed
    }

    /// Deletes from the cursor to the end of the line (Ctrl-K).
    pub fn kill_to_end(&mut self) -> bool {
        let changed = self.cursor < self.chars.len();
        self.chars.truncate(self.cursor);
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
    fn paste_turns_line_breaks_into_spaces() {
        assert_eq!(typed("a\r\nb\tc\u{7}").text(), "a b c");
        // What terminals send for a pasted line break: CR alone.
        assert_eq!(typed("line one\rline two").text(), "line one line two");
        assert_eq!(typed("x\r\r\ny\nz").text(), "x  y z");
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
