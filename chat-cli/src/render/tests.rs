//! Screens rendered into ratatui's `TestBackend` and compared with reviewed snapshots
//! (`src/render/snapshots/`). Accept changes with `INSTA_UPDATE=always`, then review.

use chat_core::{ClientsReply, PresenceStatus};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::draw;
use crate::app::tests::fixtures::*;
use crate::app::{App, Key, Mode, NetEvent};

fn screen(app: &mut App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    let mut max_scroll = 0;
    terminal.draw(|frame| max_scroll = draw(frame, app)).expect("draws");
    app.clamp_scroll(max_scroll);
    terminal
}

#[test]
fn waiting_for_a_partner() {
    let mut app = App::new(settings(Mode::Roulette));
    app.on_net(joined(waiting(2, 3, Some(12))), at(0));
    insta::assert_snapshot!("waiting", screen(&mut app, 64, 10).backend());
}

#[test]
fn chatting_while_the_partner_types() {
    let mut app = chatting();
    app.on_net(received(2, Some("r_1"), "u_bob", "hi! what brings you here?", 5), at(5));
    app.on_net(
        sent("r_1", "mostly rust, and a long message that needs to wrap onto a second line", 9),
        at(9),
    );
    app.on_net(typing(3, "r_1", true), at(10));
    for c in "same here".chars() {
        app.on_key(Key::Char(c), at(11));
    }
    let mut terminal = screen(&mut app, 64, 12);
    insta::assert_snapshot!("chatting_typing", terminal.backend());
    terminal.backend_mut().assert_cursor_position((11, 10));
}

#[test]
fn the_partner_left() {
    let mut app = chatting();
    app.on_net(received(2, Some("r_1"), "u_bob", "gotta go, bye", 5), at(5));
    app.on_net(gone(3, "r_1"), at(6));
    insta::assert_snapshot!("partner_left", screen(&mut app, 64, 10).backend());
}

#[test]
fn reconnecting() {
    let mut app = chatting();
    app.on_net(
        NetEvent::Reconnecting { attempt: 1, reason: "Connection refused (os error 111)".into() },
        at(7),
    );
    app.on_net(
        NetEvent::Reconnecting { attempt: 3, reason: "Connection refused (os error 111)".into() },
        at(9),
    );
    insta::assert_snapshot!("reconnecting", screen(&mut app, 64, 9).backend());
}

#[test]
fn dm_inbox_with_unread_counts() {
    let mut app = App::new(settings(Mode::Dm { client_id: "alice".into() }));
    app.on_net(dm_joined("alice"), at(0));
    app.on_net(
        NetEvent::Clients {
            reply: ClientsReply {
                clients: vec![
                    client("alice", PresenceStatus::Online),
                    client("build-bot", PresenceStatus::Reconnecting),
                    client("bob", PresenceStatus::Online),
                    client("carol", PresenceStatus::Offline),
                ],
                omitted: 0,
            },
            quiet: true,
        },
        at(1),
    );
    app.on_net(received(1, None, "bob", "can you review my PR?", 30), at(30));
    app.on_net(received(2, None, "carol", "lunch?", 40), at(40));
    app.on_net(received(3, None, "carol", "at noon", 41), at(41));
    insta::assert_snapshot!("dm_inbox", screen(&mut app, 72, 12).backend());
}

#[test]
fn dm_peer_typing() {
    let mut app = App::new(settings(Mode::Dm { client_id: "alice".into() }));
    app.on_net(dm_joined("alice"), at(0));
    let clients = vec![
        client("alice", PresenceStatus::Online),
        client("bob", PresenceStatus::Online),
        client("carol", PresenceStatus::Online),
    ];
    app.on_net(NetEvent::Clients { reply: ClientsReply { clients, omitted: 0 }, quiet: true }, at(1));
    app.on_net(received(1, None, "bob", "can you review my PR?", 30), at(30));
    app.on_net(dm_typing(2, "bob", true), at(31));
    app.on_net(dm_typing(3, "carol", true), at(31));
    insta::assert_snapshot!("dm_peer_typing", screen(&mut app, 72, 10).backend());
}

#[test]
fn scrolled_back_shows_a_marker() {
    let mut app = chatting();
    for i in 0..12 {
        app.on_net(received(i + 2, Some("r_1"), "u_bob", &format!("line {i}"), 10 + i), at(10 + i));
    }
    app.on_key(Key::PageUp, at(30));
    insta::assert_snapshot!("scrolled_back", screen(&mut app, 50, 9).backend());
}

#[test]
fn the_input_box_grows_with_a_long_line() {
    let mut app = chatting();
    for c in "a fairly long line typed into a narrow terminal window".chars() {
        app.on_key(Key::Char(c), at(2));
    }
    let mut terminal = screen(&mut app, 30, 8);
    insta::assert_snapshot!("input_wraps", terminal.backend());
    terminal.backend_mut().assert_cursor_position((2, 6));
}

#[test]
fn a_pasted_paragraph_fills_the_input_box_line_by_line() {
    let mut app = chatting();
    app.on_key(Key::Paste("first line\rsecond line\rthird".into()), at(2));
    let mut terminal = screen(&mut app, 40, 9);
    insta::assert_snapshot!("input_multiline", terminal.backend());
    terminal.backend_mut().assert_cursor_position((7, 7));
}

#[test]
fn a_tall_input_scrolls_inside_its_box() {
    let mut app = chatting();
    app.on_key(Key::Paste("1\n2\n3\n4\n5\n6\n7".into()), at(2));
    let mut terminal = screen(&mut app, 30, 10);
    insta::assert_snapshot!("input_scrolls", terminal.backend());
    terminal.backend_mut().assert_cursor_position((3, 8));
}

#[test]
fn messages_of_several_lines_keep_them_in_the_transcript() {
    let mut app = chatting();
    app.on_net(
        received(2, Some("r_1"), "u_bob", "roses are red\nviolets are blue, and this line is long", 5),
        at(5),
    );
    app.on_net(sent("r_1", "ok\n\nbye", 6), at(6));
    insta::assert_snapshot!("multiline_messages", screen(&mut app, 40, 12).backend());
}

#[test]
fn the_partners_connection_dropped() {
    let mut app = chatting();
    app.on_net(received(2, Some("r_1"), "u_bob", "brb, train tunnel", 5), at(5));
    app.on_net(dropped(3, "r_1", 37), at(7));
    insta::assert_snapshot!("partner_reconnecting", screen(&mut app, 64, 10).backend());
}

#[test]
fn the_partner_is_back() {
    let mut app = chatting();
    app.on_net(dropped(2, "r_1", 37), at(7));
    app.on_net(sent("r_1", "welcome back?", 9), at(9));
    app.on_net(back(3, "r_1"), at(12));
    insta::assert_snapshot!("partner_reconnected", screen(&mut app, 64, 10).backend());
}

#[test]
fn undelivered_messages_are_marked() {
    let mut app = chatting();
    app.on_net(sent_as(10, "r_1", "see you at eight", 3), at(3));
    app.on_net(dropped(2, "r_1", 37), at(7));
    app.on_net(sent_as(11, "r_1", "are you there?", 9), at(9));
    app.on_net(sent_as(12, "r_1", "hello?", 20), at(20));
    app.on_net(timed_out(3, "r_1", &[11, 12]), at(37));
    insta::assert_snapshot!("undelivered", screen(&mut app, 64, 14).backend());
}

#[test]
fn wrapped_history_lines_keep_their_indent() {
    let mut app = chatting();
    let line = |seq: u64, from: &str, text: &str| chat_core::HistoryEntry {
        seq,
        message_id: chat_core::MessageId(seq),
        from: from.into(),
        from_name: from.into(),
        message: text.into(),
        timestamp: at(seq),
    };
    app.on_net(
        NetEvent::History(chat_core::HistoryReply {
            room_id: "r_1".into(),
            partner: partner("u_bob", "Bob"),
            active: true,
            ended_reason: None,
            omitted: 0,
            messages: vec![
                line(2, "Bob", "a message long enough to wrap onto the next row"),
                line(3, "Alice", "two\nlines"),
            ],
        }),
        at(20),
    );
    insta::assert_snapshot!("history_wrapped", screen(&mut app, 44, 12).backend());
}

#[test]
fn new_messages_below_are_counted_while_scrolled_back() {
    let mut app = chatting();
    for i in 0..12 {
        app.on_net(received(i + 2, Some("r_1"), "u_bob", &format!("line {i}"), 10 + i), at(10 + i));
    }
    app.on_key(Key::PageUp, at(30));
    screen(&mut app, 50, 9);
    for i in 0..3 {
        app.on_net(received(i + 20, Some("r_1"), "u_bob", &format!("new {i}"), 31 + i), at(31 + i));
    }
    app.on_net(sent("r_1", "mine does not count", 35), at(35));
    insta::assert_snapshot!("new_messages_below", screen(&mut app, 50, 9).backend());
    app.on_key(Key::Escape, at(36));
    assert_eq!(app.unread_below(), 0, "back at the newest: nothing unread below");
}

#[test]
fn time_shows_seconds_and_a_date_line_marks_a_new_day() {
    let mut app = chatting();
    app.on_net(received(2, Some("r_1"), "u_bob", "late night?", 5), at(5));
    let tomorrow = 12 * 3600 + 30; // 2024-01-02 00:00:30 UTC
    app.on_net(received(3, Some("r_1"), "u_bob", "it is tomorrow now", tomorrow), at(tomorrow));
    app.submit("/time", at(tomorrow));
    insta::assert_snapshot!("seconds_and_date_line", screen(&mut app, 50, 10).backend());
    app.submit("/time", at(tomorrow));
    let text = format!("{:?}", screen(&mut app, 50, 10).backend());
    assert!(text.contains("\"00:00 Bob: it is tomorrow now"), "/time again: minutes\n{text}");
}

#[test]
fn only_what_is_shown_starts_a_new_day() {
    let mut app = chatting();
    let tomorrow = 12 * 3600 + 30;
    app.on_net(typing(2, "r_1", true), at(tomorrow));
    let text = format!("{:?}", screen(&mut app, 50, 10).backend());
    assert!(!text.contains("Jan 2024"), "a typing notice alone draws no date line\n{text}");
    app.on_net(received(3, Some("r_1"), "u_bob", "morning", tomorrow + 1), at(tomorrow + 1));
    let text = format!("{:?}", screen(&mut app, 50, 10).backend());
    assert!(text.contains(" Tue 2 Jan 2024 "), "{text}");
}

#[test]
fn messages_sent_while_the_partner_is_away_are_held_for_them() {
    let mut app = chatting();
    app.on_net(sent_as(10, "r_1", "before", 3), at(3));
    app.on_net(dropped(2, "r_1", 37), at(5));
    app.on_net(back(3, "r_1"), at(6));
    app.on_net(sent_as(11, "r_1", "between", 7), at(7));
    app.on_net(dropped(4, "r_1", 40), at(8));
    app.on_net(sent_as(12, "r_1", "are you there?", 9), at(9));
    insta::assert_snapshot!("held_for_the_partner", screen(&mut app, 64, 12).backend());
    // Back: what was held has reached them.
    app.on_net(back(5, "r_1"), at(12));
    let text = format!("{:?}", screen(&mut app, 64, 12).backend());
    assert!(!text.contains("held for"), "{text}");
}
