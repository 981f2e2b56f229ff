//! The wire contract: every reply and error as the adapter will show it.

mod common;

use std::time::Duration;

use chat_core::{ChatError, Command, Limits, SessionEnd};
use common::*;

#[test]
fn remaining_replies_transcript() {
    let mut d = Driver::new(Limits::default());
    for who in ["a", "b", "a2"] {
        d.open(who);
    }
    d.ok("a", Command::Identity);
    let token = d.ok("a", enter_named("a", "Ann", &["chess"]))["resume_token"].as_str().unwrap().to_string();
    d.ok("a", Command::LeaveQueue);
    d.ok("a", enter_named("a", "Ann", &["chess"]));
    d.ok(
        "b",
        Command::EnterQueue {
            user_id: Some("b".into()),
            display_name: Some("Bo".into()),
            interests: vec!["Chess".into()],
            resume_token: None,
        },
    );
    d.ok("a", Command::Identity);
    d.close("a", SessionEnd::Lost);
    d.advance(Duration::from_secs(5));
    d.ok("a2", Command::Resume { user_id: "a".into(), resume_token: token });
    d.ok(
        "b",
        Command::Checkin {
            client_id: "b".into(),
            name: None,
            capabilities: vec!["chat".into()],
            resume_token: None,
        },
    );
    d.ok("b", dm("a", "psst"));
    d.ok("a2", Command::PeekMessages);
    let room = d.pushed_to("b")[0]["room_id"].as_str().unwrap().to_string();
    d.ok("a2", Command::BlockPartner { room_id: room, reason: Some("spam".into()) });
    insta::assert_snapshot!("remaining_replies", d.transcript_text());
}

#[test]
fn every_error_message() {
    let errors = [
        ChatError::UnknownSession,
        ChatError::NotIdentified,
        ChatError::AlreadyIdentified { current: "ann".into(), requested: "bob".into() },
        ChatError::IdentityTaken { id: "ann".into() },
        ChatError::BadResumeToken { id: "ann".into() },
        ChatError::InvalidId { field: "user_id", max: 64 },
        ChatError::InvalidText {
            field: "display_name",
            problem: "must not contain control characters".into(),
        },
        ChatError::EmptyMessage,
        ChatError::MessageTooLarge { bytes: 20000, max: 16384 },
        ChatError::UnknownRoom { room_id: "r_0123456789abcdef".into() },
        ChatError::RoomEnded { room_id: "r_0123456789abcdef".into() },
        ChatError::AlreadyInRoom { room_id: "r_0123456789abcdef".into() },
        ChatError::QueueFull { capacity: 10000 },
        ChatError::ServerFull { capacity: 1000000 },
        ChatError::RateLimited { limit: 20, window_secs: 10, retry_after_ms: 500 },
        ChatError::MailboxFull { recipient_id: "bob".into(), capacity: 1000 },
        ChatError::SelfMessage,
        ChatError::CursorAhead { after_seq: 9, last_seq: 3 },
    ];
    let text: Vec<String> = errors.iter().map(|e| format!("{}: {e:?}\n  => {e}", e.code())).collect();
    let mut codes: Vec<_> = errors.iter().map(ChatError::code).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), errors.len(), "every error has its own code");
    insta::assert_snapshot!("errors", text.join("\n"));
}
