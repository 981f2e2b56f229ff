//! The state machine driven by hand: inputs in, actions and view model out.

use super::*;
use chat_core::{
    ActivityState, BlockedReply, ChatroomFound, CheckedInReply, ClientsReply, DirectTyping, EnterQueueReply,
    Envelope, Event, IdentityReply, LeftChatReply, MessageId, MessageReceived, PartnerDisconnected,
    PartnerReconnected, PartnerReconnecting, PartnerTyping, PresenceStatus, QueueStatus, SentDirectReply,
    SentRoomReply,
};

/// Builders for the events and replies a real server sends, shared with the render tests.
pub(crate) mod fixtures {
    use super::*;

    pub const T0: u64 = 1_704_110_400_000; // 2024-01-01 12:00:00 UTC

    pub fn at(secs: u64) -> Time {
        Time::from_millis(T0 + secs * 1000)
    }

    pub fn settings(mode: Mode) -> Settings {
        Settings { mode, server: "http://127.0.0.1:8123/mcp".into(), offset_secs: 0 }
    }

    pub fn partner(id: &str, name: &str) -> PartnerInfo {
        PartnerInfo { user_id: id.into(), display_name: name.into() }
    }

    pub fn waiting(position: usize, queue_length: usize, estimate: Option<u64>) -> QueueStatus {
        QueueStatus::Waiting { position, queue_length, estimated_wait_secs: estimate }
    }

    pub fn joined(status: QueueStatus) -> NetEvent {
        NetEvent::Joined {
            joined: Joined::Roulette(EnterQueueReply {
                user_id: "u_alice".into(),
                display_name: "Alice".into(),
                resume_token: Some("rt_secret".into()),
                interests: vec!["rust".into(), "music".into()],
                status,
            }),
            fresh: false,
            restored: false,
        }
    }

    pub fn event(seq: u64, event: Event) -> NetEvent {
        NetEvent::Event(Envelope { seq, event })
    }

    pub fn found(seq: u64, room: &str) -> NetEvent {
        event(
            seq,
            Event::ChatroomFound(ChatroomFound {
                room_id: room.into(),
                partner: partner("u_bob", "Bob"),
                shared_interests: vec!["rust".into()],
            }),
        )
    }

    pub fn received(seq: u64, room: Option<&str>, from: &str, text: &str, secs: u64) -> NetEvent {
        event(
            seq,
            Event::MessageReceived(MessageReceived {
                room_id: room.map(Into::into),
                message_id: chat_core::MessageId(seq),
                from: from.into(),
                from_name: if from == "u_bob" { "Bob".into() } else { from.into() },
                message: text.into(),
                timestamp: at(secs),
            }),
        )
    }

    pub fn typing(seq: u64, room: &str, on: bool) -> NetEvent {
        event(seq, Event::PartnerTyping(PartnerTyping { room_id: room.into(), typing: on }))
    }

    /// `direct.typing` from client `from` (its name is its id).
    pub fn dm_typing(seq: u64, from: &str, on: bool) -> NetEvent {
        event(
            seq,
            Event::DirectTyping(DirectTyping { from: from.into(), from_name: from.into(), typing: on }),
        )
    }

    pub fn gone(seq: u64, room: &str) -> NetEvent {
        event(
            seq,
            Event::PartnerDisconnected(PartnerDisconnected {
                room_id: room.into(),
                reason: DisconnectReason::Left,
                undelivered: Vec::new(),
            }),
        )
    }

    pub fn sent(room: &str, text: &str, secs: u64) -> NetEvent {
        sent_as(0xfeed, room, text, secs)
    }

    /// Our message `text`, accepted by the server as message `id`.
    pub fn sent_as(id: u64, room: &str, text: &str, secs: u64) -> NetEvent {
        NetEvent::SentRoom {
            text: text.into(),
            reply: SentRoomReply {
                room_id: room.into(),
                message_id: MessageId(id),
                seq: 1,
                timestamp: at(secs),
            },
        }
    }

    /// `partner.reconnecting`: the room waits for the partner until `by_secs`.
    pub fn dropped(seq: u64, room: &str, by_secs: u64) -> NetEvent {
        event(
            seq,
            Event::PartnerReconnecting(PartnerReconnecting {
                room_id: room.into(),
                reconnect_by: at(by_secs),
            }),
        )
    }

    /// `partner.reconnected`.
    pub fn back(seq: u64, room: &str) -> NetEvent {
        event(seq, Event::PartnerReconnected(PartnerReconnected { room_id: room.into() }))
    }

    /// `partner.disconnected {reason: timeout}` listing our messages `undelivered`.
    pub fn timed_out(seq: u64, room: &str, undelivered: &[u64]) -> NetEvent {
        event(
            seq,
            Event::PartnerDisconnected(PartnerDisconnected {
                room_id: room.into(),
                reason: DisconnectReason::Timeout,
                undelivered: undelivered.iter().map(|id| MessageId(*id)).collect(),
            }),
        )
    }

    pub fn dm_joined(client_id: &str) -> NetEvent {
        NetEvent::Joined {
            joined: Joined::Dm(CheckedInReply {
                client_id: client_id.into(),
                name: client_id.into(),
                capabilities: vec![],
                resume_token: Some("rt".into()),
                pending_messages: 0,
            }),
            fresh: false,
            restored: false,
        }
    }

    pub fn client(id: &str, status: PresenceStatus) -> ClientSummary {
        ClientSummary {
            client_id: id.into(),
            name: id.into(),
            capabilities: vec![],
            status,
            last_seen: at(0),
        }
    }

    /// An app in roulette mode, chatting with Bob in room `r_1`.
    pub fn chatting() -> App {
        let mut app = App::new(settings(Mode::Roulette));
        app.on_net(joined(waiting(1, 1, None)), at(0));
        app.on_net(found(1, "r_1"), at(1));
        app
    }
}

use fixtures::*;

fn type_text(app: &mut App, text: &str, now: Time) -> Vec<Action> {
    text.chars().flat_map(|c| app.on_key(Key::Char(c), now)).collect()
}

fn kinds(app: &App) -> Vec<&'static str> {
    app.scrollback()
        .map(|e| match e {
            Entry::Connected { .. } => "connected",
            Entry::Warning { .. } => "warning",
            Entry::Waiting { .. } => "waiting",
            Entry::Matched { .. } => "matched",
            Entry::Message { mine: true, .. } => "mine",
            Entry::Message { .. } => "message",
            Entry::PartnerLeft { .. } => "partner_left",
            Entry::PartnerReconnecting { .. } => "partner_reconnecting",
            Entry::PartnerReconnected { .. } => "partner_reconnected",
            Entry::Left { .. } => "left",
            Entry::LeftQueue { .. } => "left_queue",
            Entry::Blocked { .. } => "blocked",
            Entry::Clients { .. } => "clients",
            Entry::History { .. } => "history",
            Entry::Expired { .. } => "expired",
            Entry::Reconnecting { .. } => "reconnecting",
            Entry::Reconnected { .. } => "reconnected",
            Entry::Info { .. } => "info",
            Entry::Error { .. } => "error",
            Entry::Closed { .. } => "closed",
            Entry::Typing { .. } => "typing",
            Entry::Presence { .. } => "presence",
        })
        .collect()
}

fn last_error(app: &App) -> String {
    app.scrollback()
        .rev()
        .find_map(|e| match e {
            Entry::Error { message, .. } => Some(message.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[test]
fn joining_waits_then_a_match_starts_the_chat() {
    let mut app = App::new(settings(Mode::Roulette));
    assert_eq!(app.status(), ("connecting to http://127.0.0.1:8123/mcp…".into(), view::Tone::Pending));
    app.on_net(joined(waiting(2, 3, Some(12))), at(0));
    assert_eq!(app.status(), ("waiting for a partner · #2 of 3 · for 0 s".into(), view::Tone::Pending));
    assert_eq!(app.header(), "mcp-chat · roulette · Alice");
    app.on_net(found(1, "r_1"), at(5));
    assert_eq!(app.status(), ("chatting with Bob · shared: rust".into(), view::Tone::Normal));
    assert_eq!(kinds(&app), ["connected", "waiting", "matched"]);
}

#[test]
fn a_match_reported_twice_is_shown_once() {
    let mut app = App::new(settings(Mode::Roulette));
    let matched = QueueStatus::Matched {
        room_id: "r_1".into(),
        partner: partner("u_bob", "Bob"),
        shared_interests: vec![],
    };
    app.on_net(joined(matched), at(0));
    app.on_net(found(1, "r_1"), at(0));
    assert_eq!(kinds(&app), ["connected", "matched"]);
}

#[test]
fn a_late_waiting_reply_does_not_undo_a_match() {
    let mut app = chatting();
    app.on_net(
        NetEvent::Queued(EnterQueueReply {
            user_id: "u_alice".into(),
            display_name: "Alice".into(),
            resume_token: None,
            interests: vec![],
            status: waiting(1, 1, None),
        }),
        at(2),
    );
    assert!(matches!(app.roulette(), Roulette::Chatting { .. }));
}

#[test]
fn messages_go_to_the_room_and_echo_after_the_receipt() {
    let mut app = chatting();
    type_text(&mut app, "hello", at(2));
    let actions = app.on_key(Key::Enter, at(2));
    assert_eq!(actions, [Action::SendRoom { room_id: "r_1".into(), text: "hello".into() }]);
    assert!(app.input().is_empty());
    assert_eq!(kinds(&app).last(), Some(&"matched"), "nothing shown before the server accepts it");
    app.on_net(sent("r_1", "hello", 2), at(2));
    app.on_net(received(2, Some("r_1"), "u_bob", "hi!", 3), at(3));
    assert_eq!(kinds(&app)[3..], ["mine", "message"]);
}

#[test]
fn a_pasted_paragraph_is_one_message_with_its_line_breaks() {
    let mut app = chatting();
    // Terminals send a pasted line break as CR.
    app.on_key(Key::Paste("line one\rline two\r\nline three".into()), at(2));
    assert!(app.input().is_multiline(), "still being edited: nothing sent yet");
    let actions = app.on_key(Key::Enter, at(2));
    let sends: Vec<&Action> = actions.iter().filter(|a| matches!(a, Action::SendRoom { .. })).collect();
    assert_eq!(
        sends,
        [&Action::SendRoom { room_id: "r_1".into(), text: "line one\nline two\nline three".into() }]
    );
}

#[test]
fn alt_enter_starts_a_new_line_and_up_walks_the_lines_first() {
    let mut app = chatting();
    type_text(&mut app, "first", at(2));
    app.on_key(Key::Enter, at(2));
    type_text(&mut app, "one", at(3));
    app.on_key(Key::Newline, at(3));
    type_text(&mut app, "two", at(3));
    app.on_key(Key::Up, at(3));
    assert_eq!((app.input().text().as_str(), app.input().cursor()), ("one\ntwo", 3), "up a line");
    app.on_key(Key::Up, at(3));
    assert_eq!(app.input().text(), "first", "then the history");
    app.on_key(Key::Down, at(3));
    assert_eq!(app.input().text(), "one\ntwo", "and back to the draft");
    let actions = app.on_key(Key::Enter, at(4));
    assert!(actions.contains(&Action::SendRoom { room_id: "r_1".into(), text: "one\ntwo".into() }));
}

#[test]
fn typing_is_announced_throttled_and_withdrawn() {
    let mut app = chatting();
    let typing = |on| Action::SetTyping { room_id: "r_1".into(), typing: on };
    assert_eq!(type_text(&mut app, "he", at(10)), [typing(true)], "once, not per key");
    assert_eq!(type_text(&mut app, "l", at(12)), [], "within the refresh interval");
    assert_eq!(type_text(&mut app, "l", at(13)), [typing(true)], "refreshed before the server drops it");
    assert_eq!(app.on_key(Key::KillToStart, at(13)), [typing(false)], "emptied line");
    assert_eq!(type_text(&mut app, "/who", at(14)), [], "commands are not typing");
    app.on_key(Key::KillToStart, at(14));
    type_text(&mut app, "ok", at(15));
    assert_eq!(app.tick(at(18)), [], "still within the idle allowance");
    assert_eq!(app.tick(at(19)), [typing(false)], "stopped after 4 s without a key");
    type_text(&mut app, "!", at(20));
    let actions = app.on_key(Key::Enter, at(20));
    assert_eq!(
        actions,
        [Action::SendRoom { room_id: "r_1".into(), text: "ok!".into() }],
        "sending clears it"
    );
}

#[test]
fn nobody_hears_typing_outside_a_chat() {
    let mut app = App::new(settings(Mode::Roulette));
    app.on_net(joined(waiting(1, 1, None)), at(0));
    assert_eq!(type_text(&mut app, "hi", at(1)), []);
    assert_eq!(app.on_key(Key::Enter, at(1)), []);
    assert_eq!(last_error(&app), "you are still waiting for a partner; not sent");
}

#[test]
fn the_partner_typing_indicator_comes_and_goes() {
    let mut app = chatting();
    app.on_net(typing(2, "r_1", true), at(2));
    assert_eq!(app.typing_line().as_deref(), Some("Bob is typing…"));
    assert!(matches!(app.take_emitted().last(), Some(Entry::Typing { typing: true, .. })));
    assert!(!kinds(&app).contains(&"typing"), "typing never enters the scrollback");
    app.on_net(received(3, Some("r_1"), "u_bob", "hey", 3), at(3));
    assert_eq!(app.typing_line(), None, "a message ends it");
    app.on_net(typing(4, "r_1", true), at(4));
    app.on_net(typing(5, "r_other", true), at(4));
    app.tick(at(13));
    assert!(app.typing_line().is_some());
    app.tick(at(14));
    assert_eq!(app.typing_line(), None, "expires even if the stop was lost");
}

#[test]
fn next_requeues_and_partner_leaving_ends_the_chat() {
    let mut app = chatting();
    assert_eq!(app.submit("/next", at(2)), [Action::LeaveChat { room_id: "r_1".into(), requeue: true }]);
    app.on_net(
        NetEvent::LeftChat(LeftChatReply {
            room_id: "r_1".into(),
            was_active: true,
            requeued: Some(waiting(1, 1, None)),
        }),
        at(2),
    );
    assert!(matches!(app.roulette(), Roulette::Waiting { .. }));
    assert_eq!(app.submit("/next", at(3)), []);
    app.on_net(found(2, "r_2"), at(4));
    app.on_net(gone(3, "r_1"), at(5));
    assert!(matches!(app.roulette(), Roulette::Chatting { .. }), "an old room's departure is ignored");
    app.on_net(gone(4, "r_2"), at(6));
    assert_eq!(app.status(), ("Bob left · /next for someone new".into(), view::Tone::Alert));
    assert_eq!(app.submit("still there?", at(7)), []);
    assert_eq!(last_error(&app), "the chat has ended; not sent. /next to meet someone new");
    assert_eq!(app.submit("/next", at(8)), [Action::EnterQueue]);
    assert_eq!(app.submit("/history", at(8)), [Action::History { room_id: "r_2".into() }]);
}

#[test]
fn leave_and_block() {
    let mut app = chatting();
    assert_eq!(app.submit("/leave", at(2)), [Action::LeaveChat { room_id: "r_1".into(), requeue: false }]);
    assert_eq!(
        app.submit("/block spam", at(2)),
        [Action::Block { room_id: "r_1".into(), reason: Some("spam".into()) }]
    );
    app.on_net(
        NetEvent::Blocked(BlockedReply { room_id: "r_1".into(), blocked_user_id: "u_bob".into() }),
        at(3),
    );
    assert_eq!(app.roulette(), &Roulette::Idle);
    let notice = app.scrollback().last().and_then(|e| e.plain_text(0)).unwrap_or_default();
    assert!(notice.contains("blocked and reported Bob;"), "by name, not u_bob: {notice}");
    assert_eq!(app.submit("/block", at(4)), []);
    assert_eq!(last_error(&app), "there is nobody to block: you are not in a chat");
    assert_eq!(app.submit("/leave", at(4)), []);
    app.on_net(
        NetEvent::Queued(EnterQueueReply {
            user_id: "u_alice".into(),
            display_name: "Alice".into(),
            resume_token: None,
            interests: vec![],
            status: waiting(1, 1, None),
        }),
        at(5),
    );
    assert_eq!(app.submit("/leave", at(6)), [Action::LeaveQueue]);
}

#[test]
fn refused_requests_show_the_servers_words_and_the_chat_goes_on() {
    let mut app = chatting();
    let message = "message is 20000 bytes; the limit is 16384 bytes, so split it into several messages";
    app.on_net(NetEvent::Failed { request: Request::Send, message: message.into() }, at(2));
    assert_eq!(last_error(&app), format!("not sent: {message}"));
    assert!(matches!(app.roulette(), Roulette::Chatting { .. }));
    assert_eq!(
        app.submit("short", at(3)),
        [Action::SendRoom { room_id: "r_1".into(), text: "short".into() }]
    );
}

#[test]
fn slash_command_odds_and_ends() {
    let mut app = chatting();
    assert_eq!(app.submit("/help", at(2)), []);
    assert!(matches!(app.scrollback().last(), Some(Entry::Info { text, .. }) if text.contains("/next")));
    assert_eq!(app.submit("/dance", at(2)), []);
    assert_eq!(last_error(&app), "unknown command /dance; /help lists the commands");
    assert_eq!(app.submit("/to bob", at(2)), []);
    assert!(last_error(&app).starts_with("/to is for direct messages"));
    assert_eq!(
        app.submit("//shrug", at(2)),
        [Action::SendRoom { room_id: "r_1".into(), text: "/shrug".into() }]
    );
    app.submit("/who", at(2));
    assert!(matches!(app.scrollback().last(),
        Some(Entry::Info { text, .. }) if text == "you are Alice [u_alice]; chatting with Bob [u_bob]; shared interests: rust"));
}

#[test]
fn reconnecting_is_shown_once_and_resuming_restores_the_room() {
    let mut app = chatting();
    app.on_net(NetEvent::Reconnecting { attempt: 1, reason: "connection refused".into() }, at(2));
    app.on_net(NetEvent::Reconnecting { attempt: 2, reason: "connection refused".into() }, at(3));
    assert_eq!(kinds(&app).iter().filter(|k| **k == "reconnecting").count(), 1);
    assert_eq!(app.status(), ("connection lost · reconnecting (attempt 2)…".into(), view::Tone::Alert));
    let actions = app.submit("are you there?", at(3));
    assert_eq!(actions.len(), 1, "sent once the connection is back");
    app.on_net(
        NetEvent::Resumed(IdentityReply {
            user_id: Some("u_alice".into()),
            display_name: Some("Alice".into()),
            resume_token: None,
            checked_in: false,
            activity: ActivityState::Chatting { room_id: "r_1".into(), partner: partner("u_bob", "Bob") },
            pending_events: 0,
            pending_messages: 0,
            last_seq: 1,
        }),
        at(4),
    );
    assert_eq!(app.connection(), &Connection::Online);
    assert_eq!(kinds(&app).last(), Some(&"reconnected"), "same room: no second 'matched'");
    assert_eq!(app.status().0, "chatting with Bob · shared: rust");
}

#[test]
fn a_chat_that_ended_during_the_outage_is_reported() {
    let mut app = chatting();
    app.on_net(NetEvent::Reconnecting { attempt: 1, reason: "timed out".into() }, at(2));
    app.on_net(
        NetEvent::Resumed(IdentityReply {
            user_id: Some("u_alice".into()),
            display_name: Some("Alice".into()),
            resume_token: None,
            checked_in: false,
            activity: ActivityState::Idle,
            pending_events: 1,
            pending_messages: 0,
            last_seq: 2,
        }),
        at(40),
    );
    assert_eq!(app.roulette(), &Roulette::Idle);
    assert!(matches!(app.scrollback().last(),
        Some(Entry::Info { text, .. }) if text.starts_with("your chat with Bob ended while you were away")));
    app.on_net(gone(2, "r_1"), at(40));
    assert_eq!(app.roulette(), &Roulette::Idle, "the late notice changes nothing");
    assert_eq!(app.submit("/next", at(41)), [Action::EnterQueue]);
}

#[test]
fn a_forgotten_session_starts_afresh() {
    let mut app = chatting();
    app.on_net(NetEvent::Reconnecting { attempt: 1, reason: "session expired".into() }, at(2));
    let NetEvent::Joined { joined, .. } = joined(waiting(1, 1, None)) else { unreachable!() };
    app.on_net(NetEvent::Joined { joined, fresh: true, restored: false }, at(3));
    assert_eq!(kinds(&app)[kinds(&app).len() - 2..], ["reconnected", "waiting"]);
    assert!(matches!(app.scrollback().rev().nth(1), Some(Entry::Reconnected { resumed: false, .. })));
}

#[test]
fn quitting_closes_the_session_and_a_second_interrupt_gives_up() {
    let mut app = chatting();
    assert_eq!(app.on_key(Key::Interrupt, at(2)), [Action::Quit]);
    assert!(!app.is_done());
    assert_eq!(app.submit("/next", at(2)), [], "nothing more once quitting");
    app.on_net(NetEvent::Closed, at(3));
    assert!(app.is_done());
    assert_eq!(app.failure(), None);

    let mut impatient = chatting();
    impatient.submit("/quit", at(2));
    assert!(impatient.on_key(Key::Interrupt, at(2)).is_empty());
    assert!(impatient.is_done());
}

#[test]
fn a_fatal_error_ends_the_app_with_a_failure() {
    let mut app = App::new(settings(Mode::Roulette));
    app.on_net(NetEvent::Fatal("cannot connect to http://x/mcp: Connection refused".into()), at(0));
    assert!(app.is_done());
    assert_eq!(app.failure(), Some("cannot connect to http://x/mcp: Connection refused"));
    assert_eq!(app.status().1, view::Tone::Alert);
}

#[test]
fn direct_messages_track_target_and_unread() {
    let mut app = App::new(settings(Mode::Dm { client_id: "alice".into() }));
    assert_eq!(app.on_net(dm_joined("alice"), at(0)), [Action::ListClients { quiet: true }]);
    assert_eq!(app.submit("hello?", at(1)), []);
    assert_eq!(last_error(&app), "pick a recipient first: /to <client_id> (/who lists clients)");
    let refresh = || vec![Action::ListClients { quiet: true }];
    assert_eq!(app.on_net(received(1, None, "bob", "ping", 2), at(2)), refresh(), "bob is new: who is he?");
    assert_eq!(app.dm().target.as_deref(), Some("bob"), "the first sender becomes the recipient");
    assert_eq!(app.submit("pong", at(3)), [Action::SendDirect { to: "bob".into(), text: "pong".into() }]);
    assert_eq!(app.on_net(received(2, None, "carol", "psst", 4), at(4)), refresh());
    assert_eq!(app.on_net(received(3, None, "carol", "over here", 5), at(5)), [], "refreshed just now");
    assert_eq!(app.status().0, "to bob · unread: carol 2");
    let sent = app.submit("/to carol hi", at(9));
    assert_eq!(
        sent,
        [Action::SendDirect { to: "carol".into(), text: "hi".into() }],
        "carol is known since she wrote"
    );
    assert!(app.dm().unread.is_empty());
    assert_eq!(app.submit("/who", at(7)), [Action::ListClients { quiet: false }]);
    assert_eq!(app.submit("/next", at(7)), []);
    assert!(last_error(&app).starts_with("that command is for roulette"));
    app.on_net(
        NetEvent::SentDirect {
            text: "hi".into(),
            reply: SentDirectReply {
                recipient_id: "carol".into(),
                message_id: chat_core::MessageId(9),
                timestamp: at(6),
                expires_at: at(600),
                recipient_online: false,
            },
        },
        at(6),
    );
    assert!(matches!(app.scrollback().last(), Some(Entry::Info { text, .. }) if text.contains("offline")));
}

#[test]
fn the_dm_sidebar_lists_clients_unread_and_the_target() {
    let mut app = App::new(settings(Mode::Dm { client_id: "alice".into() }));
    app.on_net(dm_joined("alice"), at(0));
    app.on_net(
        NetEvent::Clients {
            reply: ClientsReply {
                clients: vec![
                    client("alice", PresenceStatus::Online),
                    client("bob", PresenceStatus::Online),
                    client("carol", PresenceStatus::Offline),
                ],
                omitted: 0,
            },
            quiet: true,
        },
        at(1),
    );
    assert!(!kinds(&app).contains(&"clients"), "a quiet refresh only updates the sidebar");
    app.submit("/to bob", at(2));
    app.on_net(received(1, None, "dave", "hi", 3), at(3));
    let items = app.sidebar().expect("DM mode has a sidebar");
    let summary: Vec<(&str, usize, bool)> =
        items.iter().map(|i| (i.client_id.as_str(), i.unread, i.selected)).collect();
    assert_eq!(summary, [("bob", 0, true), ("carol", 0, false), ("dave", 1, false)]);
}

#[test]
fn dm_typing_is_announced_to_the_recipient_throttled_and_withdrawn() {
    let mut app =
        dm_app_with(vec![client("bob", PresenceStatus::Online), client("carol", PresenceStatus::Online)]);
    assert_eq!(type_text(&mut app, "hi", at(1)), [], "no recipient yet, nobody to tell");
    app.on_key(Key::KillToStart, at(1));
    app.submit("/to bob", at(2));
    let typing = |to: &str, on| Action::SetDirectTyping { to: to.into(), typing: on };
    assert_eq!(type_text(&mut app, "he", at(10)), [typing("bob", true)], "once, not per key");
    assert_eq!(type_text(&mut app, "l", at(12)), [], "within the refresh interval");
    assert_eq!(
        type_text(&mut app, "l", at(13)),
        [typing("bob", true)],
        "refreshed before the server drops it"
    );
    assert_eq!(app.on_key(Key::KillToStart, at(13)), [typing("bob", false)], "emptied line");
    assert_eq!(type_text(&mut app, "/to carol", at(14)), [], "commands are not typing");
    assert_eq!(app.on_key(Key::Enter, at(14)), [], "switching recipients sends nothing");
    assert_eq!(type_text(&mut app, "ok", at(15)), [typing("carol", true)], "the new recipient");
    assert_eq!(app.tick(at(18)), [Action::ListClients { quiet: true }], "still within the idle allowance");
    assert_eq!(app.tick(at(19)), [typing("carol", false)], "stopped after 4 s without a key");
    type_text(&mut app, "!", at(20));
    assert_eq!(
        app.on_key(Key::Enter, at(20)),
        [Action::SendDirect { to: "carol".into(), text: "ok!".into() }],
        "sending clears it"
    );
    // Typing to oneself is nobody's business.
    app.submit("/to alice", at(21));
    assert_eq!(type_text(&mut app, "me", at(22)), []);
}

#[test]
fn a_dm_peer_typing_shows_for_the_conversation_and_in_the_sidebar() {
    let mut app =
        dm_app_with(vec![client("bob", PresenceStatus::Online), client("carol", PresenceStatus::Online)]);
    app.on_net(dm_typing(1, "bob", true), at(1));
    assert_eq!(app.typing_line().as_deref(), Some("bob is typing…"), "before there is a recipient");
    assert!(matches!(
        app.take_emitted().last(),
        Some(Entry::Typing { from: Some(from), room_id: None, typing: true, .. }) if &**from == "bob"
    ));
    assert!(!kinds(&app).contains(&"typing"), "typing never enters the scrollback");
    app.submit("/to carol", at(2));
    assert_eq!(app.typing_line(), None, "bob is not the conversation shown");
    let typing: Vec<(String, bool)> =
        app.sidebar().unwrap_or_default().into_iter().map(|i| (i.client_id, i.typing)).collect();
    assert_eq!(typing, [("bob".to_owned(), true), ("carol".to_owned(), false)], "but the sidebar shows it");
    app.on_net(dm_typing(2, "carol", true), at(3));
    assert_eq!(app.typing_line().as_deref(), Some("carol is typing…"));
    app.on_net(received(3, None, "carol", "here", 4), at(4));
    assert_eq!(app.typing_line(), None, "a message ends it");
    app.on_net(dm_typing(4, "carol", true), at(5));
    app.on_net(dm_typing(5, "carol", false), at(6));
    assert_eq!(app.typing_line(), None, "stopped");
    app.on_net(dm_typing(6, "carol", true), at(7));
    app.tick(at(16));
    assert!(app.typing_line().is_some());
    app.tick(at(17));
    assert_eq!(app.typing_line(), None, "expires even if the stop was lost");
    assert!(app.sidebar().unwrap_or_default().iter().all(|i| !i.typing), "bob's expired too");
}

fn dm_app_with(clients: Vec<ClientSummary>) -> App {
    let mut app = App::new(settings(Mode::Dm { client_id: "alice".into() }));
    app.on_net(dm_joined("alice"), at(0));
    app.on_net(NetEvent::Clients { reply: ClientsReply { clients, omitted: 0 }, quiet: true }, at(0));
    app
}

fn dots(app: &App) -> Vec<(String, PresenceStatus)> {
    let items = app.sidebar().unwrap_or_default();
    items.into_iter().map(|i| (i.client_id, i.status)).collect()
}

fn presence_entries(app: &mut App) -> Vec<(String, PresenceStatus)> {
    app.take_emitted()
        .into_iter()
        .filter_map(|e| match e {
            Entry::Presence { client_id, status, .. } => Some((client_id.to_string(), status)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_send_to_someone_offline_turns_their_dot_off_at_once() {
    let mut app = dm_app_with(vec![client("bob", PresenceStatus::Online)]);
    app.take_emitted();
    app.submit("/to bob", at(1));
    let reply = |online| SentDirectReply {
        recipient_id: "bob".into(),
        message_id: chat_core::MessageId(9),
        timestamp: at(2),
        expires_at: at(600),
        recipient_online: online,
    };
    app.on_net(NetEvent::SentDirect { text: "still there?".into(), reply: reply(false) }, at(2));
    assert_eq!(dots(&app), [("bob".to_owned(), PresenceStatus::Offline)], "under \"bob is offline\"");
    assert_eq!(presence_entries(&mut app), [("bob".to_owned(), PresenceStatus::Offline)]);
    app.on_net(NetEvent::SentDirect { text: "back?".into(), reply: reply(true) }, at(3));
    assert_eq!(dots(&app), [("bob".to_owned(), PresenceStatus::Online)]);
    assert!(!kinds(&app).contains(&"presence"), "never in the scrollback");
}

#[test]
fn a_message_from_someone_new_shows_them_online_before_the_next_poll() {
    let mut app = dm_app_with(vec![client("bob", PresenceStatus::Offline)]);
    app.on_net(received(1, None, "carol", "hi, I just checked in", 2), at(2));
    app.on_net(received(2, None, "bob", "me too", 3), at(3));
    assert_eq!(
        dots(&app),
        [("bob".to_owned(), PresenceStatus::Online), ("carol".to_owned(), PresenceStatus::Online)]
    );
}

#[test]
fn a_polled_list_reports_what_changed() {
    let mut app =
        dm_app_with(vec![client("alice", PresenceStatus::Online), client("bob", PresenceStatus::Online)]);
    assert_eq!(presence_entries(&mut app), [], "the first list is the starting point");
    assert_eq!(app.tick(at(5)), [Action::ListClients { quiet: true }]);
    app.on_net(
        NetEvent::Clients {
            reply: ClientsReply {
                clients: vec![
                    client("alice", PresenceStatus::Online),
                    client("bob", PresenceStatus::Reconnecting),
                    client("carol", PresenceStatus::Online),
                ],
                omitted: 0,
            },
            quiet: true,
        },
        at(5),
    );
    assert_eq!(
        presence_entries(&mut app),
        [("bob".to_owned(), PresenceStatus::Reconnecting), ("carol".to_owned(), PresenceStatus::Online)]
    );
    // While someone is reconnecting the list is polled every 3 s, not every 5.
    assert_eq!(app.tick(at(7)), []);
    assert_eq!(app.tick(at(8)), [Action::ListClients { quiet: true }]);
}

#[test]
fn dm_client_list_refreshes_periodically() {
    let mut app = App::new(settings(Mode::Dm { client_id: "alice".into() }));
    assert_eq!(app.tick(at(0)), [], "not before joining");
    app.on_net(dm_joined("alice"), at(0));
    assert_eq!(app.tick(at(4)), []);
    assert_eq!(app.tick(at(5)), [Action::ListClients { quiet: true }]);
    assert_eq!(app.tick(at(6)), []);
}

#[test]
fn the_queue_position_is_refreshed_while_waiting() {
    let mut app = App::new(settings(Mode::Roulette));
    app.on_net(joined(waiting(1, 1, Some(400))), at(0));
    assert_eq!(app.tick(at(1)), []);
    assert_eq!(app.tick(at(5)), []);
    assert_eq!(app.tick(at(6)), [Action::RefreshQueue]);
    let refreshed = |status| {
        NetEvent::QueueRefreshed(EnterQueueReply {
            user_id: "u_alice".into(),
            display_name: "Alice".into(),
            resume_token: None,
            interests: vec![],
            status,
        })
    };
    app.on_net(refreshed(waiting(1, 1, Some(400))), at(6));
    assert_eq!(kinds(&app), ["connected", "waiting"], "nothing changed, nothing added");
    app.tick(at(11));
    // Someone else joined behind us: the first in line learns it too.
    app.on_net(refreshed(waiting(1, 2, Some(400))), at(11));
    assert_eq!(app.status().0, "waiting for a partner · #1 of 2 · for 11 s", "no minute estimate");
    assert_eq!(kinds(&app), ["connected", "waiting", "waiting"]);
    // /leave: no refresh may queue us again meanwhile.
    assert_eq!(app.submit("/leave", at(12)), [Action::LeaveQueue]);
    assert_eq!(app.tick(at(20)), []);
}

#[test]
fn after_next_the_rematch_cooldown_is_explained() {
    let mut app = chatting();
    app.submit("/next", at(2));
    app.on_net(
        NetEvent::LeftChat(LeftChatReply {
            room_id: "r_1".into(),
            was_active: true,
            requeued: Some(waiting(1, 1, None)),
        }),
        at(2),
    );
    let note = app.scrollback().last().and_then(|e| e.plain_text(0)).unwrap_or_default();
    assert!(note.contains("not be matched with Bob again for a while"), "{note}");
    assert!(note.contains("rematch cooldown"), "{note}");
    app.tick(at(32));
    assert_eq!(app.status().0, "waiting for a partner · #1 of 1 · for 30 s · not Bob again yet");
}

#[test]
fn scrolling_moves_back_and_escape_returns() {
    let mut app = chatting();
    app.on_key(Key::PageUp, at(2));
    assert_eq!(app.scroll(), 10);
    app.clamp_scroll(4);
    assert_eq!(app.scroll(), 4);
    app.on_net(received(2, Some("r_1"), "u_bob", "new", 3), at(3));
    assert_eq!(app.scroll(), 5, "the view stays on what the user reads");
    app.on_key(Key::PageDown, at(3));
    assert_eq!(app.scroll(), 0);
    app.on_key(Key::PageUp, at(3));
    app.on_key(Key::Escape, at(3));
    assert_eq!(app.scroll(), 0);
}

#[test]
fn plain_and_tui_see_the_same_entries() {
    let mut app = chatting();
    let emitted = app.take_emitted();
    let scrollback: Vec<Entry> = app.scrollback().cloned().collect();
    assert_eq!(emitted, scrollback);
    assert!(app.take_emitted().is_empty());
}

/// The plain-mode text of every scrollback entry, for assertions on what is shown.
fn plain_lines(app: &App) -> Vec<String> {
    app.scrollback().filter_map(|e| e.plain_text(0)).collect()
}

fn last_line(app: &App) -> String {
    plain_lines(app).pop().unwrap_or_default()
}

#[test]
fn a_partner_whose_connection_dropped_is_waited_for_then_welcomed_back() {
    let mut app = chatting();
    app.on_net(typing(2, "r_1", true), at(2));
    app.on_net(dropped(3, "r_1", 33), at(3));
    assert_eq!(last_line(&app), "[12:00:03] * Bob's connection dropped — waiting for them (until 12:00:33)…");
    assert_eq!(
        app.status(),
        ("Bob's connection dropped · waiting for them until 12:00:33…".into(), view::Tone::Pending)
    );
    assert_eq!(app.typing_line(), None, "someone who is away is not typing");
    assert_eq!(
        app.submit("are you there?", at(4)),
        [Action::SendRoom { room_id: "r_1".into(), text: "are you there?".into() }],
        "the room is still open: messages wait for them"
    );

    app.on_net(dropped(4, "r_other", 40), at(4));
    app.on_net(back(5, "r_other"), at(4));
    assert!(last_line(&app).contains("waiting for them"), "another room's events change nothing");

    app.on_net(back(6, "r_1"), at(9));
    assert_eq!(last_line(&app), "[12:00:09] * Bob is back");
    assert_eq!(app.status(), ("chatting with Bob · shared: rust".into(), view::Tone::Normal));
    app.on_net(back(7, "r_1"), at(10));
    assert_eq!(plain_lines(&app).iter().filter(|l| l.ends_with("Bob is back")).count(), 1, "told once");
}

#[test]
fn undelivered_messages_are_marked_and_counted() {
    let mut app = chatting();
    app.on_net(sent_as(10, "r_1", "see you", 2), at(2));
    app.on_net(dropped(2, "r_1", 33), at(3));
    app.on_net(sent_as(11, "r_1", "are you there?", 5), at(5));
    app.on_net(sent_as(12, "r_1", "hello?", 6), at(6));
    app.on_net(timed_out(3, "r_1", &[11, 12]), at(33));
    let lines = plain_lines(&app);
    assert!(lines.contains(&"[12:00:02] <Alice> see you".to_owned()), "{lines:#?}");
    assert!(lines.contains(&"[12:00:05] <Alice> are you there? ✗ not delivered".to_owned()), "{lines:#?}");
    assert!(lines.contains(&"[12:00:06] <Alice> hello? ✗ not delivered".to_owned()), "{lines:#?}");
    assert_eq!(
        last_line(&app),
        "[12:00:33] * Bob lost their connection and did not come back; /next to meet someone new\n\
         [12:00:33] * 2 of your messages were not delivered:\n\
         [12:00:33] *   ✗ are you there?\n\
         [12:00:33] *   ✗ hello?"
    );
    assert_eq!(app.status(), ("Bob left · /next for someone new".into(), view::Tone::Alert));
}

#[test]
fn the_partners_connection_state_as_json_lines() {
    let mut app = chatting();
    app.take_emitted();
    app.on_net(dropped(2, "r_1", 33), at(3));
    app.on_net(back(3, "r_1"), at(9));
    app.on_net(dropped(4, "r_1", 50), at(20));
    app.on_net(sent_as(11, "r_1", "still there?", 21), at(21));
    app.on_net(timed_out(5, "r_1", &[11, 99]), at(50));
    let json: Vec<serde_json::Value> =
        app.take_emitted().iter().map(|e| serde_json::to_value(e).unwrap_or_default()).collect();
    assert_eq!(
        json,
        [
            serde_json::json!({"type": "partner_reconnecting", "ts": "2024-01-01T12:00:03.000Z",
                "room_id": "r_1", "name": "Bob", "reconnect_by": "2024-01-01T12:00:33.000Z"}),
            serde_json::json!({"type": "partner_reconnected", "ts": "2024-01-01T12:00:09.000Z",
                "room_id": "r_1", "name": "Bob"}),
            serde_json::json!({"type": "partner_reconnecting", "ts": "2024-01-01T12:00:20.000Z",
                "room_id": "r_1", "name": "Bob", "reconnect_by": "2024-01-01T12:00:50.000Z"}),
            serde_json::json!({"type": "message", "ts": "2024-01-01T12:00:21.000Z", "room_id": "r_1",
                "message_id": "m_000000000000000b", "from": "u_alice", "from_name": "Alice",
                "text": "still there?", "mine": true}),
            serde_json::json!({"type": "partner_left", "ts": "2024-01-01T12:00:50.000Z", "room_id": "r_1",
            "name": "Bob", "reason": "timeout", "undelivered": [
                {"message_id": "m_000000000000000b", "text": "still there?"},
                {"message_id": "m_0000000000000063"},
            ]}),
        ]
    );
    let plain = app.scrollback().last().and_then(|e| e.plain_text(0)).unwrap_or_default();
    assert!(
        plain.ends_with(
            "2 of your messages were not delivered:\n[12:00:50] *   ✗ still there?\n\
                         [12:00:50] *   ✗ (message m_0000000000000063, no longer shown)"
        ),
        "{plain}"
    );
}

#[test]
fn a_departure_with_everything_delivered_says_nothing_about_delivery() {
    let mut app = chatting();
    app.on_net(sent_as(10, "r_1", "bye", 2), at(2));
    app.on_net(gone(2, "r_1"), at(3));
    let json = app.take_emitted().last().map(|e| serde_json::to_value(e).unwrap_or_default());
    assert_eq!(json.as_ref().and_then(|j| j.get("undelivered")), None, "{json:?}");
    assert_eq!(last_line(&app), "[12:00:03] * Bob left the chat; /next to meet someone new");
    assert!(plain_lines(&app).contains(&"[12:00:02] <Alice> bye".to_owned()));
}

#[test]
fn a_roulette_identity_restored_mid_chat_is_back_in_its_room() {
    let mut app = App::new(settings(Mode::Roulette));
    let identity = IdentityReply {
        user_id: Some("u_alice".into()),
        display_name: Some("Alice".into()),
        resume_token: Some("rt_secret".into()),
        checked_in: false,
        activity: ActivityState::Chatting { room_id: "r_1".into(), partner: partner("u_bob", "Bob") },
        pending_events: 1,
        pending_messages: 0,
        last_seq: 4,
    };
    app.on_net(NetEvent::Joined { joined: Joined::Restored(identity), fresh: false, restored: true }, at(0));
    assert_eq!(kinds(&app), ["connected", "matched"]);
    assert_eq!(app.me().map(|m| &*m.user_id), Some("u_alice"));
    assert!(app.in_room("r_1"));
    let json = app.take_emitted().first().map(|e| serde_json::to_value(e).unwrap_or_default());
    assert_eq!(json.as_ref().and_then(|j| j.get("restored")), Some(&serde_json::json!(true)), "{json:?}");
    assert_eq!(
        plain_lines(&app)[0],
        "[12:00:00] * connected to http://127.0.0.1:8123/mcp as Alice [u_alice] (taken back with the \
         resume token an earlier run saved)"
    );
    assert_eq!(
        app.submit("sorry, I crashed", at(1)),
        [Action::SendRoom { room_id: "r_1".into(), text: "sorry, I crashed".into() }]
    );
}

#[test]
fn a_fresh_connection_is_not_called_restored() {
    let mut app = App::new(settings(Mode::Dm { client_id: "carol".into() }));
    app.on_net(dm_joined("carol"), at(0));
    let json = app.take_emitted().first().map(|e| serde_json::to_value(e).unwrap_or_default());
    assert_eq!(json.as_ref().and_then(|j| j.get("restored")), Some(&serde_json::json!(false)), "{json:?}");
    assert_eq!(plain_lines(&app)[0], "[12:00:00] * connected to http://127.0.0.1:8123/mcp as carol");
}

#[test]
fn warnings_are_shown_and_the_session_goes_on() {
    let mut app = chatting();
    app.take_emitted();
    app.on_net(NetEvent::Warning("the state file is damaged".into()), at(2));
    assert_eq!(last_line(&app), "[12:00:02] ! warning: the state file is damaged");
    let json = app.take_emitted().first().map(|e| serde_json::to_value(e).unwrap_or_default());
    assert_eq!(json.as_ref().and_then(|j| j.get("type")), Some(&serde_json::json!("warning")));
    assert!(!app.is_done());
    assert_eq!(app.failure(), None);
}

#[test]
fn time_toggles_seconds_except_in_line_mode() {
    let mut app = chatting();
    assert!(!app.seconds());
    assert_eq!(app.submit("/time", at(1)), []);
    assert!(app.seconds());
    app.submit("/time", at(2));
    assert!(!app.seconds());
    let mut plain = chatting();
    plain.set_line_mode();
    plain.submit("/time", at(1));
    assert!(plain.seconds(), "plain lines keep their seconds");
    let note = plain.scrollback().last().and_then(|e| e.plain_text(0)).unwrap_or_default();
    assert!(note.contains("plain lines always show seconds"), "{note}");
}
