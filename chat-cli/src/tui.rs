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
    self, DisableBracketedPaste, EnableBracketedPaste, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers,
    KeyboardEnhancementFlags, PopKeyboardEnhancementFlags, PushKeyboardEnhancementFlags,
};
use ratatui::crossterm::execute;
use tokio::sync::mpsc;

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
pub async fn run(settings: Settings, net: NetConfig, initial_target: Option<String>) -> ExitCode {
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
        app.take_emitted();
        if app.is_done() || quit_deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    if enhanced {
        let _ = execute!(std::io::stdout(), PopKeyboardEnhancementFlags);
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
