//! A restart on restored state ([`chat_core::Input::Recover`]): what sessions, rooms and
//! timers do when the process that served them is gone and a new one takes over.

mod common;

use std::time::Duration;

use chat_core::{Chat, Command, Hold, Limits};
use common::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn limits() -> Limits {
    Limits { stream_grace: secs(3), reconnect_grace: secs(30), message_ttl: secs(60), ..Limits::default() }
}

/// Replaces the driver's core with a restored copy of itself, `down` later, and recovers
/// it: what a restart after a crash does.
fn restart(d: &mut Driver, down: Duration) {
    let snapshot = d.chat.snapshot().expect("snapshot");
    d.chat = Chat::restore(&snapshot).expect("restore");
    d.now = d.now.plus(down);
    d.chat.recover(d.now);
    d.advance(Duration::ZERO);
}

#[test]
fn clients_that_come_back_within_the_stream_grace_see_nothing_of_a_restart() {
    let mut d = Driver::new(limits());
    for who in ["a", "b"] {
        d.open(who);
        d.ok(who, enter(who));
    }
    let room = room_of(&d.pushed_to("b")[0]);
    restart(&mut d, secs(20));
    assert_eq!(d.pushed_to("a").len(), 1, "a restart alone tells nobody anything");
    d.advance(secs(2));
    for who in ["a", "b"] {
        let session = d.session(who);
        d.chat.hold(d.now, session, Hold::Stream);
    }
    d.advance(secs(120));
    assert_eq!(d.pushed_to("a").len(), 1);
    assert_eq!(d.pushed_to("b").len(), 1);
    d.ok("a", say(&room, "still here"));
    assert_eq!(d.pushed_to("b").last().unwrap()["message"], "still here");
}

#[test]
fn a_client_that_does_not_come_back_is_lost_after_a_fresh_stream_grace() {
    let mut d = Driver::new(limits());
    for who in ["a", "b"] {
        d.open(who);
        d.ok(who, enter(who));
    }
    restart(&mut d, secs(600));
    let b = d.session("b");
    d.chat.hold(d.now, b, Hold::Stream);
    d.advance(secs(2));
    assert_eq!(d.pushed_to("b").len(), 1, "within the fresh stream grace nobody is told");
    d.advance(secs(2));
    assert_eq!(d.pushed_to("b").last().unwrap()["type"], "partner.reconnecting");
    d.advance(secs(31));
    let last = d.pushed_to("b").last().unwrap().clone();
    assert_eq!(last["type"], "partner.disconnected");
    assert_eq!(last["reason"], "timeout");
}

#[test]
fn a_reconnect_grace_running_at_the_crash_starts_afresh() {
    let mut d = Driver::new(limits());
    for who in ["a", "b"] {
        d.open(who);
        d.ok(who, enter(who));
    }
    d.drop_stream("a");
    d.advance(secs(4));
    assert_eq!(d.pushed_to("b").last().unwrap()["type"], "partner.reconnecting");
    // Down for longer than the grace: it would have run out, but the outage was ours.
    restart(&mut d, secs(45));
    let told = d.pushed_to("b").last().unwrap().clone();
    assert_eq!(told["type"], "partner.reconnecting", "the partner learns the new deadline");
    assert_eq!(told["reconnect_by"], d.now.plus(secs(30)).to_rfc3339());
    let a = d.session("a");
    d.chat.hold(d.now, a, Hold::Stream);
    d.advance(Duration::ZERO);
    assert_eq!(d.pushed_to("b").last().unwrap()["type"], "partner.reconnected");
}

#[test]
fn a_direct_message_that_expired_during_the_downtime_is_reported_after_it() {
    let mut d = Driver::new(limits());
    d.known_offline("bob");
    d.open("ann");
    d.ok("ann", checkin("ann"));
    let sent = d.ok("ann", dm("bob", "are you there?"));
    restart(&mut d, secs(90));
    let expired = d.pushed_to("ann").last().unwrap().clone();
    assert_eq!(expired["type"], "message.expired");
    assert_eq!(expired["message_id"], sent["message_id"]);
}

#[test]
fn a_session_is_found_by_its_key_after_a_restart() {
    let mut d = Driver::new(limits());
    let s = d.chat.open_keyed_session(d.now, Some("abc".into()), Some("2025-06-18".into()));
    d.chat.subscribe(d.now, s, "chat://inbox".into(), true);
    restart(&mut d, secs(1));
    assert_eq!(d.chat.session_by_key("abc"), Some(s));
    let record = d.chat.session_record(s).expect("the session is kept");
    assert_eq!(record.meta.as_deref(), Some("2025-06-18"));
    assert_eq!(record.subscriptions, vec![std::sync::Arc::<str>::from("chat://inbox")]);
    // Unused after the restart: it ends like any unused session, and its key goes too.
    d.advance(secs(3600));
    assert_eq!(d.chat.session_by_key("abc"), None);
    assert!(d.chat.handle(d.now, s, Command::Identity).is_err());
}

#[test]
fn a_restored_core_writes_the_same_snapshot_as_the_live_one() {
    // Enough sessions, participants and rooms that the maps' iteration order depends on
    // their history: a restored map is filled in another order than the live one grew.
    let mut d = Driver::new(limits());
    for i in 0..300 {
        let who = format!("u{i}");
        d.open(&who);
        d.ok(&who, enter(&who));
    }
    let restored = Chat::restore(&d.chat.snapshot().expect("snapshot")).expect("restore");
    assert_eq!(restored.snapshot(), d.chat.snapshot(), "same state, same bytes");
}
