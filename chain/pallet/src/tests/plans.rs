//! publish / confirm_hosting / end_plan, assignment and replacement.

use frame::testing_prelude::*;

use crate::mock::*;
use crate::types::*;
use crate::{Contracts, Error, Event, Feeds, Participants};

#[test]
fn publish_verifies_the_root_escrows_and_assigns_distinct_hosters() {
    new_test_ext().execute_with(|| {
        register_hosters(3, 1);
        let pot = Datdot::account();
        let pot_before = free(pot);
        assert_ok!(publish(PUBLISHER, 2, 3));
        // 2 replicas × 3 periods × (100 + 3 attestors × 10).
        let escrow = 2 * 3 * (PRICE + 3 * REWARD);
        assert_eq!(free(PUBLISHER), FUNDS - escrow);
        assert_eq!(free(pot), pot_before + escrow);
        let feed = Feeds::<Test>::get(0).expect("feed");
        assert_eq!(
            (feed.length, feed.escrow, feed.key),
            (blocks().len() as u64, escrow, feed_key())
        );
        assert_eq!(feed.source, source(), "where hosters fetch it");
        assert_eq!(feed.contracts.to_vec(), vec![0, 1]);
        let a = Contracts::<Test>::get(0).expect("c0");
        let b = Contracts::<Test>::get(1).expect("c1");
        assert_ne!(a.hoster, b.hoster);
        assert_eq!(a.state, ContractState::Pending { deadline: 6 });
        assert_eq!(a.periods_left, 3);
        for c in [a, b] {
            assert_eq!(
                Participants::<Test>::get(c.hoster).map(|p| p.hosting),
                Some(1)
            );
        }
        assert!(events().iter().any(|e| matches!(
            e,
            Event::Published {
                feed: 0,
                length: 64,
                ..
            }
        )));
    });
}

#[test]
fn the_publisher_is_never_its_own_hoster() {
    new_test_ext().execute_with(|| {
        register_hosters(4, 1);
        // Hoster 10 publishes: it may never be assigned.
        for _ in 0..3 {
            assert_ok!(Datdot::publish(
                RuntimeOrigin::signed(10),
                feed_key(),
                signed_root_by(&feed_signing_key())
                    .try_into()
                    .expect("small"),
                plan(1, 1),
                source(),
            ));
        }
        for id in 0..3 {
            assert_ne!(Contracts::<Test>::get(id).map(|c| c.hoster), Some(10));
        }
        // All of 11, 12, 13 are now full; only 10 is free but it is the publisher.
        assert_noop!(
            Datdot::publish(
                RuntimeOrigin::signed(10),
                feed_key(),
                signed_root_by(&feed_signing_key())
                    .try_into()
                    .expect("small"),
                plan(1, 1),
                source(),
            ),
            Error::<Test>::NotEnoughHosters
        );
    });
}

#[test]
fn publish_errors() {
    new_test_ext().execute_with(|| {
        register_hosters(2, 1);
        let root = || -> BoundedVec<u8, ConstU32<{ crate::MAX_ROOT_BYTES }>> {
            signed_root_by(&feed_signing_key())
                .try_into()
                .expect("small")
        };
        let go = |key, root, plan| {
            Datdot::publish(RuntimeOrigin::signed(PUBLISHER), key, root, plan, source())
        };
        // The source is checked like a registration's endpoint.
        let with_source = |source: Endpoint| {
            Datdot::publish(
                RuntimeOrigin::signed(PUBLISHER),
                feed_key(),
                root(),
                plan(1, 1),
                source,
            )
        };
        let mut bad_key = source();
        bad_key.signing_key = [0; 32];
        bad_key.signing_key[0] = 2;
        assert_noop!(with_source(bad_key), Error::<Test>::InvalidSigningKey);
        let mut no_addr = source();
        no_addr.addr = BoundedVec::new();
        assert_noop!(with_source(no_addr), Error::<Test>::NoAddress);
        assert_noop!(
            go(feed_key(), root(), plan(0, 1)),
            Error::<Test>::InvalidPlan
        );
        assert_noop!(
            go(feed_key(), root(), plan(MAX_REPLICAS + 1, 1)),
            Error::<Test>::InvalidPlan
        );
        assert_noop!(
            go(feed_key(), root(), plan(1, 0)),
            Error::<Test>::InvalidPlan
        );
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert_noop!(
            go(not_a_point, root(), plan(1, 1)),
            Error::<Test>::InvalidFeedKey
        );
        assert_noop!(
            go(
                feed_key(),
                b"garbage".to_vec().try_into().expect("small"),
                plan(1, 1)
            ),
            Error::<Test>::MalformedSignedRoot
        );
        let mut trailing = root().to_vec();
        trailing.push(0);
        assert_noop!(
            go(feed_key(), trailing.try_into().expect("small"), plan(1, 1)),
            Error::<Test>::MalformedSignedRoot
        );
        // A feed over MaxFeedLength (65 blocks) or MaxFeedBytes (64 × 101 bytes): no
        // hoster is asked to fetch it.
        for blocks in [vec![vec![1u8; 100]; 65], vec![vec![1u8; 101]; 64]] {
            assert_noop!(
                go(feed_key(), signed_root_of(&blocks), plan(1, 1)),
                Error::<Test>::FeedTooLarge
            );
        }
        let other = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        assert_noop!(
            go(
                feed_key(),
                signed_root_by(&other).try_into().expect("small"),
                plan(1, 1)
            ),
            Error::<Test>::RootNotSigned
        );
        assert_noop!(
            go(feed_key(), root(), plan(3, 1)),
            Error::<Test>::NotEnoughHosters
        );
        let mut expensive = plan(1, 1);
        expensive.price_per_period = u64::MAX;
        assert_noop!(
            go(feed_key(), root(), expensive),
            Error::<Test>::EscrowOverflow
        );
        let mut unaffordable = plan(1, 1);
        unaffordable.price_per_period = FUNDS;
        assert!(go(feed_key(), root(), unaffordable).is_err());
        assert!(Feeds::<Test>::get(0).is_none());
    });
}

#[test]
fn confirm_hosting_starts_challenges() {
    new_test_ext().execute_with(|| {
        register_hosters(1, 1);
        register_attestors(3);
        assert_ok!(publish(PUBLISHER, 1, 1));
        assert_noop!(
            Datdot::confirm_hosting(RuntimeOrigin::signed(10), 9),
            Error::<Test>::NoSuchContract
        );
        assert_noop!(
            Datdot::confirm_hosting(RuntimeOrigin::signed(11), 0),
            Error::<Test>::NotContractHoster
        );
        assert_ok!(Datdot::confirm_hosting(RuntimeOrigin::signed(10), 0));
        assert_eq!(
            Contracts::<Test>::get(0).map(|c| c.state),
            Some(ContractState::Active)
        );
        assert_noop!(
            Datdot::confirm_hosting(RuntimeOrigin::signed(10), 0),
            Error::<Test>::NotPending
        );
        assert!(events().contains(&Event::HostingConfirmed { contract: 0 }));
        run_to(2);
        assert!(crate::Challenges::<Test>::contains_key(0));
    });
}

#[test]
fn an_unconfirmed_hoster_is_replaced() {
    new_test_ext().execute_with(|| {
        register_hosters(2, 1);
        assert_ok!(publish(PUBLISHER, 1, 4));
        let first = Contracts::<Test>::get(0).expect("c0").hoster;
        run_to(7); // deadline 6 passed
        assert!(
            Contracts::<Test>::get(0).is_none(),
            "ended and settled: forgotten"
        );
        let c1 = Contracts::<Test>::get(1).expect("replacement");
        assert_ne!(c1.hoster, first);
        assert_eq!(
            (c1.periods_left, c1.state),
            (4, ContractState::Pending { deadline: 12 })
        );
        let p = Participants::<Test>::get(first).expect("first");
        assert_eq!(
            (p.hosting, p.score),
            (0, crate::settle::INITIAL_SCORE - crate::settle::SCORE_STEP)
        );
        assert!(events().contains(&Event::HosterReplaced {
            feed: 0,
            contract: 0,
            hoster: first,
            replacement: Some(1)
        }));
        // The first hoster leaves; at the second timeout no other hoster is left: the
        // slot stays empty and, with no contract left, the plan ends with a full refund.
        assert_ok!(Datdot::unregister(RuntimeOrigin::signed(first)));
        run_to(13);
        assert!(Feeds::<Test>::get(0).is_none());
        assert_eq!(free(PUBLISHER), FUNDS);
        assert!(events().contains(&Event::PlanEnded {
            feed: 0,
            refund: 4 * (PRICE + 3 * REWARD)
        }));
    });
}

#[test]
fn end_plan_refunds_and_errors() {
    new_test_ext().execute_with(|| {
        register_hosters(2, 1);
        assert_noop!(
            Datdot::end_plan(RuntimeOrigin::signed(PUBLISHER), 0),
            Error::<Test>::NoSuchFeed
        );
        assert_ok!(publish(PUBLISHER, 2, 2));
        assert_noop!(
            Datdot::end_plan(RuntimeOrigin::signed(2), 0),
            Error::<Test>::NotPublisher
        );
        assert_ok!(Datdot::end_plan(RuntimeOrigin::signed(PUBLISHER), 0));
        assert_eq!(free(PUBLISHER), FUNDS);
        assert!(Feeds::<Test>::get(0).is_none());
        assert!(Contracts::<Test>::get(0).is_none());
        for h in [10, 11] {
            assert_eq!(Participants::<Test>::get(h).map(|p| p.hosting), Some(0));
        }
        assert_noop!(
            Datdot::end_plan(RuntimeOrigin::signed(PUBLISHER), 0),
            Error::<Test>::NoSuchFeed
        );
    });
}

#[test]
fn end_plan_while_a_challenge_is_open_waits_for_settlement() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(3);
        assert_ok!(Datdot::end_plan(RuntimeOrigin::signed(PUBLISHER), 0));
        assert_noop!(
            Datdot::end_plan(RuntimeOrigin::signed(PUBLISHER), 0),
            Error::<Test>::PlanEnding
        );
        assert!(
            Feeds::<Test>::get(0).is_some(),
            "kept until the open challenge settles"
        );
        run_to(7);
        let ch = crate::Challenges::<Test>::get(0).expect("open");
        for a in ch.attestors.iter() {
            assert_ok!(submit(0, *a, good_metrics()));
        }
        // Settled: the hoster was paid for the period, the rest refunded.
        assert_eq!(free(hoster), FUNDS - HOSTER_STAKE + PRICE);
        assert!(Feeds::<Test>::get(0).is_none());
        assert_eq!(free(PUBLISHER), FUNDS - PRICE - 3 * REWARD);
    });
}
