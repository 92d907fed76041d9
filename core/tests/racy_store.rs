//! Proof that the concurrency scenarios catch races: run against a store whose check-then-act
//! is two steps, each scenario must report a violation.

mod common;

use std::sync::Arc;

use common::racy::RacyStore;
use racefree::{SharedClock, SharedStore};

fn racy(clock: SharedClock) -> SharedStore {
    Arc::new(RacyStore::new(clock))
}

fn expect_caught(name: &str, outcome: common::Outcome) {
    match outcome {
        Err(violation) => eprintln!("{name} caught the racy store: {violation}"),
        Ok(()) => panic!("{name} passed against a store with check-then-act in two steps"),
    }
}

#[test]
fn duplicate_indexes_are_caught() {
    expect_caught("counter_next_is_gap_free", common::counter_next_is_gap_free(&racy));
}

#[test]
fn unstable_claims_are_caught() {
    expect_caught("claims_are_unique_and_stable", common::claims_are_unique_and_stable(&racy));
}

#[test]
fn duplicate_starts_are_caught() {
    expect_caught("one_starter_wins", common::one_starter_wins(&racy));
}

#[test]
fn lost_updates_are_caught() {
    expect_caught("updates_are_not_lost", common::updates_are_not_lost(&racy));
}

#[test]
fn updates_landing_on_a_new_incarnation_are_caught() {
    expect_caught(
        "updates_never_land_on_a_new_incarnation",
        common::updates_never_land_on_a_new_incarnation(&racy),
    );
}

#[test]
fn duplicate_events_are_caught() {
    expect_caught("ended_is_delivered_once", common::ended_is_delivered_once(&racy));
}
