//! Chat roulette through the public API: matching, messaging, typing, leaving,
//! blocking, interests, reconnection.

mod common;

use std::time::Duration;

use chat_core::{ChatError, Command, Hold, Limits, SessionEnd};
use common::*;
use serde_json::json;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn scripted_roulette_transcript() {
    let mut d = Driver::new(Limits::default());
    for who in ["ann", "bob", "cat"] {
        d.open(who);
    }
    d.ok("ann", enter_named("ann", "Ann", &[]));
    let matched = d.ok("bob", enter_named("bob", "Bob", &[]));
    let room = room_of(&matched);
    d.ok("ann", say(&room, "hi Bob!"));
    d.ok("bob", Command::SetTyping { room_id: room.clone(), typing: true });
    d.advance(secs(1));
    d.ok("bob", say(&room, "hello Ann"));
    d.ok("ann", Command::History { room_id: room.clone() });
    d.ok("ann", Command::LeaveChat { room_id: room.clone(), requeue: true });
    d.ok("cat", enter_named("cat", "Cat", &[]));
    d.ok("bob", Command::Events { after_seq: None, limit: None });
    insta::assert_snapshot!("roulette_transcript", d.transcript_text());
}

#[test]
fn two_waiting_users_are_paired_and_both_told() {
    let mut d = Driver::new(Limits::default());
    d.open("a");
    d.open("b");
    let first = d.ok("a", enter("a"));
    assert_eq!(first["status"], "waiting");
    assert_eq!(first["position"], 1);
    assert!(first["resume_token"].as_str().is_some_and(|t| t.starts_with("rt_")));
    let second = d.ok("b", enter("b"));
    assert_eq!(second["status"], "matched");
    assert_eq!(second["partner"]["user_id"], "a");
    let room = room_of(&second);
    for (who, partner) in [("a", "b"), ("b", "a")] {
        let events = d.pushed_to(who);
        assert_eq!(events.len(), 1, "{who}: {events:?}");
        assert_eq!(events[0]["type"], "chatroom.found");
        assert_eq!(events[0]["room_id"], room.as_str());
        assert_eq!(events[0]["partner"]["user_id"], partner);
        assert_eq!(events[0]["partner"]["display_name"], "Anonymous");
        assert_eq!(events[0]["seq"], 1);
    }
}

#[test]
fn messages_reach_only_the_partner_in_order() {
    let mut d = Driver::new(Limits::default());
    for who in ["a", "b", "c", "e"] {
        d.open(who);
        d.ok(who, enter(who));
    }
    let room_ab = d.pushed_to("a")[0]["room_id"].as_str().unwrap().to_string();
    for i in 0..5 {
        let sent = d.ok("a", say(&room_ab, &format!("m{i}")));
        assert_eq!(sent["seq"], i + 1);
    }
    let got: Vec<_> = d.pushed_to("b").iter().skip(1).map(|e| e["message"].clone()).collect();
    assert_eq!(got, ["m0", "m1", "m2", "m3", "m4"]);
    assert_eq!(d.pushed_to("a").len(), 1, "sender gets no copy");
    assert_eq!(d.pushed_to("c").len(), 1, "others get nothing");
    // Another room's member cannot use the room, and learns nothing about it.
    let outsider = d.err("c", say(&room_ab, "let me in"));
    let unknown = d.err("c", say("r_0123456789abcdef", "anyone?"));
    assert!(matches!(outsider, ChatError::UnknownRoom { .. }));
    assert_eq!(
        outsider.to_string().replace(&room_ab, "X"),
        unknown.to_string().replace("r_0123456789abcdef", "X")
    );
}

#[test]
fn leave_tells_partner_once_and_requeue_finds_someone_new() {
    let mut d = Driver::new(Limits::default());
    for who in ["a", "b"] {
        d.open(who);
        d.ok(who, enter(who));
    }
    let room = d.pushed_to("a")[0]["room_id"].as_str().unwrap().to_string();
    let left = d.ok("a", Command::LeaveChat { room_id: room.clone(), requeue: true });
    assert_eq!(left["was_active"], true);
    assert_eq!(left["requeued"]["status"], "waiting");
    let b_events = d.pushed_to("b");
    assert_eq!(b_events.last().unwrap()["type"], "partner.disconnected");
    assert_eq!(b_events.last().unwrap()["reason"], "left");
    assert!(matches!(d.err("b", say(&room, "hello?")), ChatError::RoomEnded { .. }));
    // The same pair is not paired again right away...
    d.ok("b", enter("b"));
    assert_eq!(d.pushed_to("a").len(), 1);
    // ...but a newcomer is.
    d.open("c");
    let c = d.ok("c", enter("c"));
    assert_eq!(c["status"], "matched");
    assert_eq!(c["partner"]["user_id"], "a");
    // Leaving an ended room is fine and tells nobody anything.
    let again = d.ok("b", Command::LeaveChat { room_id: room, requeue: false });
    assert_eq!(again["was_active"], false);
    assert_eq!(d.pushed_to("a").iter().filter(|e| e["type"] == "partner.disconnected").count(), 0);
}

#[test]
fn cooled_down_pair_matches_after_the_cooldown() {
    let limits = Limits { rematch_cooldown: secs(60), ..Limits::default() };
    let mut d = Driver::new(limits);
    for who in ["a", "b"] {
        d.open(who);
        d.ok(who, enter(who));
    }
    let room = d.pushed_to("a")[0]["room_id"].as_str().unwrap().to_string();
    d.ok("a", Command::LeaveChat { room_id: room, requeue: true });
    d.ok("b", enter("b"));
    d.advance(secs(59));
    assert_eq!(d.pushed_to("b").iter().filter(|e| e["type"] == "chatroom.found").count(), 1);
    d.advance(secs(1));
    assert_eq!(d.pushed_to("b").iter().filter(|e| e["type"] == "chatroom.found").count(), 2);
}

#[test]
fn interests_prefer_a_shared_one_then_fall_back_after_timeout() {
    let limits = Limits { interest_timeout: secs(10), ..Limits::default() };
    let mut d = Driver::new(limits);
    for who in ["plain", "rusty", "gopher", "rust2"] {
        d.open(who);
    }
    d.ok("rusty", enter_named("rusty", "R", &["Rust", "music"]));
    d.ok("gopher", enter_named("gopher", "G", &["go"]));
    // A user without interests is not taken by those still hoping for a shared one.
    assert_eq!(d.ok("plain", enter("plain"))["status"], "waiting");
    // A shared interest wins over being earlier in line.
    let m = d.ok("rust2", enter_named("rust2", "R2", &["rust"]));
    assert_eq!(m["partner"]["user_id"], "rusty");
    assert_eq!(m["shared_interests"], json!(["rust"]));
    // After the timeout the remaining two accept anyone.
    d.advance(secs(10));
    let found = d.pushed_to("plain");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["partner"]["user_id"], "gopher");
    assert_eq!(found[0]["shared_interests"], json!([]));
}

#[test]
fn fifo_without_interests() {
    let mut d = Driver::new(Limits::default());
    let names: Vec<String> = (0..6).map(|i| format!("u{i}")).collect();
    for n in &names {
        d.open(n);
        d.ok(n, enter(n));
    }
    for pair in names.chunks(2) {
        assert_eq!(d.pushed_to(&pair[0])[0]["partner"]["user_id"], pair[1].as_str());
    }
}

#[test]
fn typing_notifies_on_change_and_expires() {
    let limits = Limits { typing_timeout: secs(5), ..Limits::default() };
    let mut d = Driver::new(limits);
    for who in ["a", "b"] {
        d.open(who);
        d.ok(who, enter(who));
    }
    let room = d.pushed_to("a")[0]["room_id"].as_str().unwrap().to_string();
    let typing = |on| Command::SetTyping { room_id: room.clone(), typing: on };
    assert_eq!(d.ok("a", typing(true))["notified"], true);
    d.advance(secs(3));
    assert_eq!(d.ok("a", typing(true))["notified"], false, "repeat is throttled");
    d.advance(secs(3));
    let typing_events = |d: &Driver| {
        d.pushed_to("b").into_iter().filter(|e| e["type"] == "partner.typing").collect::<Vec<_>>()
    };
    assert_eq!(typing_events(&d).len(), 1, "refresh extended the indicator");
    d.advance(secs(2));
    let evs = typing_events(&d);
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[1]["typing"], false);
    assert_eq!(d.ok("a", typing(false))["notified"], false, "already off");
}

#[test]
fn block_ends_chat_reports_and_never_rematches() {
    let limits = Limits { rematch_cooldown: Duration::ZERO, ..Limits::default() };
    let mut d = Driver::new(limits);
    for who in ["a", "b"] {
        d.open(who);
        d.ok(who, enter(who));
    }
    let room = d.pushed_to("a")[0]["room_id"].as_str().unwrap().to_string();
    let blocked = d.ok("a", Command::BlockPartner { room_id: room, reason: Some("rude".into()) });
    assert_eq!(blocked["blocked_user_id"], "b");
    assert_eq!(d.pushed_to("b").last().unwrap()["reason"], "left");
    let report = d.chat.reports().next().expect("a report").clone();
    assert_eq!((&*report.reporter, &*report.reported, report.reason.as_deref()), ("a", "b", Some("rude")));
    d.ok("a", enter("a"));
    d.ok("b", enter("b"));
    d.advance(secs(3600));
    assert_eq!(d.pushed_to("a").iter().filter(|e| e["type"] == "chatroom.found").count(), 1);
}

#[test]
fn lost_connection_keeps_room_for_grace_then_times_out() {
    let limits = Limits { reconnect_grace: secs(30), ..Limits::default() };
    let mut d = Driver::new(limits);
    for who in ["a", "b"] {
        d.open(who);
        d.ok(who, enter(who));
    }
    let room = d.pushed_to("a")[0]["room_id"].as_str().unwrap().to_string();
    d.close("a", SessionEnd::Lost);
    let told = d.pushed_to("b")[1].clone();
    assert_eq!(told["type"], "partner.reconnecting");
    assert_eq!(told["reconnect_by"], "2024-01-01T12:00:30.000Z");
    d.advance(secs(29));
    assert_eq!(d.pushed_to("b").len(), 2, "nothing more during grace");
    let sent = d.ok("b", say(&room, "still there?"));
    d.advance(secs(1));
    let last = d.pushed_to("b").last().unwrap().clone();
    assert_eq!(
        (last["type"].as_str(), last["reason"].as_str()),
        (Some("partner.disconnected"), Some("timeout"))
    );
    assert_eq!(last["undelivered"], json!([sent["message_id"]]), "the sender learns what never arrived");
}

#[test]
fn a_dropped_stream_is_lost_after_the_stream_grace_and_back_on_any_sign_of_life() {
    let limits = Limits { stream_grace: secs(3), reconnect_grace: secs(30), ..Limits::default() };
    let mut d = Driver::new(limits);
    for who in ["a", "b"] {
        d.open(who);
        d.ok(who, enter(who));
    }
    let room = d.pushed_to("a")[0]["room_id"].as_str().unwrap().to_string();
    d.drop_stream("a");
    d.advance(secs(2));
    assert_eq!(d.pushed_to("b").len(), 1, "within the stream grace nobody is told");
    d.advance(secs(2));
    assert_eq!(d.pushed_to("b").last().unwrap()["type"], "partner.reconnecting");
    let sent = d.ok("b", say(&room, "are you there?"));
    assert_eq!(d.pushed_to("a").len(), 1, "nothing is pushed to a lost session");
    d.advance(secs(20));
    // The same session comes back: no resume token needed, the partner is told, and what
    // was sent meanwhile is pushed to it.
    d.open_stream("a");
    assert_eq!(d.pushed_to("b").last().unwrap()["type"], "partner.reconnected");
    let missed = d.pushed_to("a").last().unwrap().clone();
    assert_eq!(missed["message_id"], sent["message_id"]);
    d.advance(secs(60));
    assert!(!d.pushed_to("b").iter().any(|e| e["type"] == "partner.disconnected"));
    assert!(d.expired().is_empty());
    d.ok("a", say(&room, "back"));
    assert_eq!(d.pushed_to("b").last().unwrap()["message"], "back");
}

#[test]
fn requests_keep_a_session_without_a_stream_live() {
    let limits = Limits { stream_grace: secs(3), ..Limits::default() };
    let mut d = Driver::new(limits);
    for who in ["a", "b"] {
        d.open(who);
        d.ok(who, enter(who));
    }
    d.drop_stream("a");
    for _ in 0..10 {
        d.advance(secs(2));
        d.ok("a", Command::Identity);
    }
    // A wait that holds the session for longer than the grace keeps it live too.
    let a = d.session("a");
    d.chat.hold(d.now, a, Hold::Request);
    d.advance(secs(25));
    d.chat.release(d.now, a, Hold::Request);
    d.advance(secs(2));
    assert!(!d.pushed_to("b").iter().any(|e| e["type"] == "partner.reconnecting"));
    d.advance(secs(2));
    assert_eq!(d.pushed_to("b").last().unwrap()["type"], "partner.reconnecting");
}

#[test]
fn a_lost_queued_participant_gets_its_place_back() {
    let limits = Limits { stream_grace: secs(3), ..Limits::default() };
    let mut d = Driver::new(limits);
    d.open("a");
    d.ok("a", enter("a"));
    d.drop_stream("a");
    d.advance(secs(4));
    d.open("b");
    let waiting = d.ok("b", enter("b"));
    assert_eq!(waiting["status"], "waiting", "a lost participant is not matched");
    assert_eq!(waiting["position"], 1);
    d.ok("a", Command::Identity);
    let found = d.pushed_to("a").last().unwrap().clone();
    assert_eq!(
        (found["type"].as_str(), found["partner"]["user_id"].as_str()),
        (Some("chatroom.found"), Some("b"))
    );
}

#[test]
fn a_single_call_session_holds_nothing_hostage() {
    let limits = Limits { single_call_timeout: secs(10), ..Limits::default() };
    let mut d = Driver::new(limits);
    let ghost = d.open_bare("ghost");
    d.ok("ghost", enter("ghost"));
    d.advance(secs(11));
    assert_eq!(d.expired(), [ghost], "the session ends by itself");
    d.open("b");
    assert_eq!(d.ok("b", enter("b"))["status"], "waiting", "the ghost left the queue");
    // Its identity is offline at once, not held for the reconnect grace.
    assert_eq!(d.chat.stats().online, 1);
    d.open("c");
    assert!(matches!(d.err("c", enter("ghost")), ChatError::IdentityTaken { .. }), "still the ghost's own");
}

#[test]
fn a_lost_session_expires_when_the_grace_runs_out() {
    let limits = Limits { stream_grace: secs(3), reconnect_grace: secs(30), ..Limits::default() };
    let mut d = Driver::new(limits);
    let (a, idle) = (d.open("a"), d.open("idle"));
    d.ok("a", enter("a"));
    d.drop_stream("a");
    d.drop_stream("idle");
    d.advance(secs(4));
    assert!(d.expired().is_empty(), "lost, not over");
    assert!(!d.chat.is_live(a));
    d.advance(secs(30));
    let mut expired = d.expired();
    expired.sort();
    assert_eq!(expired, [a, idle]);
    assert!(matches!(d.err("a", Command::Identity), ChatError::UnknownSession));
}

#[test]
fn resume_within_grace_keeps_room_and_replays_missed_events() {
    let limits = Limits { reconnect_grace: secs(30), ..Limits::default() };
    let mut d = Driver::new(limits);
    d.open("a");
    d.open("b");
    let token = d.ok("a", enter("a"))["resume_token"].as_str().unwrap().to_string();
    d.ok("b", enter("b"));
    let room = d.pushed_to("a")[0]["room_id"].as_str().unwrap().to_string();
    d.close("a", SessionEnd::Lost);
    d.ok("b", say(&room, "while you were away"));
    d.advance(secs(10));
    d.open("a2");
    // Someone else cannot take the identity, with or without a wrong token.
    assert!(matches!(d.err("a2", enter("a")), ChatError::IdentityTaken { .. }));
    let bad = Command::Resume { user_id: "a".into(), resume_token: "rt_wrong".into() };
    assert!(matches!(d.err("a2", bad), ChatError::BadResumeToken { .. }));
    let resumed = d.ok("a2", Command::Resume { user_id: "a".into(), resume_token: token });
    assert_eq!(resumed["state"], "chatting");
    assert_eq!(resumed["room_id"], room.as_str());
    let replay = d.ok("a2", Command::Events { after_seq: Some(1), limit: None });
    assert_eq!(replay["events"][0]["message"], "while you were away");
    d.advance(secs(60));
    assert!(!d.pushed_to("b").iter().any(|e| e["type"] == "partner.disconnected"));
    d.ok("a2", say(&room, "back"));
    assert_eq!(d.pushed_to("b").last().unwrap()["message"], "back");
}

#[test]
fn closing_on_purpose_tells_partner_left_at_once() {
    let mut d = Driver::new(Limits::default());
    for who in ["a", "b"] {
        d.open(who);
        d.ok(who, enter(who));
    }
    d.close("a", SessionEnd::Closed);
    assert_eq!(d.pushed_to("b").last().unwrap()["reason"], "left");
}

#[test]
fn identity_rules() {
    let mut d = Driver::new(Limits::default());
    d.open("s1");
    d.open("s2");
    let generated = d.ok(
        "s1",
        Command::EnterQueue { user_id: None, display_name: None, interests: vec![], resume_token: None },
    );
    let id = generated["user_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("u_"));
    assert!(matches!(d.err("s1", enter("someone_else")), ChatError::AlreadyIdentified { .. }));
    assert!(matches!(d.err("s2", enter(&id)), ChatError::IdentityTaken { .. }));
    assert!(matches!(d.err("s2", say("r_0000000000000000", "x")), ChatError::NotIdentified));
    assert!(matches!(d.err("s2", enter("bad id")), ChatError::InvalidId { .. }));
    let bad_name = Command::EnterQueue {
        user_id: None,
        display_name: Some("\u{1b}[2J".into()),
        interests: vec![],
        resume_token: None,
    };
    assert!(matches!(d.err("s2", bad_name), ChatError::InvalidText { .. }));
    // Once the owner is gone, the id is still theirs: an ex-partner who saw it cannot
    // claim it; its token can, on the binding command itself.
    d.close("s1", SessionEnd::Closed);
    assert!(matches!(d.err("s2", enter(&id)), ChatError::IdentityTaken { .. }), "offline ids stay owned");
    let token = generated["resume_token"].as_str().unwrap().to_string();
    let mine = Command::EnterQueue {
        user_id: Some(id.clone()),
        display_name: None,
        interests: vec![],
        resume_token: Some(token),
    };
    d.ok("s2", mine);
    let who = d.ok("s2", Command::Identity);
    assert_eq!(who["user_id"], id.as_str());
    assert_eq!(who["state"], "waiting");
    assert_eq!(who["resume_token"], generated["resume_token"], "proving ownership does not rotate the token");
}

#[test]
fn message_validation_and_rate_limit() {
    let limits =
        Limits { rate_messages: 3, rate_window: secs(3), max_message_bytes: 10, ..Limits::default() };
    let mut d = Driver::new(limits);
    for who in ["a", "b"] {
        d.open(who);
        d.ok(who, enter(who));
    }
    let room = d.pushed_to("a")[0]["room_id"].as_str().unwrap().to_string();
    assert_eq!(d.err("a", say(&room, "   ")), ChatError::EmptyMessage);
    assert!(matches!(
        d.err("a", say(&room, "01234567890")),
        ChatError::MessageTooLarge { bytes: 11, max: 10 }
    ));
    assert!(matches!(d.err("a", say(&room, "nul\0")), ChatError::InvalidText { .. }));
    for _ in 0..3 {
        d.ok("a", say(&room, "ok"));
    }
    let e = d.err("a", say(&room, "too fast"));
    assert_eq!(e, ChatError::RateLimited { limit: 3, window_secs: 3, retry_after_ms: 1000 });
    assert!(e.to_string().contains("retry in 1000 ms"));
    d.advance(secs(1));
    d.ok("a", say(&room, "ok again"));
}

#[test]
fn history_is_kept_for_members_after_the_end() {
    let limits = Limits { history_per_room: 3, history_retention: secs(60), ..Limits::default() };
    let mut d = Driver::new(limits);
    for who in ["a", "b", "c"] {
        d.open(who);
    }
    d.ok("a", enter("a"));
    d.ok("b", enter("b"));
    let room = d.pushed_to("a")[0]["room_id"].as_str().unwrap().to_string();
    for i in 0..5 {
        d.ok(if i % 2 == 0 { "a" } else { "b" }, say(&room, &format!("m{i}")));
    }
    d.ok("b", Command::LeaveChat { room_id: room.clone(), requeue: false });
    let h = d.ok("a", Command::History { room_id: room.clone() });
    assert_eq!(h["active"], false);
    assert_eq!(h["ended_reason"], "left");
    assert_eq!(h["omitted"], 2);
    let texts: Vec<_> = h["messages"].as_array().unwrap().iter().map(|m| m["message"].clone()).collect();
    assert_eq!(texts, ["m2", "m3", "m4"]);
    d.ok("c", enter("c"));
    assert!(matches!(d.err("c", Command::History { room_id: room.clone() }), ChatError::UnknownRoom { .. }));
    d.advance(secs(61));
    assert!(matches!(d.err("a", Command::History { room_id: room }), ChatError::UnknownRoom { .. }));
}

#[test]
fn queue_capacity_and_wait_estimate() {
    let limits = Limits { queue_capacity: 1, ..Limits::default() };
    let mut d = Driver::new(limits);
    for who in ["a", "b", "c", "e", "f"] {
        d.open(who);
    }
    d.ok("a", enter_named("a", "A", &["x"]));
    assert!(matches!(d.err("b", enter_named("b", "B", &["y"])), ChatError::QueueFull { capacity: 1 }));
    assert_eq!(d.ok("a", Command::LeaveQueue)["was_queued"], true);
    assert_eq!(d.ok("a", Command::LeaveQueue)["was_queued"], false);
    // Two matches ten seconds apart give an estimate for the next waiting person.
    d.ok("a", enter("a"));
    d.ok("b", enter("b"));
    d.advance(secs(10));
    d.ok("c", enter("c"));
    d.ok("e", enter("e"));
    let waiting = d.ok("f", enter("f"));
    assert_eq!(waiting["position"], 1);
    assert_eq!(waiting["estimated_wait_secs"], 5);
}

#[test]
fn shutdown_tells_both_sides() {
    let mut d = Driver::new(Limits::default());
    for who in ["a", "b"] {
        d.open(who);
        d.ok(who, enter(who));
    }
    d.chat.shutdown(d.now);
    while let Some(o) = d.chat.poll_outbound() {
        d.pushed.push(o);
    }
    for who in ["a", "b"] {
        assert_eq!(d.pushed_to(who).last().unwrap()["reason"], "shutdown");
    }
    assert_eq!(d.chat.stats().rooms_active, 0);
}

#[test]
fn a_session_that_opens_a_stream_after_its_first_call_is_lost_after_the_stream_grace() {
    let limits = Limits { stream_grace: secs(3), single_call_timeout: secs(10), ..Limits::default() };
    let mut d = Driver::new(limits);
    d.open("b");
    d.ok("b", enter("b"));
    let a = d.open_bare("a");
    d.ok("a", enter("a"));
    d.open_stream("a");
    d.drop_stream("a");
    d.advance(secs(4));
    assert!(!d.chat.is_live(a), "the shorter stream grace applies, not the single-call timeout");
    assert_eq!(d.pushed_to("b").last().unwrap()["type"], "partner.reconnecting");
}

#[test]
fn abandoned_participants_and_ended_rooms_shrink_to_their_budgets() {
    let limits = Limits {
        rate_messages: 1000,
        offline_inbox_bytes: 32 * 1024,
        ended_history_bytes: 32 * 1024,
        ..Limits::default()
    };
    let mut d = Driver::new(limits);
    for who in ["a", "b"] {
        d.open(who);
        d.ok(who, enter(who));
    }
    let room = d.pushed_to("a")[0]["room_id"].as_str().unwrap().to_string();
    let big = "x".repeat(16 * 1024);
    for _ in 0..20 {
        d.ok("a", say(&room, &big));
    }
    let held = d.chat.stats().inbox_bytes;
    assert!(held > 20 * 16 * 1024, "b holds what it did not acknowledge: {held}");
    d.close("b", SessionEnd::Closed);
    d.close("a", SessionEnd::Closed);
    let after = d.chat.stats().inbox_bytes;
    assert!(after <= 2 * 32 * 1024 + 4096, "offline stores shrink: {after} bytes left");
    assert!(d.chat.stats().events_evicted >= 18, "and say what they dropped");
}
