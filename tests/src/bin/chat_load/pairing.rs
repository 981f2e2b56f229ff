//! Setting up the pairs that exchange messages: through the roulette queue
//! (`enter_queue`, as people meet) or as checked-in clients (`checkin_client`, as agents
//! address each other by id).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::events::{Delivery, Source};
use crate::fleet::Fleet;
use crate::wire::{Endpoint, Session};

/// How long a queued session may wait for its `chatroom.found`.
const MATCH_LIMIT: Duration = Duration::from_secs(30);

/// Where a member's messages go, and so what its partner's incoming messages show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// A roulette room (`send_message {room_id}`); incoming messages carry the room id.
    Room(Arc<str>),
    /// A client id (`send_message {recipient_id}`); incoming messages carry no room.
    Direct(Arc<str>),
}

/// One side of a pair.
pub struct Member {
    /// The session.
    pub session: Session,
    /// Where it hears events.
    pub source: Source,
    /// Where it sends.
    pub to: Address,
    /// What its incoming messages must show: the room, or the partner's client id.
    pub from: Address,
}

/// Two members talking to each other.
pub struct Pair {
    /// One side.
    pub a: Member,
    /// The other side.
    pub b: Member,
}

/// A session that has joined a room.
struct Seated {
    session: Session,
    source: Source,
    room: Arc<str>,
}

/// `2 * pairs` sessions enter the queue and are grouped by the room they land in.
///
/// Who is matched with whom is up to the server (entries run concurrently), so each
/// session learns its room from the `enter_queue` result or its `chatroom.found`, and
/// pairs are formed afterwards.
pub async fn roulette(
    fleet: &Fleet,
    pairs: usize,
    delivery: Delivery,
    concurrency: usize,
) -> Result<Vec<Pair>> {
    // At least two at once: a queued session's future only completes when a later one
    // enters.
    let seated: Vec<Seated> = futures::stream::iter(0..pairs * 2)
        .map(|i| seat(fleet.endpoint(i), i, delivery))
        .buffer_unordered(concurrency.max(2))
        .try_collect()
        .await?;
    let mut rooms: HashMap<Arc<str>, Vec<Seated>> = HashMap::new();
    for s in seated {
        rooms.entry(s.room.clone()).or_default().push(s);
    }
    let mut result = Vec::with_capacity(pairs);
    for (room, mut members) in rooms {
        let (Some(b), Some(a), None) = (members.pop(), members.pop(), members.pop()) else {
            return Err(Error::new(format!(
                "room {room} does not hold exactly two of this run's sessions; is another client using the server?"
            )));
        };
        let address = Address::Room(room);
        result.push(Pair {
            a: Member { session: a.session, source: a.source, to: address.clone(), from: address.clone() },
            b: Member { session: b.session, source: b.source, to: address.clone(), from: address },
        });
    }
    Ok(result)
}

/// Opens session `i`, enters the queue and waits until it has a room.
async fn seat(endpoint: &Endpoint, i: usize, delivery: Delivery) -> Result<Seated> {
    let session = endpoint.open().await?;
    let mut source = Source::open(&session, delivery).await?;
    let result = session.call_tool("enter_queue", json!({"display_name": format!("load-{i}")})).await?;
    if result.is_error {
        return Err(Error::new(format!("enter_queue refused: {}", result.error_text())));
    }
    let room = match result.data.get("status").and_then(Value::as_str) {
        Some("matched") => result.data.get("room_id").and_then(Value::as_str).map(str::to_owned),
        _ => {
            source
                .wait_for(MATCH_LIMIT, |e| e.is_match())
                .await
                .map_err(|e| e.context("waiting for chatroom.found"))?
                .room_id
        }
    };
    let room = room.ok_or_else(|| Error::new("a match without a room_id"))?;
    Ok(Seated { session, source, room: room.into() })
}

/// `2 * pairs` sessions check in as clients `<tag>-<i>`; sessions 2k and 2k+1 message
/// each other directly.
pub async fn checkin(
    fleet: &Fleet,
    pairs: usize,
    delivery: Delivery,
    concurrency: usize,
    tag: &str,
) -> Result<Vec<Pair>> {
    let mut members: Vec<(usize, Session, Source)> = futures::stream::iter(0..pairs * 2)
        .map(|i| async move {
            let session = fleet.endpoint(i).open().await?;
            let source = Source::open(&session, delivery).await?;
            let client_id = format!("{tag}-{i}");
            let result = session
                .call_tool("checkin_client", json!({"client_id": client_id, "name": client_id}))
                .await?;
            if result.is_error {
                return Err(Error::new(format!("checkin_client refused: {}", result.error_text())));
            }
            Ok::<_, Error>((i, session, source))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    members.sort_by_key(|m| m.0);
    let mut result = Vec::with_capacity(pairs);
    let mut members = members.into_iter();
    while let (Some((i, sa, qa)), Some((j, sb, qb))) = (members.next(), members.next()) {
        let (id_a, id_b): (Arc<str>, Arc<str>) = (format!("{tag}-{i}").into(), format!("{tag}-{j}").into());
        result.push(Pair {
            a: Member {
                session: sa,
                source: qa,
                to: Address::Direct(id_b.clone()),
                from: Address::Direct(id_b.clone()),
            },
            b: Member {
                session: sb,
                source: qb,
                to: Address::Direct(id_a.clone()),
                from: Address::Direct(id_a),
            },
        });
    }
    Ok(result)
}

/// A run-unique prefix for client ids, so identities left by an earlier run (kept by the
/// server for a while) never collide with this one's.
pub fn run_tag() -> String {
    let millis =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("load{}x{}", std::process::id(), millis % 1_000_000_000)
}

/// Ends every session (DELETE), a few at a time, within `limit`.
pub async fn close_all(sessions: Vec<Session>, concurrency: usize, limit: Duration) {
    let closing = futures::stream::iter(sessions)
        .map(|s| async move {
            let _ = s.delete().await;
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<()>>();
    let _ = tokio::time::timeout(limit, closing).await;
}
