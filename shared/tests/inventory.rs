//! The inventory script against the real Redis: all-or-nothing holds, owner checks, expiry,
//! replacement, best-available, conversion, and rebuilding after Redis lost everything.
//! Each test has its own key prefix; Postgres (a fresh database) only supplies sold seats.

use std::{collections::HashSet, time::Duration};

use shared::{
    cache::RedisKeys,
    ids::{ClassId, EventId, HoldId, SeatId, UserId},
    inventory::{
        Catalog, ClassCounts, ClassInfo, HoldOutcome, HoldState, HoldTerms, Inventory, SeatInfo,
        SeatState,
    },
};
use sqlx::PgPool;

/// One class "Main" of `rows` rows × `per_row` seats (labels `A-row-seat`), and the inventory.
fn fixture(db: PgPool, rows: i32, per_row: i32) -> (Inventory, Catalog, shared::cache::Redis) {
    let config = testkit::config::redis();
    let redis = shared::cache::connect(&config).expect("pool");
    let inventory = Inventory::new(db, redis.clone(), RedisKeys::new(config.key_prefix));
    let seats = (0..rows)
        .flat_map(|row| {
            (1..=per_row).map(move |seat| SeatInfo {
                id: SeatId::new(),
                label: format!("A-{}-{seat}", row + 1),
                class: 0,
                section: "A".into(),
                row_rank: row,
                seat_no: seat,
                x: seat as f32,
                y: row as f32,
            })
        })
        .collect();
    let classes = vec![ClassInfo {
        id: ClassId::new(),
        name: "Main".into(),
        position: 0,
        capacity: 0,
    }];
    let catalog = Catalog::from_parts(EventId::new(), classes, seats);
    (inventory, catalog, redis)
}

const MINUTE: Duration = Duration::from_secs(60);

/// The seats a new fan's best-available hold of `quantity` got (for a minute, class 0).
async fn best_for_a_new_fan(inventory: &Inventory, catalog: &Catalog, quantity: u32) -> Vec<u32> {
    held(
        inventory
            .hold_best(catalog, HoldId::new(), UserId::new(), MINUTE, 0, quantity)
            .await
            .expect("ok"),
    )
}

/// Asserts the one class's seats are `free`, `held` and `sold` as counted.
async fn assert_counts(inventory: &Inventory, catalog: &Catalog, [free, held, sold]: [u32; 3]) {
    assert_eq!(
        inventory.counts(catalog).await.expect("ok"),
        vec![ClassCounts { free, held, sold }]
    );
}

fn held(outcome: HoldOutcome) -> Vec<u32> {
    match outcome {
        HoldOutcome::Held { seats, .. } => seats,
        other => panic!("expected a hold, got {other:?}"),
    }
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_multi_seat_hold_is_all_or_nothing(db: PgPool) {
    let (inventory, catalog, _) = fixture(db, 1, 10);
    let (ada, bob) = (UserId::new(), UserId::new());
    held(
        inventory
            .hold_seats(&catalog, HoldId::new(), ada, MINUTE, &[2, 3])
            .await
            .expect("ok"),
    );

    let outcome = inventory
        .hold_seats(&catalog, HoldId::new(), bob, MINUTE, &[1, 2, 3, 4])
        .await
        .expect("ok");
    assert_eq!(outcome, HoldOutcome::Taken(vec![2, 3]));
    // Bob got nothing: seats 1 and 4 are still free.
    let states = inventory.snapshot(&catalog).await.expect("snapshot");
    assert_eq!(states[1], SeatState::Free);
    assert_eq!(states[4], SeatState::Free);
    assert_eq!(states[2], SeatState::Held);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn nobody_can_release_or_extend_another_fans_hold(db: PgPool) {
    let (inventory, catalog, _) = fixture(db, 1, 4);
    let (ada, bob) = (UserId::new(), UserId::new());
    let hold = HoldId::new();
    held(
        inventory
            .hold_seats(&catalog, hold, ada, MINUTE, &[0])
            .await
            .expect("ok"),
    );
    let event = catalog.event_id;
    assert!(!inventory.release(event, hold, bob).await.expect("ok"));
    assert_eq!(
        inventory
            .extend(event, hold, bob, MINUTE)
            .await
            .expect("ok"),
        HoldState::NotFound
    );
    // Converting with the wrong owner marks nothing it was not told to and keeps Ada's hold.
    inventory
        .convert(&catalog, hold, bob, &[])
        .await
        .expect("ok");
    assert!(matches!(
        inventory
            .extend(event, hold, ada, Duration::ZERO)
            .await
            .expect("ok"),
        HoldState::Live { .. }
    ));
    assert!(inventory.release(event, hold, ada).await.expect("ok"));
    assert_eq!(
        inventory.snapshot(&catalog).await.expect("ok")[0],
        SeatState::Free
    );
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_hold_expires_by_itself_and_its_seats_come_back(db: PgPool) {
    let (inventory, catalog, _) = fixture(db, 1, 4);
    let (ada, bob) = (UserId::new(), UserId::new());
    let hold = HoldId::new();
    held(
        inventory
            .hold_seats(&catalog, hold, ada, Duration::from_millis(300), &[0, 1])
            .await
            .expect("ok"),
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Expired for every check, before any sweep.
    assert_eq!(
        inventory
            .extend(catalog.event_id, hold, ada, MINUTE)
            .await
            .expect("ok"),
        HoldState::Expired
    );
    assert_eq!(
        inventory.snapshot(&catalog).await.expect("ok")[0],
        SeatState::Free
    );
    held(
        inventory
            .hold_seats(&catalog, HoldId::new(), bob, MINUTE, &[0, 1])
            .await
            .expect("ok"),
    );
    assert_counts(&inventory, &catalog, [2, 2, 0]).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_new_hold_replaces_the_fans_previous_one_unless_it_fails(db: PgPool) {
    let (inventory, catalog, _) = fixture(db, 1, 6);
    let (ada, bob) = (UserId::new(), UserId::new());
    let first = HoldId::new();
    held(
        inventory
            .hold_seats(&catalog, first, ada, MINUTE, &[0, 1])
            .await
            .expect("ok"),
    );
    // Replacing with an overlapping choice works: her own seats count as free for her.
    let second = HoldId::new();
    held(
        inventory
            .hold_seats(&catalog, second, ada, MINUTE, &[1, 2])
            .await
            .expect("ok"),
    );
    let states = inventory.snapshot(&catalog).await.expect("ok");
    assert_eq!(
        &states[..3],
        &[SeatState::Free, SeatState::Held, SeatState::Held]
    );
    assert_eq!(
        inventory
            .extend(catalog.event_id, first, ada, Duration::ZERO)
            .await
            .expect("ok"),
        HoldState::NotFound
    );

    // A replacement that cannot be made leaves the previous hold exactly as it was.
    held(
        inventory
            .hold_seats(&catalog, HoldId::new(), bob, MINUTE, &[5])
            .await
            .expect("ok"),
    );
    let failed = inventory
        .hold_seats(&catalog, HoldId::new(), ada, MINUTE, &[4, 5])
        .await
        .expect("ok");
    assert_eq!(failed, HoldOutcome::Taken(vec![5]));
    let not_enough = inventory
        .hold_best(&catalog, HoldId::new(), ada, MINUTE, 0, 6)
        .await
        .expect("ok");
    assert!(
        matches!(not_enough, HoldOutcome::NotEnough { .. }),
        "{not_enough:?}"
    );
    match inventory
        .extend(catalog.event_id, second, ada, Duration::ZERO)
        .await
        .expect("ok")
    {
        HoldState::Live { seats, .. } => assert_eq!(seats, vec![1, 2]),
        other => panic!("the previous hold is gone: {other:?}"),
    }
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn best_available_picks_adjacent_seats_in_the_best_row_then_falls_back(db: PgPool) {
    // Three rows of 10 (idx 0-9 row 1, 10-19 row 2, 20-29 row 3).
    let (inventory, catalog, _) = fixture(db, 3, 10);
    let blocker = UserId::new();
    // Row 1: seats 1-5 taken, so only 5 adjacent remain there.
    held(
        inventory
            .hold_seats(&catalog, HoldId::new(), blocker, MINUTE, &[0, 1, 2, 3, 4])
            .await
            .expect("ok"),
    );

    let three = best_for_a_new_fan(&inventory, &catalog, 3).await;
    assert_eq!(three, vec![5, 6, 7], "best row first, adjacent");
    let six = best_for_a_new_fan(&inventory, &catalog, 6).await;
    assert_eq!(
        six,
        vec![10, 11, 12, 13, 14, 15],
        "row 1 has no 6 together: row 2"
    );

    // Break every remaining row into pieces smaller than 4.
    let breaker = UserId::new();
    held(
        inventory
            .hold_seats(
                &catalog,
                HoldId::new(),
                breaker,
                MINUTE,
                &[9, 19, 22, 25, 28],
            )
            .await
            .expect("ok"),
    );
    let four = best_for_a_new_fan(&inventory, &catalog, 4).await;
    // No 4 adjacent anywhere: the best 4 free seats, best rows first.
    assert_eq!(four, vec![8, 16, 17, 18]);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_sold_seat_can_never_be_held_again(db: PgPool) {
    let (inventory, catalog, _) = fixture(db, 1, 3);
    let ada = UserId::new();
    let hold = HoldId::new();
    held(
        inventory
            .hold_seats(&catalog, hold, ada, MINUTE, &[0])
            .await
            .expect("ok"),
    );
    inventory
        .convert(&catalog, hold, ada, &[0])
        .await
        .expect("ok");
    let again = inventory
        .hold_seats(&catalog, HoldId::new(), UserId::new(), MINUTE, &[0])
        .await
        .expect("ok");
    assert_eq!(again, HoldOutcome::Taken(vec![0]));
    let best = best_for_a_new_fan(&inventory, &catalog, 2).await;
    assert_eq!(best, vec![1, 2]);
    assert_counts(&inventory, &catalog, [0, 2, 1]).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn two_hundred_fans_racing_for_overlapping_seats_never_share_one(db: PgPool) {
    let (inventory, catalog, _) = fixture(db, 2, 20);
    let catalog = std::sync::Arc::new(catalog);
    let attempts = (0..200u32).map(|i| {
        let (inventory, catalog) = (inventory.clone(), catalog.clone());
        // Overlapping windows of 2 to 4 seats across the 40.
        let start = (i * 7) % 37;
        let seats: Vec<u32> = (start..start + 2 + i % 3).collect();
        tokio::spawn(async move {
            inventory
                .hold_seats(&catalog, HoldId::new(), UserId::new(), MINUTE, &seats)
                .await
                .expect("ok")
        })
    });
    let mut owned = HashSet::new();
    for outcome in futures_util::future::join_all(attempts).await {
        if let HoldOutcome::Held { seats, .. } = outcome.expect("task") {
            for seat in seats {
                assert!(owned.insert(seat), "seat {seat} is in two holds");
            }
        }
    }
    let states = inventory.snapshot(&catalog).await.expect("ok");
    let held_now = states.iter().filter(|s| **s == SeatState::Held).count();
    assert_eq!(held_now, owned.len());
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_lost_redis_is_rebuilt_with_nothing_held_and_nothing_unsold(db: PgPool) {
    let (inventory, catalog, redis) = fixture(db, 1, 5);
    let ada = UserId::new();
    held(
        inventory
            .hold_seats(&catalog, HoldId::new(), ada, MINUTE, &[0, 1])
            .await
            .expect("ok"),
    );

    // Lose every key of the event.
    let base = inventory.keys().inventory(catalog.event_id);
    let mut conn = redis.conn();
    let keys: Vec<String> = shared::cache::redis::cmd("KEYS")
        .arg(format!("{base}*"))
        .query_async(&mut conn)
        .await
        .expect("keys");
    assert!(!keys.is_empty());
    let _: i64 = shared::cache::redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .expect("del");

    // The next operation rebuilds it from Postgres (nothing sold there): all free again.
    assert_counts(&inventory, &catalog, [5, 0, 0]).await;
    held(
        inventory
            .hold_seats(&catalog, HoldId::new(), UserId::new(), MINUTE, &[0])
            .await
            .expect("ok"),
    );
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_gated_hold_needs_the_fan_admitted_now_and_ends_with_the_admission(db: PgPool) {
    let (inventory, catalog, redis) = fixture(db, 1, 10);
    let active = inventory.keys().queue_active(catalog.event_id);
    let (ada, bob, cy) = (UserId::new(), UserId::new(), UserId::new());
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    // Ada is admitted for 20 more seconds, Bob's admission ended a second ago, Cy never was.
    let _: () = shared::cache::redis::cmd("ZADD")
        .arg(&active)
        .arg(now_ms + 20_000)
        .arg(ada.to_string())
        .arg(now_ms - 1_000)
        .arg(bob.to_string())
        .query_async(&mut redis.conn())
        .await
        .expect("ZADD");

    for fan in [bob, cy] {
        let refused = inventory
            .hold_seats(&catalog, HoldId::new(), fan, HoldTerms::gated(MINUTE), &[0])
            .await
            .expect("hold");
        assert_eq!(refused, HoldOutcome::NotAdmitted);
        let refused = inventory
            .hold_best(&catalog, HoldId::new(), fan, HoldTerms::gated(MINUTE), 0, 1)
            .await
            .expect("best");
        assert_eq!(refused, HoldOutcome::NotAdmitted);
    }
    // Nothing was taken by the refusals.
    assert_eq!(
        inventory.counts(&catalog).await.expect("counts")[0].free,
        10
    );

    // Ada's ten-minute hold ends when her admission does, twenty seconds from now.
    let HoldOutcome::Held { expires_at_ms, .. } = inventory
        .hold_seats(
            &catalog,
            HoldId::new(),
            ada,
            HoldTerms::gated(Duration::from_secs(600)),
            &[0],
        )
        .await
        .expect("hold")
    else {
        panic!("Ada is admitted");
    };
    assert_eq!(expires_at_ms, now_ms + 20_000);
    // The same hold without the gate is not Cy's business: ungated holds ignore the set.
    held(
        inventory
            .hold_best(&catalog, HoldId::new(), cy, MINUTE, 0, 1)
            .await
            .expect("best"),
    );
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn keeping_a_hold_for_an_order_spends_the_admission_in_the_same_step_or_changes_nothing(
    db: PgPool,
) {
    use shared::inventory::Spending;
    let (inventory, catalog, redis) = fixture(db, 1, 10);
    let event = catalog.event_id;
    let active = inventory.keys().queue_active(event);
    let (ada, bob) = (UserId::new(), UserId::new());
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let _: () = shared::cache::redis::cmd("ZADD")
        .arg(&active)
        .arg(now_ms + 60_000)
        .arg(ada.to_string())
        .arg(now_ms + 60_000)
        .arg(bob.to_string())
        .query_async(&mut redis.conn())
        .await
        .expect("ZADD");
    let (ada_hold, bob_hold) = (HoldId::new(), HoldId::new());
    held(
        inventory
            .hold_seats(&catalog, ada_hold, ada, HoldTerms::gated(MINUTE), &[0, 1])
            .await
            .expect("hold"),
    );
    held(
        inventory
            .hold_seats(&catalog, bob_hold, bob, HoldTerms::gated(MINUTE), &[2])
            .await
            .expect("hold"),
    );
    let score = |fan: UserId| {
        let (redis, active) = (redis.clone(), active.clone());
        async move {
            shared::cache::redis::cmd("ZSCORE")
                .arg(active)
                .arg(fan.to_string())
                .query_async::<Option<i64>>(&mut redis.conn())
                .await
                .expect("ZSCORE")
        }
    };

    // Someone else's hold: nothing is extended, nothing spent.
    let foreign = inventory
        .extend_spending(event, ada_hold, bob, MINUTE)
        .await
        .expect("extend");
    assert_eq!(foreign, Spending::HoldGone(HoldState::NotFound));
    assert_eq!(score(bob).await, Some(now_ms + 60_000));

    // Ada's: kept for two minutes, and her admission is used up, saying when it would end.
    let spent = inventory
        .extend_spending(event, ada_hold, ada, 2 * MINUTE)
        .await
        .expect("extend");
    let Spending::Spent { seats, admission } = spent else {
        panic!("{spent:?}");
    };
    assert_eq!(seats, vec![0, 1]);
    assert_eq!(admission.ends_at_ms, now_ms + 60_000);
    assert_eq!(score(ada).await, None);
    let HoldState::Live { expires_at_ms, .. } = inventory
        .extend(event, ada_hold, ada, Duration::ZERO)
        .await
        .expect("extend")
    else {
        panic!("the hold lives");
    };
    assert!(
        expires_at_ms >= now_ms + 110_000,
        "not kept: {expires_at_ms}"
    );

    // A second order on the same admission: refused, and the hold is not kept longer.
    let again = inventory
        .extend_spending(event, ada_hold, ada, 10 * MINUTE)
        .await
        .expect("extend");
    assert_eq!(again, Spending::NotAdmitted);
    let HoldState::Live {
        expires_at_ms: still,
        ..
    } = inventory
        .extend(event, ada_hold, ada, Duration::ZERO)
        .await
        .expect("extend")
    else {
        panic!("the hold lives");
    };
    assert_eq!(still, expires_at_ms);

    // Given back, it buys again.
    shared::admission::restore(&redis, inventory.keys(), admission).await;
    assert_eq!(score(ada).await, Some(now_ms + 60_000));
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn fifty_attempts_to_claim_one_hold_at_once_make_one_claim_and_a_release_undoes_only_its_own(
    db: PgPool,
) {
    use shared::booking::{
        Claims,
        claim::{ClaimRequest, Claimed},
    };
    let (inventory, _, redis) = fixture(db, 1, 1);
    let keys = inventory.keys().clone();
    let claims = Claims::new(redis.clone(), keys.clone());
    let (fan, hold, event) = (UserId::new(), HoldId::new(), EventId::new());
    let request = |key: usize| ClaimRequest {
        event,
        fan,
        hold,
        idempotency_key: Some(format!("tab-{key}")),
    };

    // Fifty tabs, fifty keys, one hold.
    let attempts = (0..50).map(|n| {
        let (claims, request) = (claims.clone(), request(n));
        tokio::spawn(async move { claims.claim(&request, false, &[]).await })
    });
    let mut won = Vec::new();
    for attempt in futures_util::future::join_all(attempts).await {
        match attempt.expect("task").expect("claim") {
            Claimed::New(claim) => won.push(claim),
            Claimed::Taken(found) => {
                // Each loser sees the winner's booking on the hold, and its marker.
                let on_hold = found
                    .last()
                    .cloned()
                    .flatten()
                    .expect("the hold is claimed");
                assert!(on_hold.marker.is_some_and(|marker| marker.user_id == fan));
            }
            Claimed::Nothing => panic!("a claim that was not a look-up claimed nothing"),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    let winner = won.pop().expect("one");
    let booking = winner.booking;
    assert!(claims.pending(fan, booking).await.expect("HGET").is_some());

    // A release by a request whose claim a stale takeover replaced leaves the new one alone:
    // take the hold over as stale (as after a lost marker), then release the old claim.
    let seen = [Some(booking)];
    let taken_over = claims
        .claim(
            &ClaimRequest {
                idempotency_key: None,
                ..request(0)
            },
            false,
            &seen,
        )
        .await
        .expect("claim");
    let Claimed::New(replacement) = taken_over else {
        panic!("{taken_over:?}");
    };
    claims.release(winner).await;
    let found = claims
        .claim(
            &ClaimRequest {
                idempotency_key: None,
                ..request(0)
            },
            true,
            &[],
        )
        .await
        .expect("look");
    let Claimed::Taken(found) = found else {
        panic!("{found:?}");
    };
    assert_eq!(
        found
            .last()
            .cloned()
            .flatten()
            .map(|earlier| earlier.booking),
        Some(replacement.booking)
    );
    assert!(claims.pending(fan, booking).await.expect("HGET").is_none());

    // Released, the hold can be claimed again at once.
    claims.release(replacement).await;
    let again = claims.claim(&request(7), false, &[]).await.expect("claim");
    assert!(matches!(again, Claimed::New(_)), "{again:?}");
}
