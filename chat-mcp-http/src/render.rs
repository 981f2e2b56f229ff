//! Human-readable text of tool results: short markdown with relative times, written for
//! a language model to read and act on. The same data goes into `structuredContent`.

use std::fmt::Write as _;

use chat_core::{
    ActivityState, CheckedInReply, ClientsReply, DirectMessage, Envelope, Event, EventsReply, HistoryReply,
    IdentityReply, LeftChatReply, MessagesReply, PresenceStatus, QueueStatus, Reply, SentDirectReply,
    SentRoomReply, Time,
};

/// "just now", "12s ago", "3 min ago", "in 5 min", or the date for anything older than a day.
pub fn relative(t: Time, now: Time) -> String {
    let (secs, future) =
        if t > now { (t.since(now).as_secs(), true) } else { (now.since(t).as_secs(), false) };
    let span = match secs {
        0..5 if !future => return "just now".into(),
        0..60 => format!("{secs}s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h", secs / 3600),
        _ => return t.to_rfc3339(),
    };
    if future { format!("in {span}") } else { format!("{span} ago") }
}

/// A duration for people: `25s`, `0.5s`.
pub fn seconds(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{:.1}s", d.as_secs_f64()) }
}

/// Quotes message text as a markdown block quote, line by line.
fn quote(text: &str) -> String {
    text.lines().map(|l| format!("> {l}")).collect::<Vec<_>>().join("\n")
}

fn queue_status(status: &QueueStatus) -> String {
    match status {
        QueueStatus::Waiting { position, queue_length, estimated_wait_secs } => {
            let mut s =
                format!("**Waiting for a partner**: you are #{position} of {queue_length} in the queue");
            if let Some(w) = estimated_wait_secs {
                let _ = write!(s, " (estimated wait ~{w}s)");
            }
            s.push_str(".\nYou will receive a `chatroom.found` notification when matched; if your client does not show notifications, call `wait_for_events`.");
            s
        }
        QueueStatus::Matched { room_id, partner, shared_interests } => {
            let mut s = format!(
                "**Matched!** You are chatting with **{}** (`{}`) in room `{room_id}`.",
                partner.display_name, partner.user_id
            );
            if !shared_interests.is_empty() {
                let _ = write!(s, " Shared interests: {}.", shared_interests.join(", "));
            }
            let _ = write!(s, "\nSay hello with `send_message` (room_id: `{room_id}`).");
            s
        }
    }
}

fn token_line(token: Option<&str>) -> String {
    token.map_or_else(String::new, |t| {
        format!("\nResume token: `{t}` (keep it: `resume_session` with it restores this identity after a disconnect).")
    })
}

fn direct_messages(messages: &[DirectMessage], now: Time) -> String {
    let mut s = String::new();
    for m in messages {
        let _ = writeln!(
            s,
            "**From {}** (`{}`, {}, seq {}):\n{}\n",
            m.from_name,
            m.from,
            relative(m.timestamp, now),
            m.seq,
            quote(&m.message)
        );
    }
    s
}

/// One event as a markdown list item.
pub fn event_line(envelope: &Envelope, now: Time) -> String {
    let seq = envelope.seq;
    match &envelope.event {
        Event::ChatroomFound(e) => format!(
            "- [seq {seq}] **chatroom.found**: matched with **{}** (`{}`) in room `{}`",
            e.partner.display_name, e.partner.user_id, e.room_id
        ),
        Event::MessageReceived(e) => {
            let place =
                e.room_id.as_ref().map_or_else(|| "direct message".to_owned(), |r| format!("room `{r}`"));
            format!(
                "- [seq {seq}] **message.received** from **{}** (`{}`, {place}, {}):\n{}",
                e.from_name,
                e.from,
                relative(e.timestamp, now),
                quote(&e.message)
            )
        }
        Event::PartnerDisconnected(e) => {
            let reason = serde_json::to_value(e.reason).ok().and_then(|v| v.as_str().map(str::to_owned));
            let undelivered = match e.undelivered.as_slice() {
                [] => String::new(),
                ids => {
                    let ids: Vec<String> = ids.iter().map(|id| format!("`{id}`")).collect();
                    format!("; your messages {} never reached them", ids.join(", "))
                }
            };
            format!(
                "- [seq {seq}] **partner.disconnected** from room `{}` (reason: {}){undelivered}; call `enter_queue` for a new partner",
                e.room_id,
                reason.unwrap_or_default()
            )
        }
        Event::PartnerReconnecting(e) => format!(
            "- [seq {seq}] **partner.reconnecting** in room `{}`: their connection dropped; the room waits for them \
until {} ({}). Messages you send meanwhile reach them if they come back.",
            e.room_id,
            e.reconnect_by.to_rfc3339(),
            relative(e.reconnect_by, now)
        ),
        Event::PartnerReconnected(e) => {
            format!("- [seq {seq}] **partner.reconnected** in room `{}`: they are back", e.room_id)
        }
        Event::PartnerTyping(e) => format!(
            "- [seq {seq}] **partner.typing** in room `{}`: {}",
            e.room_id,
            if e.typing { "typing…" } else { "stopped typing" }
        ),
        Event::DirectTyping(e) => format!(
            "- [seq {seq}] **direct.typing** from **{}** (`{}`, direct message): {}",
            e.from_name,
            e.from,
            if e.typing { "typing…" } else { "stopped typing" }
        ),
        Event::MessageExpired(e) => format!(
            "- [seq {seq}] **message.expired**: `{}` did not read your message `{}` (sent {}); it was dropped:\n{}",
            e.recipient_id,
            e.message_id,
            relative(e.sent_at, now),
            quote(&e.message)
        ),
    }
}

/// The events of a `wait_for_events` result.
pub fn events(reply: &EventsReply, waited: Option<std::time::Duration>, now: Time) -> String {
    let mut s = String::new();
    if reply.events.is_empty() {
        match waited {
            Some(waited) => {
                let _ = write!(s, "No new events in {}. Call `wait_for_events` again", seconds(waited));
            }
            None => s.push_str("No new events. Call `wait_for_events` again"),
        }
        let _ = write!(s, " (after_seq: {}) to keep waiting.", reply.next_after_seq);
    } else {
        let _ = writeln!(s, "### {} event(s)", reply.events.len());
        for e in &reply.events {
            let _ = writeln!(s, "{}", event_line(e, now));
        }
        let newest = reply.next_after_seq;
        let _ = write!(
            s,
            "\nNext: call `wait_for_events` with after_seq: {newest} to acknowledge these and wait for more."
        );
    }
    if reply.evicted > 0 {
        let _ = write!(s, "\n({} older event(s) were dropped because your inbox overflowed.)", reply.evicted);
    }
    s
}

fn presence(status: PresenceStatus) -> &'static str {
    match status {
        PresenceStatus::Online => "online",
        PresenceStatus::Reconnecting => "reconnecting",
        PresenceStatus::Offline => "offline",
    }
}

/// Text for one core reply.
pub fn reply(reply: &Reply, now: Time) -> String {
    match reply {
        Reply::EnterQueue(r) => format!(
            "You are **{}** (`{}`).{}\n\n{}",
            r.display_name,
            r.user_id,
            token_line(r.resume_token.as_deref()),
            queue_status(&r.status)
        ),
        Reply::LeaveQueue(r) => {
            if r.was_queued {
                "You left the queue.".into()
            } else {
                "You were not in the queue.".into()
            }
        }
        Reply::SentRoom(r) => sent_room(r, now),
        Reply::SentDirect(r) => sent_direct(r, now),
        Reply::LeftChat(r) => left_chat(r),
        Reply::Typing(r) => format!(
            "Typing indicator {} in room `{}`{}.",
            if r.typing { "on" } else { "off" },
            r.room_id,
            if r.notified { " (partner notified)" } else { " (unchanged, partner not re-notified)" }
        ),
        Reply::DirectTyping(r) => match (r.typing, r.notified) {
            (true, true) => format!("Typing indicator on for `{}` (they were notified).", r.recipient_id),
            (true, false) => {
                format!("Typing indicator still on for `{}` (refreshed, not re-notified).", r.recipient_id)
            }
            (false, true) => format!("Typing indicator off for `{}` (they were notified).", r.recipient_id),
            (false, false) => format!(
                "Typing indicator off for `{}`: it was not on, or they are offline (an indicator is not kept for later).",
                r.recipient_id
            ),
        },
        Reply::Blocked(r) => format!(
            "Blocked and reported `{}`. Room `{}` has ended and you will not be matched with them again. Call `enter_queue` for a new partner.",
            r.blocked_user_id, r.room_id
        ),
        Reply::History(r) => history(r, now),
        Reply::CheckedIn(r) => checked_in(r),
        Reply::Clients(r) => clients(r, now),
        Reply::Messages(r) => messages(r, now),
        Reply::TakenReply(r) => match &r.message {
            Some(m) => direct_messages(std::slice::from_ref(m), now),
            None => "No reply yet.".into(),
        },
        Reply::Identity(r) => identity(r),
        Reply::Events(r) => events(r, None, now),
    }
}

fn sent_room(r: &SentRoomReply, now: Time) -> String {
    format!(
        "Sent to room `{}` (message #{}, `{}`, {}).",
        r.room_id,
        r.seq,
        r.message_id,
        relative(r.timestamp, now)
    )
}

/// Text for a direct message that was accepted.
pub fn sent_direct(r: &SentDirectReply, now: Time) -> String {
    let state = if r.recipient_online {
        "they are online and were notified"
    } else {
        "they are offline; it waits in their mailbox until they check in"
    };
    format!(
        "Sent to `{}` (message `{}`): {state}. Unread, it expires {} and you will get a `message.expired` event.",
        r.recipient_id,
        r.message_id,
        relative(r.expires_at, now)
    )
}

fn left_chat(r: &LeftChatReply) -> String {
    let mut s = if r.was_active {
        format!("You left room `{}`; your partner was told.", r.room_id)
    } else {
        format!("Room `{}` had already ended.", r.room_id)
    };
    if let Some(status) = &r.requeued {
        s.push_str("\n\n");
        s.push_str(&queue_status(status));
    } else {
        s.push_str(" Call `enter_queue` to find a new partner.");
    }
    s
}

fn history(r: &HistoryReply, now: Time) -> String {
    let state = if r.active {
        "active".to_owned()
    } else {
        let reason = r
            .ended_reason
            .and_then(|reason| serde_json::to_value(reason).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "ended".into());
        format!("ended ({reason})")
    };
    let mut s = format!(
        "### Room `{}` ({state})\nPartner: **{}** (`{}`)\n\n",
        r.room_id, r.partner.display_name, r.partner.user_id
    );
    if r.omitted > 0 {
        let _ = writeln!(s, "_{} older message(s) are no longer kept._\n", r.omitted);
    }
    if r.messages.is_empty() {
        s.push_str("No messages yet.");
    }
    for m in &r.messages {
        let who =
            if m.from == r.partner.user_id { format!("**{}**", m.from_name) } else { "**You**".to_owned() };
        let _ = writeln!(s, "{who} ({}, #{}):\n{}\n", relative(m.timestamp, now), m.seq, quote(&m.message));
    }
    s.trim_end().to_owned()
}

fn checked_in(r: &CheckedInReply) -> String {
    let mut s = format!("Checked in as **{}** (`{}`).", r.name, r.client_id);
    if !r.capabilities.is_empty() {
        let _ = write!(s, " Capabilities: {}.", r.capabilities.join(", "));
    }
    s.push_str(&token_line(r.resume_token.as_deref()));
    if r.pending_messages > 0 {
        let _ =
            write!(s, "\n\n**{} message(s) waiting**: call `get_messages` to read them.", r.pending_messages);
    } else {
        s.push_str("\n\nNo messages waiting. Others can reach you with `send_message` (recipient_id: your client id).");
    }
    s
}

fn clients(r: &ClientsReply, now: Time) -> String {
    if r.clients.is_empty() {
        return "No clients have checked in yet.".into();
    }
    let mut s = format!("### Clients ({})\n", r.clients.len());
    for c in &r.clients {
        let _ = write!(
            s,
            "- **{}** (`{}`): {}, last seen {}",
            c.name,
            c.client_id,
            presence(c.status),
            relative(c.last_seen, now)
        );
        if !c.capabilities.is_empty() {
            let _ = write!(s, "; capabilities: {}", c.capabilities.join(", "));
        }
        s.push('\n');
    }
    if r.omitted > 0 {
        let _ = write!(s, "\n_{} more not listed._", r.omitted);
    }
    s
}

fn messages(r: &MessagesReply, now: Time) -> String {
    if r.messages.is_empty() {
        return "No new messages.".into();
    }
    let mut s = format!("### {} message(s)\n\n", r.messages.len());
    s.push_str(&direct_messages(&r.messages, now));
    if r.remaining > 0 {
        let _ = write!(s, "_{} more waiting: call `get_messages` again._", r.remaining);
    }
    s.trim_end().to_owned()
}

fn identity(r: &IdentityReply) -> String {
    let Some(user_id) = &r.user_id else {
        return "This session has no identity yet. Call `enter_queue` to chat with a random partner, or `checkin_client` (with your client id) for agent messaging.".into();
    };
    let mut s = format!("You are **{}** (`{user_id}`)", r.display_name.as_deref().unwrap_or(user_id));
    if r.checked_in {
        s.push_str(", checked in for agent messaging");
    }
    s.push('.');
    s.push_str(&token_line(r.resume_token.as_deref()));
    s.push_str("\n\n");
    match &r.activity {
        ActivityState::Idle => s.push_str("Not queued or chatting."),
        ActivityState::Waiting { position } => {
            let _ = write!(s, "Waiting in the queue at position #{position}.");
        }
        ActivityState::Chatting { room_id, partner } => {
            let _ = write!(
                s,
                "Chatting with **{}** (`{}`) in room `{room_id}`.",
                partner.display_name, partner.user_id
            );
        }
    }
    let _ = write!(
        s,
        "\nUnacknowledged events: {}; unread direct messages: {}; newest event seq: {}.",
        r.pending_events, r.pending_messages, r.last_seq
    );
    s
}

/// The footer every result carries when events are waiting for the caller.
pub fn pending_footer(pending: usize) -> String {
    if pending == 0 {
        String::new()
    } else {
        format!("\n\n---\n_{pending} unacknowledged event(s) for you: call `wait_for_events` to read them._")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = Time::from_millis(1_704_110_400_000);
        let ago = |s: u64| relative(Time::from_millis(now.as_millis() - s * 1000), now);
        assert_eq!(ago(0), "just now");
        assert_eq!(ago(12), "12s ago");
        assert_eq!(ago(150), "2 min ago");
        assert_eq!(ago(7300), "2 h ago");
        assert_eq!(ago(90_000), Time::from_millis(now.as_millis() - 90_000_000).to_rfc3339());
        assert_eq!(relative(Time::from_millis(now.as_millis() + 300_000), now), "in 5 min");
        assert_eq!(quote("a\nb"), "> a\n> b");
    }
}
