//! Agent messaging through the public API: check-in, mailboxes, direct messages,
//! replies, expiry, the event cursor.

mod common;

use std::time::Duration;

use chat_core::{ChatError, Command, Limits, SessionEnd};
use common::*;
use serde_json::json;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn scripted_messaging_transcript() {
    let limits = Limits { message_ttl: secs(300), ..Limits::default() };
    let mut d = Driver::new(limits);
    d.open("ide");
    let agent_token = d.known_offline("agent");
    d.open("agent");
    d.ok(
        "ide",
        Command::Checkin {
            client_id: "ide".into(),
            name: Some("IDE".into()),
            capabilities: vec!["edit".into()],
            resume_token: None,
        },
    );
    d.ok("ide", dm("agent", "are you there?"));
    d.ok("ide", Command::ListClients);
    d.advance(secs(60));
    d.ok(
        "agent",
        Command::Checkin {
            client_id: "agent".into(),
            name: None,
            capabilities: vec![],
            resume_token: Some(agent_token),
        },
    );
    d.ok("agent", Command::GetMessages { limit: None });
    d.ok("agent", dm("ide", "yes, here"));
    d.ok("ide", Command::TakeReply { from: "agent".into(), after_seq: 0 });
    d.ok("ide", dm("agent", "this one will expire"));
    d.advance(secs(300));
    d.ok("ide", Command::Events { after_seq: None, limit: None });
    d.ok("ide", Command::ListClients);
    insta::assert_snapshot!("messaging_transcript", d.transcript_text());
}

#[test]
fn offline_mailbox_is_delivered_on_checkin_exactly_once() {
    let mut d = Driver::new(Limits::default());
    d.open("a");
    d.ok("a", checkin("a"));
    let token = d.known_offline("b");
    let sent = d.ok("a", dm("b", "hello b"));
    assert_eq!(sent["recipient_online"], false);
    d.open("b");
    let taken = d.err("b", checkin("b"));
    assert!(
        matches!(taken, ChatError::IdentityTaken { .. }),
        "an offline id is still its owner's: {taken:?}"
    );
    let wrong = Command::Checkin {
        client_id: "b".into(),
        name: None,
        capabilities: vec![],
        resume_token: Some("rt_nope".into()),
    };
    assert!(matches!(d.err("b", wrong), ChatError::BadResumeToken { .. }));
    let mine = Command::Checkin {
        client_id: "b".into(),
        name: None,
        capabilities: vec![],
        resume_token: Some(token),
    };
    let checked = d.ok("b", mine);
    assert_eq!(checked["pending_messages"], 1);
    let pushed = d.pushed_to("b");
    assert_eq!(pushed.len(), 1, "waiting mail is pushed when the identity is bound");
    assert_eq!(pushed[0]["message"], "hello b");
    let got = d.ok("b", Command::GetMessages { limit: None });
    assert_eq!(got["messages"][0]["message"], "hello b");
    assert_eq!(got["messages"][0]["from"], "a");
    assert_eq!(got["remaining"], 0);
    assert_eq!(d.ok("b", Command::GetMessages { limit: None })["messages"], json!([]));
    // Fetched means gone from the event cursor too.
    assert_eq!(d.ok("b", Command::Events { after_seq: None, limit: None })["events"], json!([]));
}

#[test]
fn online_recipient_is_pushed_and_can_ack_by_cursor() {
    let mut d = Driver::new(Limits::default());
    for c in ["a", "b"] {
        d.open(c);
        d.ok(c, checkin(c));
    }
    assert_eq!(d.ok("a", dm("b", "ping"))["recipient_online"], true);
    let pushed = d.pushed_to("b");
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0]["type"], "message.received");
    assert!(pushed[0].get("room_id").is_none(), "direct messages carry no room_id");
    let seq = pushed[0]["seq"].as_u64().unwrap();
    let peek = d.ok("b", Command::Events { after_seq: None, limit: None });
    assert_eq!(peek["events"][0]["seq"], seq);
    assert_eq!(peek["pending"], 1);
    let acked = d.ok("b", Command::Events { after_seq: Some(seq), limit: None });
    assert_eq!((acked["events"].clone(), acked["pending"].clone()), (json!([]), json!(0)));
    assert_eq!(
        d.ok("b", Command::GetMessages { limit: None })["messages"],
        json!([]),
        "acknowledged = delivered"
    );
    let ahead = d.err("b", Command::Events { after_seq: Some(seq + 5), limit: None });
    assert_eq!(ahead, ChatError::CursorAhead { after_seq: seq + 5, last_seq: seq });
}

#[test]
fn expiry_tells_the_sender_and_never_also_delivers() {
    let limits = Limits { message_ttl: secs(300), ..Limits::default() };
    let mut d = Driver::new(limits);
    d.open("a");
    d.ok("a", checkin("a"));
    let token = d.known_offline("b");
    let sent = d.ok("a", dm("b", "anyone?"));
    d.advance(secs(299));
    assert!(d.pushed_to("a").is_empty());
    d.advance(secs(1));
    let notice = d.pushed_to("a");
    assert_eq!(notice.len(), 1);
    assert_eq!(notice[0]["type"], "message.expired");
    assert_eq!(notice[0]["message_id"], sent["message_id"]);
    assert_eq!(notice[0]["recipient_id"], "b");
    assert_eq!(notice[0]["message"], "anyone?");
    d.open("b");
    let mine = Command::Checkin {
        client_id: "b".into(),
        name: None,
        capabilities: vec![],
        resume_token: Some(token),
    };
    assert_eq!(d.ok("b", mine)["pending_messages"], 0);
    assert_eq!(d.chat.stats().direct_messages_expired, 1);
}

#[test]
fn take_reply_finds_only_newer_messages_from_that_sender() {
    let mut d = Driver::new(Limits::default());
    for c in ["a", "b", "c"] {
        d.open(c);
        d.ok(c, checkin(c));
    }
    d.ok("b", dm("a", "old news"));
    let cursor = d.chat.event_cursor(d.session("a"));
    d.ok("a", dm("b", "question?"));
    let none = d.ok("a", Command::TakeReply { from: "b".into(), after_seq: cursor });
    assert_eq!(none["message"], json!(null));
    d.ok("c", dm("a", "unrelated"));
    d.ok("b", dm("a", "answer!"));
    let reply = d.ok("a", Command::TakeReply { from: "b".into(), after_seq: cursor });
    assert_eq!(reply["message"]["message"], "answer!");
    let left = d.ok("a", Command::GetMessages { limit: None });
    let texts: Vec<_> = left["messages"].as_array().unwrap().iter().map(|m| m["message"].clone()).collect();
    assert_eq!(texts, ["old news", "unrelated"]);
}

#[test]
fn mailbox_capacity_is_an_error_to_the_sender() {
    let limits = Limits { mailbox_capacity: 2, ..Limits::default() };
    let mut d = Driver::new(limits);
    d.open("a");
    d.ok("a", checkin("a"));
    d.known_offline("b");
    assert_eq!(d.err("a", dm("nobody", "x")), ChatError::UnknownRecipient { recipient_id: "nobody".into() });
    d.ok("a", dm("b", "1"));
    d.ok("a", dm("b", "2"));
    let e = d.err("a", dm("b", "3"));
    assert_eq!(e, ChatError::MailboxFull { recipient_id: "b".into(), capacity: 2 });
    assert!(matches!(d.err("a", dm("a", "me")), ChatError::SelfMessage));
    assert!(matches!(d.err("a", dm("not valid", "x")), ChatError::InvalidId { field: "recipient_id", .. }));
}

#[test]
fn clients_list_presence_and_impersonation() {
    let limits = Limits { reconnect_grace: secs(30), ..Limits::default() };
    let mut d = Driver::new(limits);
    for c in ["a", "b", "mallory"] {
        d.open(c);
    }
    let a = d.ok(
        "a",
        Command::Checkin {
            client_id: "a".into(),
            name: Some("Alpha".into()),
            capabilities: vec!["review".into()],
            resume_token: None,
        },
    );
    let token = a["resume_token"].as_str().unwrap().to_string();
    d.ok("b", checkin("b"));
    // mallory cannot take a's id, nor send as a.
    assert!(matches!(d.err("mallory", checkin("a")), ChatError::IdentityTaken { .. }));
    assert!(matches!(d.err("mallory", dm("b", "hi")), ChatError::NotIdentified));
    d.close("a", SessionEnd::Lost);
    let list = d.ok("b", Command::ListClients);
    assert_eq!(list["clients"][0]["client_id"], "a");
    assert_eq!(list["clients"][0]["name"], "Alpha");
    assert_eq!(list["clients"][0]["capabilities"], json!(["review"]));
    assert_eq!(list["clients"][0]["status"], "reconnecting");
    assert!(matches!(d.err("mallory", checkin("a")), ChatError::IdentityTaken { .. }), "held during grace");
    d.advance(secs(30));
    let list = d.ok("b", Command::ListClients);
    assert_eq!(list["clients"][0]["status"], "offline");
    assert_eq!(list["clients"][1]["status"], "online");
    // Offline, the id is still a's: nobody claims it without the token, and the token
    // still works.
    assert!(matches!(d.err("mallory", checkin("a")), ChatError::IdentityTaken { .. }), "held offline too");
    d.open("a_again");
    let back = d.ok("a_again", Command::Resume { user_id: "a".into(), resume_token: token });
    assert_eq!(back["user_id"], "a");
}

#[test]
fn overflowing_events_are_evicted_and_counted_but_direct_messages_stay() {
    let limits = Limits { event_buffer: 3, rate_messages: 1000, ..Limits::default() };
    let mut d = Driver::new(limits);
    for who in ["a", "b"] {
        d.open(who);
        d.ok(who, enter(who));
    }
    d.open("c");
    d.ok("c", checkin("c"));
    d.ok("c", dm("b", "keep me"));
    let room = d.pushed_to("a")[0]["room_id"].as_str().unwrap().to_string();
    for i in 0..5 {
        d.ok("a", say(&room, &format!("m{i}")));
    }
    let evs = d.ok("b", Command::Events { after_seq: None, limit: None });
    assert_eq!(evs["evicted"], 3);
    let kinds: Vec<_> = evs["events"].as_array().unwrap().iter().map(|e| e["message"].clone()).collect();
    assert_eq!(kinds, [json!("keep me"), json!("m2"), json!("m3"), json!("m4")]);
    assert_eq!(d.ok("b", Command::Events { after_seq: None, limit: Some(2) })["evicted"], 0);
}

#[test]
fn offline_participants_are_forgotten_after_retention() {
    let limits = Limits { offline_retention: secs(100), message_ttl: secs(10), ..Limits::default() };
    let mut d = Driver::new(limits);
    d.open("a");
    d.ok("a", checkin("a"));
    d.known_offline("ghost");
    d.ok("a", dm("ghost", "boo"));
    d.close("a", SessionEnd::Closed);
    assert_eq!(d.chat.stats().participants, 2);
    d.advance(secs(100));
    assert_eq!(d.chat.stats().participants, 0);
}

#[test]
fn following_next_after_seq_over_a_backlog_loses_nothing() {
    let limits = Limits { rate_messages: 1000, ..Limits::default() };
    let mut d = Driver::new(limits);
    d.open("a");
    d.ok("a", checkin("a"));
    d.open("b");
    d.ok("b", checkin("b"));
    let sent: Vec<_> = (0..30).map(|i| d.ok("a", dm("b", &format!("m{i}")))["message_id"].clone()).collect();
    let (mut cursor, mut got) = (None, Vec::new());
    loop {
        let page = d.ok("b", Command::Events { after_seq: cursor, limit: Some(7) });
        let events = page["events"].as_array().unwrap().clone();
        if events.is_empty() {
            break;
        }
        got.extend(events.iter().map(|e| e["message_id"].clone()));
        assert_eq!(
            page["next_after_seq"],
            events.last().unwrap()["seq"],
            "the cursor is the last event returned"
        );
        assert_eq!(page["last_seq"], page["next_after_seq"], "both names mean the same");
        cursor = page["next_after_seq"].as_u64();
    }
    assert_eq!(got, sent, "every message, once, in order");
}

#[test]
fn a_retried_send_with_the_same_key_is_sent_once() {
    let mut d = Driver::new(Limits::default());
    for c in ["a", "b"] {
        d.open(c);
        d.ok(c, checkin(c));
    }
    let send = |key: &str| Command::SendDirect {
        recipient_id: "b".into(),
        message: "exactly once".into(),
        client_message_id: Some(key.into()),
    };
    let first = d.ok("a", send("k-1"));
    let retry = d.ok("a", send("k-1"));
    assert_eq!(first, retry, "the retry returns the first result");
    assert_eq!(d.pushed_to("b").len(), 1, "and delivers nothing again");
    let other = d.ok("a", send("k-2"));
    assert_ne!(other["message_id"], first["message_id"]);
    assert!(matches!(d.err("a", send("bad key!")), ChatError::InvalidId { field: "client_message_id", .. }));
}

#[test]
fn a_session_whose_identity_was_taken_is_told_so() {
    let mut d = Driver::new(Limits::default());
    d.open("old");
    let token = d.ok("old", checkin("a"))["resume_token"].as_str().unwrap().to_string();
    d.open("new");
    d.ok("new", Command::Resume { user_id: "a".into(), resume_token: token });
    assert_eq!(d.err("old", Command::ListClients), ChatError::TakenOver { id: "a".into() });
}

#[test]
fn registered_clients_hold_mail_and_need_their_secret() {
    use chat_core::{Config, Registered};
    let registered = vec![Registered {
        client_id: "backend".into(),
        secret: "s3cret-s3cret-s3cret".into(),
        name: Some("Backend IDE".into()),
    }];
    let mut d = Driver::with_config(Config { seed: [4; 32], limits: Limits::default(), registered });
    d.open("front");
    d.ok("front", checkin("front"));
    let list = d.ok("front", Command::ListClients);
    assert_eq!(
        (list["clients"][0]["client_id"].clone(), list["clients"][0]["status"].clone()),
        (json!("backend"), json!("offline"))
    );
    d.ok("front", dm("backend", "waiting for you"));
    d.open("mallory");
    assert!(matches!(d.err("mallory", checkin("backend")), ChatError::IdentityTaken { .. }));
    d.open("backend");
    let with_secret = Command::Checkin {
        client_id: "backend".into(),
        name: None,
        capabilities: vec![],
        resume_token: Some("s3cret-s3cret-s3cret".into()),
    };
    assert_eq!(d.ok("backend", with_secret)["pending_messages"], 1);
    d.advance(Duration::from_secs(48 * 3600));
    assert_eq!(d.ok("front", Command::ListClients)["clients"][0]["client_id"], "backend", "never forgotten");
}

fn dm_typing(to: &str, typing: bool) -> Command {
    Command::SetDirectTyping { recipient_id: to.into(), typing }
}

/// The `direct.typing` events pushed to `who` so far.
fn direct_typing_to(d: &Driver, who: &str) -> Vec<serde_json::Value> {
    d.pushed_to(who).into_iter().filter(|e| e["type"] == "direct.typing").collect()
}

#[test]
fn direct_typing_reaches_only_the_recipient_notifies_on_change_and_expires() {
    let limits = Limits { typing_timeout: secs(5), ..Limits::default() };
    let mut d = Driver::new(limits);
    for who in ["ann", "bob", "cat"] {
        d.open(who);
        d.ok(who, checkin(who));
    }
    let on = d.ok("ann", dm_typing("bob", true));
    assert_eq!(on, json!({"recipient_id": "bob", "typing": true, "notified": true}));
    let told = direct_typing_to(&d, "bob");
    assert_eq!(told.len(), 1);
    assert_eq!(told[0]["from"], "ann");
    assert_eq!(told[0]["from_name"], "ann");
    assert_eq!(told[0]["typing"], true);
    assert!(told[0].get("room_id").is_none());
    d.advance(secs(3));
    assert_eq!(d.ok("ann", dm_typing("bob", true))["notified"], false, "a repeat only refreshes");
    d.advance(secs(3));
    assert_eq!(direct_typing_to(&d, "bob").len(), 1, "the refresh extended the indicator");
    d.advance(secs(2));
    let told = direct_typing_to(&d, "bob");
    assert_eq!(told.len(), 2);
    assert_eq!((&told[1]["from"], &told[1]["typing"]), (&json!("ann"), &json!(false)));
    assert_eq!(d.ok("ann", dm_typing("bob", false))["notified"], false, "already off");
    assert!(direct_typing_to(&d, "cat").is_empty(), "nobody else hears of it");
    assert!(d.pushed_to("ann").is_empty(), "nor the writer");
    // An indicator is no mail: nothing waits in the mailbox.
    let mailbox = d.ok("bob", Command::PeekMessages);
    assert_eq!(mailbox["messages"], json!([]));
    assert_eq!(mailbox["remaining"], 0);
    // ... but it is an event like partner.typing, fetchable with a cursor.
    let events = d.ok("bob", Command::Events { after_seq: None, limit: None });
    let kinds: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["direct.typing", "direct.typing"]);
}

#[test]
fn typing_can_be_withdrawn_and_a_message_ends_it_silently() {
    let limits = Limits { typing_timeout: secs(5), ..Limits::default() };
    let mut d = Driver::new(limits);
    for who in ["ann", "bob"] {
        d.open(who);
        d.ok(who, checkin(who));
    }
    d.ok("ann", dm_typing("bob", true));
    assert_eq!(d.ok("ann", dm_typing("bob", false))["notified"], true);
    let told = direct_typing_to(&d, "bob");
    assert_eq!(told.iter().map(|e| e["typing"].clone()).collect::<Vec<_>>(), [json!(true), json!(false)]);
    d.ok("ann", dm_typing("bob", true));
    d.ok("ann", dm("bob", "here it is"));
    d.advance(secs(10));
    let kinds: Vec<(String, serde_json::Value)> = d
        .pushed_to("bob")
        .into_iter()
        .map(|e| (e["type"].as_str().unwrap().to_owned(), e["typing"].clone()))
        .collect();
    assert_eq!(
        kinds[2..],
        [("direct.typing".to_owned(), json!(true)), ("message.received".to_owned(), serde_json::Value::Null)],
        "the message ended the indicator: no `false` after it"
    );
    assert_eq!(d.ok("ann", dm_typing("bob", true))["notified"], true, "a new indicator after the message");
}

#[test]
fn typing_to_unknown_offline_or_oneself_tells_nobody() {
    let mut d = Driver::new(Limits::default());
    d.open("ann");
    d.ok("ann", checkin("ann"));
    let token = d.known_offline("bob");
    assert!(matches!(d.err("ann", dm_typing("nobody", true)), ChatError::UnknownRecipient { .. }));
    assert!(matches!(d.err("ann", dm_typing("ann", true)), ChatError::SelfMessage));
    assert!(matches!(d.err("ann", dm_typing("bad id!", true)), ChatError::InvalidId { .. }));
    let offline = d.ok("ann", dm_typing("bob", true));
    assert_eq!(offline, json!({"recipient_id": "bob", "typing": false, "notified": false}));
    d.advance(secs(10));
    d.open("bob");
    let back = Command::Checkin {
        client_id: "bob".into(),
        name: None,
        capabilities: vec![],
        resume_token: Some(token),
    };
    d.ok("bob", back);
    let events = d.ok("bob", Command::Events { after_seq: None, limit: None });
    assert_eq!(events["events"], json!([]), "nothing was kept for later");
    d.open("eve");
    assert!(matches!(d.err("eve", dm_typing("bob", true)), ChatError::NotIdentified));
}

#[test]
fn a_writer_who_leaves_withdraws_the_indicator_at_once() {
    let limits = Limits { typing_timeout: secs(5), ..Limits::default() };
    let mut d = Driver::new(limits);
    for who in ["ann", "bob", "cat"] {
        d.open(who);
        d.ok(who, checkin(who));
    }
    d.ok("ann", dm_typing("bob", true));
    d.ok("ann", dm_typing("cat", true));
    d.close("ann", SessionEnd::Closed);
    for who in ["bob", "cat"] {
        let told = direct_typing_to(&d, who);
        assert_eq!(told.len(), 2, "{who}: {told:?}");
        assert_eq!(told[1]["typing"], false);
    }
    d.advance(secs(10));
    assert_eq!(direct_typing_to(&d, "bob").len(), 2, "the timer finds nothing left to clear");
}

#[test]
fn a_direct_typing_indicator_survives_a_snapshot() {
    let limits = Limits { typing_timeout: secs(5), ..Limits::default() };
    let mut d = Driver::new(limits);
    for who in ["ann", "bob"] {
        d.open(who);
        d.ok(who, checkin(who));
    }
    d.ok("ann", dm_typing("bob", true));
    let snapshot = d.chat.snapshot().expect("snapshot");
    assert!(String::from_utf8_lossy(&snapshot).contains("\"typing_to\""), "the indicator is core state");
    d.chat = chat_core::Chat::restore(&snapshot).expect("restore");
    assert_eq!(d.chat.snapshot().expect("snapshot"), snapshot, "same state, same bytes");
    assert_eq!(d.ok("ann", dm_typing("bob", true))["notified"], false, "still on after the restore");
    d.advance(secs(6));
    let told = direct_typing_to(&d, "bob");
    assert_eq!(told.last().map(|e| e["typing"].clone()), Some(json!(false)), "{told:?}");
}
