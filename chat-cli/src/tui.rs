//! The full-screen front end: crossterm input, ratatui drawing, the app in between.
//!
//! It connects before taking over the screen, so an unreachable server or a refused
//! identity is an ordinary error message on a normal terminal.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ratatui::crossterm::event::{
    self, DisableBracketedPaste, DisableFocusChange, EnableBracketedPaste, EnableFocusChange, Event, KeyCode,
    KeyEvent, KeyEventKind, KeyModifiers, KeyboardEnhancementFlags, PopKeyboardEnhancementFlags,
    PushKeyboardEnhancementFlags,
};
use ratatui::crossterm::execute;
use tokio::sync::mpsc;

use crate::app::entry::Entry;
use crate::app::{Action, App, Key, NetEvent, Settings};
use crate::clock::now;
use crate::net::{self, NetConfig};
use crate::plain::QUIT_LIMIT;
use crate::render;
use crate::signals::QuitSignals;

/// Translates a terminal key press into the app's [`Key`]; `None` for keys it ignores.
pub fn map_key(key: KeyEvent) -> Option<Key> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    Some(match key.code {
        KeyCode::Char(c) if ctrl => match c.to_ascii_lowercase() {
            'c' | 'd' => Key::Interrupt,
            'j' => Key::Newline,
            'u' => Key::KillToStart,
            'k' => Key::KillToEnd,
            'w' | 'h' => Key::DeleteWord,
            'a' => Key::Home,
            'e' => Key::End,
            'b' => Key::Left,
            'f' => Key::Right,
            'p' => Key::Up,
            'n' => Key::Down,
            _ => return None,
        },
        KeyCode::Char('b') if alt => Key::WordLeft,
        KeyCode::Char('f') if alt => Key::WordRight,
        KeyCode::Char(c) => Key::Char(c),
        // Alt-Enter reaches the app from every terminal; Shift-Enter only where the
        // terminal reports modifiers of Enter (the keyboard enhancement protocol).
        KeyCode::Enter if alt || key.modifiers.contains(KeyModifiers::SHIFT) => Key::Newline,
        KeyCode::Enter => Key::Enter,
        KeyCode::Backspace if ctrl || alt => Key::DeleteWord,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Delete => Key::Delete,
        KeyCode::Left if ctrl || alt => Key::WordLeft,
        KeyCode::Right if ctrl || alt => Key::WordRight,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Esc => Key::Escape,
        _ => return None,
    })
}

/// Saves the window title on the terminal's title stack (xterm's XTWINOPS 22).
const TITLE_PUSH: &str = "\x1b[22;0t";
/// Puts the saved window title back (XTWINOPS 23).
const TITLE_POP: &str = "\x1b[23;0t";

/// Writes terminal escapes that are not part of a frame.
fn write_escapes(escapes: &str) {
    print!("{escapes}");
    let _ = std::io::stdout().flush();
}

/// `--notify`: a bell and the unseen count in the window title for messages from others
/// that arrive while the window is not focused.
#[derive(Debug)]
pub struct Notifier {
    enabled: bool,
    focused: bool,
    unseen: usize,
}

impl Notifier {
    /// Off unless `enabled`; the window counts as focused until the terminal says not.
    pub fn new(enabled: bool) -> Self {
        Notifier { enabled, focused: true, unseen: 0 }
    }

    /// The window gained or lost focus. Back in focus, the count is cleared: what to write
    /// to put the title saved at the start back (and save it again for next time).
    pub fn focus(&mut self, focused: bool) -> Option<String> {
        self.focused = focused;
        if !focused || self.unseen == 0 {
            return None;
        }
        self.unseen = 0;
        self.enabled.then(|| format!("{TITLE_POP}{TITLE_PUSH}"))
    }

    /// What to write to the terminal for these new entries, if anything: a bell and the
    /// title `(N) mcp-chat`.
    pub fn on_entries(&mut self, entries: &[Entry]) -> Option<String> {
        if !self.enabled || self.focused {
            return None;
        }
        let new = entries.iter().filter(|e| matches!(e, Entry::Message { mine: false, .. })).count();
        if new == 0 {
            return None;
        }
        self.unseen += new;
        Some(format!("\x07\x1b]0;({}) mcp-chat\x07", self.unseen))
    }
}

/// Blanks the whole screen before the first frame. A client that was killed leaves the
/// terminal in the alternate screen with its last frame on it; entering it again is a
/// no-op, and the first frame only draws cells that are not blank, so without this the
/// old frame would show through.
pub fn fresh_screen<B: ratatui::backend::Backend>(terminal: &mut ratatui::Terminal<B>) {
    let _ = terminal.clear();
}

/// Reads terminal events on a plain thread until `stop` is set or the app is gone.
fn terminal_events(stop: Arc<AtomicBool>) -> mpsc::UnboundedReceiver<Event> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match event::poll(Duration::from_millis(100)) {
                Ok(true) => match event::read() {
                    Ok(ev) => {
                        if tx.send(ev).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                Ok(false) => {}
                Err(_) => return,
            }
        }
    });
    rx
}

/// Runs the full-screen client until the session ends.
pub async fn run(
    settings: Settings,
    net: NetConfig,
    initial_target: Option<String>,
    notify: bool,
) -> ExitCode {
    let server = net.url.clone();
    let mut app = App::new(settings);
    let handle = match net::spawn(net) {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("chat-cli: {error}");
            return ExitCode::FAILURE;
        }
    };
    let (actions, mut events) = (handle.actions, handle.events);
    let send = |out: Vec<Action>| {
        for action in out {
            let _ = actions.send(action);
        }
    };

    eprint!("connecting to {server}… ");
    let _ = std::io::stderr().flush();
    let mut signals = QuitSignals::new();
    let first = tokio::select! {
        event = events.recv() => event,
        () = signals.recv() => None,
    };
    let Some(first) = first else {
        eprintln!("cancelled");
        return ExitCode::FAILURE;
    };
    send(app.on_net(first, now()));
    if let Some(message) = app.failure() {
        eprintln!("failed\nchat-cli: {message}");
        return ExitCode::FAILURE;
    }
    eprintln!("ok");
    if let Some(target) = initial_target {
        send(app.submit(&format!("/to {target}"), now()));
    }

    let mut terminal = match ratatui::try_init() {
        Ok(terminal) => terminal,
        Err(error) => {
            eprintln!("chat-cli: cannot use the terminal ({error}); try --plain");
            send(vec![Action::Quit]);
            return ExitCode::FAILURE;
        }
    };
    fresh_screen(&mut terminal);
    // A paste arrives as one event (so it becomes one message, line breaks kept), not
    // as keys with an Enter per line.
    let _ = execute!(std::io::stdout(), EnableBracketedPaste);
    // Where the terminal can tell Shift-Enter from Enter, ask it to.
    let enhanced = matches!(ratatui::crossterm::terminal::supports_keyboard_enhancement(), Ok(true))
        && execute!(
            std::io::stdout(),
            PushKeyboardEnhancementFlags(KeyboardEnhancementFlags::DISAMBIGUATE_ESCAPE_CODES)
        )
        .is_ok();
    let mut notifier = Notifier::new(notify);
    if notify {
        // Focus reports, and the window title saved to be put back at the end.
        let _ = execute!(std::io::stdout(), EnableFocusChange);
        write_escapes(TITLE_PUSH);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut keys = terminal_events(stop.clone());
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut quit_deadline: Option<tokio::time::Instant> = None;
    loop {
        let mut max_scroll = 0;
        if let Err(error) = terminal.draw(|frame| max_scroll = render::draw(frame, &app)) {
            app.quit(now());
            ratatui::restore();
            eprintln!("chat-cli: drawing failed: {error}");
            break;
        }
        app.clamp_scroll(max_scroll);
        let out = tokio::select! {
            key = keys.recv() => match key {
                Some(Event::Key(key)) => map_key(key).map(|k| app.on_key(k, now())).unwrap_or_default(),
                Some(Event::Paste(text)) => app.on_key(Key::Paste(text), now()),
                Some(Event::FocusGained) => {
                    notifier.focus(true).inspect(|e| write_escapes(e));
                    Vec::new()
                }
                Some(Event::FocusLost) => {
                    notifier.focus(false);
                    Vec::new()
                }
                Some(_) => Vec::new(), // resize and others: just redraw
                None => app.quit(now()),
            },
            event = events.recv() => match event {
                Some(event) => app.on_net(event, now()),
                None => {
                    if !app.is_done() {
                        app.on_net(NetEvent::Fatal("the network task stopped unexpectedly".into()), now());
                    }
                    break;
                }
            },
            _ = tick.tick() => app.tick(now()),
            () = signals.recv() => app.quit(now()),
        };
        if out.contains(&Action::Quit) {
            quit_deadline.get_or_insert_with(|| tokio::time::Instant::now() + QUIT_LIMIT);
        }
        send(out);
        if let Some(escapes) = notifier.on_entries(&app.take_emitted()) {
            write_escapes(&escapes);
        }
        if app.is_done() || quit_deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    if enhanced {
        let _ = execute!(std::io::stdout(), PopKeyboardEnhancementFlags);
    }
    if notify {
        let _ = execute!(std::io::stdout(), DisableFocusChange);
        write_escapes(TITLE_POP);
    }
    let _ = execute!(std::io::stdout(), DisableBracketedPaste);
    ratatui::restore();
    match app.failure() {
        Some(message) => {
            eprintln!("chat-cli: {message}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> Option<Key> {
        map_key(KeyEvent::new(code, modifiers))
    }

    #[test]
    fn notify_rings_only_when_unfocused_and_only_for_others_messages() {
        let message = |mine| Entry::Message {
            ts: chat_core::Time::from_millis(0),
            room_id: None,
            message_id: "m".into(),
            from: "bob".into(),
            from_name: "Bob".into(),
            to: None,
            text: "hi".into(),
            mine,
            undelivered: false,
        };
        let mut off = Notifier::new(false);
        off.focus(false);
        assert_eq!(off.on_entries(&[message(false)]), None, "off by default");
        let mut on = Notifier::new(true);
        assert_eq!(on.on_entries(&[message(false)]), None, "focused: nothing");
        on.focus(false);
        assert_eq!(on.on_entries(&[message(true)]), None, "our own message: nothing");
        assert_eq!(on.on_entries(&[message(false)]).as_deref(), Some("\x07\x1b]0;(1) mcp-chat\x07"));
        assert_eq!(
            on.on_entries(&[message(false), message(false)]).as_deref(),
            Some("\x07\x1b]0;(3) mcp-chat\x07")
        );
        assert_eq!(on.focus(true).as_deref(), Some("\x1b[23;0t\x1b[22;0t"), "focused: the title comes back");
        assert_eq!(on.focus(false), None);
        assert_eq!(on.focus(true), None, "nothing was shown: nothing to undo");
        on.focus(false);
        assert_eq!(
            on.on_entries(&[message(false)]).as_deref(),
            Some("\x07\x1b]0;(1) mcp-chat\x07"),
            "counted afresh"
        );
    }

    #[test]
    fn a_screen_left_over_by_a_killed_client_is_cleared() {
        use ratatui::backend::TestBackend;
        let leftover = TestBackend::with_lines(["old frame, old frame", "12:00 Bob: stale    "]);
        let mut terminal = ratatui::Terminal::new(leftover).expect("test terminal");
        fresh_screen(&mut terminal);
        terminal.draw(|_| {}).expect("draws");
        terminal.backend().assert_buffer_lines(["                    ", "                    "]);
    }

    #[test]
    fn keys_map_to_editing_and_control_actions() {
        assert_eq!(press(KeyCode::Char('x'), KeyModifiers::NONE), Some(Key::Char('x')));
        assert_eq!(press(KeyCode::Char('X'), KeyModifiers::SHIFT), Some(Key::Char('X')));
        assert_eq!(press(KeyCode::Char('c'), KeyModifiers::CONTROL), Some(Key::Interrupt));
        assert_eq!(press(KeyCode::Char('w'), KeyModifiers::CONTROL), Some(Key::DeleteWord));
        assert_eq!(press(KeyCode::Left, KeyModifiers::CONTROL), Some(Key::WordLeft));
        assert_eq!(press(KeyCode::Enter, KeyModifiers::NONE), Some(Key::Enter));
        assert_eq!(press(KeyCode::Enter, KeyModifiers::ALT), Some(Key::Newline));
        assert_eq!(press(KeyCode::Enter, KeyModifiers::SHIFT), Some(Key::Newline));
        assert_eq!(press(KeyCode::Char('j'), KeyModifiers::CONTROL), Some(Key::Newline));
        assert_eq!(press(KeyCode::PageUp, KeyModifiers::NONE), Some(Key::PageUp));
        assert_eq!(press(KeyCode::F(5), KeyModifiers::NONE), None);
        let mut release = KeyEvent::new(KeyCode::Char('a'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert_eq!(map_key(release), None);
    }
}
