//! What a submitted line means: a message, or a slash command.

/// One submitted line, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// Nothing visible: ignored.
    Empty,
    /// A message to send. `//text` sends `/text`, so messages can start with a slash.
    Text(String),
    /// A slash command.
    Command(Slash),
}

/// The slash commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slash {
    /// `/next`: leave the chat and find someone new.
    Next,
    /// `/leave`: leave the chat or the queue and stay idle.
    Leave,
    /// `/block [reason]`: end the chat, report the partner, never meet again.
    Block(Option<String>),
    /// `/who`: who you are talking to, or who is checked in (DM mode).
    Who,
    /// `/to <client_id> [message]`: pick the DM recipient, optionally sending at once.
    To {
        /// The recipient.
        client_id: String,
        /// A message to send right away.
        message: Option<String>,
    },
    /// `/history`: the room's messages as the server keeps them.
    History,
    /// `/time`: timestamps with seconds, or without.
    Time,
    /// `/help`.
    Help,
    /// `/quit` (also `/exit`).
    Quit,
    /// A command that needs an argument was given none.
    MissingArgument {
        /// The command.
        command: &'static str,
        /// What to pass.
        usage: &'static str,
    },
    /// Not a known command.
    Unknown(String),
}

/// The help text, one command a line.
pub const HELP: &[&str] = &[
    "/next            leave this chat and find someone new",
    "/leave           leave the chat (or the queue) and stay idle",
    "/block [reason]  end the chat, report your partner, never meet again",
    "/who             who you are talking to (DM mode: who is checked in)",
    "/to ID [text]    DM mode: message client ID from now on (and send text)",
    "/history         the room's messages as the server keeps them",
    "/time            timestamps with seconds (again: without)",
    "/help            this list",
    "/quit            leave and exit (also Ctrl-C)",
    "//text           send a message that starts with /",
    "Enter sends; Alt-Enter (Shift-Enter, Ctrl-J) starts a new line; a paste is one message",
    "PgUp/PgDn scroll, Up/Down recall earlier lines",
];

/// Parses one submitted line.
pub fn parse(line: &str) -> Line {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Line::Empty;
    }
    if let Some(escaped) = trimmed.strip_prefix("//") {
        return Line::Text(format!("/{escaped}"));
    }
    let Some(command) = trimmed.strip_prefix('/') else {
        return Line::Text(line.trim_end_matches(['\r', '\n']).to_owned());
    };
    let (name, rest) = match command.split_once(char::is_whitespace) {
        Some((name, rest)) => (name, rest.trim()),
        None => (command, ""),
    };
    let rest = (!rest.is_empty()).then(|| rest.to_owned());
    Line::Command(match name.to_ascii_lowercase().as_str() {
        "next" | "n" => Slash::Next,
        "leave" => Slash::Leave,
        "block" => Slash::Block(rest),
        "who" | "list" => Slash::Who,
        "to" | "msg" => match rest {
            None => Slash::MissingArgument { command: "/to", usage: "/to <client_id> [message]" },
            Some(rest) => match rest.split_once(char::is_whitespace) {
                Some((id, message)) => {
                    Slash::To { client_id: id.to_owned(), message: Some(message.trim().to_owned()) }
                }
                None => Slash::To { client_id: rest, message: None },
            },
        },
        "history" => Slash::History,
        "time" => Slash::Time,
        "help" | "?" => Slash::Help,
        "quit" | "exit" | "q" => Slash::Quit,
        _ => Slash::Unknown(format!("/{name}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_escapes() {
        assert_eq!(parse("   "), Line::Empty);
        assert_eq!(parse("  hi there \n"), Line::Text("  hi there ".into()));
        assert_eq!(parse("//shrug"), Line::Text("/shrug".into()));
    }

    #[test]
    fn commands_with_and_without_arguments() {
        assert_eq!(parse("/next"), Line::Command(Slash::Next));
        assert_eq!(parse("/NEXT"), Line::Command(Slash::Next));
        assert_eq!(parse("/leave"), Line::Command(Slash::Leave));
        assert_eq!(parse("/block"), Line::Command(Slash::Block(None)));
        assert_eq!(
            parse("/block  spam and abuse "),
            Line::Command(Slash::Block(Some("spam and abuse".into())))
        );
        assert_eq!(parse("/who"), Line::Command(Slash::Who));
        assert_eq!(parse("/to bob"), Line::Command(Slash::To { client_id: "bob".into(), message: None }));
        assert_eq!(
            parse("/to bob  hello you"),
            Line::Command(Slash::To { client_id: "bob".into(), message: Some("hello you".into()) })
        );
        assert!(matches!(parse("/to"), Line::Command(Slash::MissingArgument { command: "/to", .. })));
        assert_eq!(parse("/history"), Line::Command(Slash::History));
        assert_eq!(parse("/help"), Line::Command(Slash::Help));
        assert_eq!(parse("/time"), Line::Command(Slash::Time));
        assert_eq!(parse("/quit"), Line::Command(Slash::Quit));
        assert_eq!(parse("/exit"), Line::Command(Slash::Quit));
        assert_eq!(parse("/dance now"), Line::Command(Slash::Unknown("/dance".into())));
    }
}
