//! register / update / unregister / withdraw_unbonded: success and every error.

use frame::testing_prelude::*;

use crate::mock::*;
use crate::types::*;
use crate::{Error, Event, KeyOwner, Participants};

#[test]
fn register_bonds_the_stake_and_records_the_endpoint() {
    new_test_ext().execute_with(|| {
        let pot = Datdot::account();
        let pot_before = free(pot);
        assert_ok!(Datdot::register(
            RuntimeOrigin::signed(10),
            Role::Hoster,
            1500,
            endpoint(10),
            3
        ));
        assert_eq!(free(10), FUNDS - 1500);
        assert_eq!(free(pot), pot_before + 1500);
        let p = Participants::<Test>::get(10).expect("stored");
        assert_eq!(
            (p.role, p.stake, p.capacity, p.hosting),
            (Role::Hoster, 1500, 3, 0)
        );
        assert_eq!(p.status, Status::Active);
        assert_eq!(p.endpoint, endpoint(10));
        assert_eq!(KeyOwner::<Test>::get(key_of(10)), Some(10));
        assert_eq!(crate::Hosters::<Test>::get().to_vec(), vec![10]);
        assert!(events().contains(&Event::Registered {
            who: 10,
            role: Role::Hoster,
            stake: 1500
        }));
        // Attestors have no capacity.
        assert_ok!(Datdot::register(
            RuntimeOrigin::signed(20),
            Role::Attestor,
            500,
            endpoint(20),
            7
        ));
        assert_eq!(Participants::<Test>::get(20).map(|p| p.capacity), Some(0));
        assert_eq!(crate::Attestors::<Test>::get().to_vec(), vec![20]);
    });
}

#[test]
fn register_errors() {
    new_test_ext().execute_with(|| {
        let reg = |who, role, stake, ep, cap| {
            Datdot::register(RuntimeOrigin::signed(who), role, stake, ep, cap)
        };
        assert_noop!(
            reg(10, Role::Hoster, 999, endpoint(10), 1),
            Error::<Test>::StakeTooLow
        );
        assert_noop!(
            reg(20, Role::Attestor, 499, endpoint(20), 0),
            Error::<Test>::StakeTooLow
        );
        assert_noop!(
            reg(10, Role::Hoster, 1000, endpoint(10), 0),
            Error::<Test>::NoCapacity
        );
        let mut bad = endpoint(10);
        bad.signing_key = [0; 32];
        bad.signing_key[0] = 2; // not a curve point
        assert_noop!(
            reg(10, Role::Hoster, 1000, bad, 1),
            Error::<Test>::InvalidSigningKey
        );
        assert_ok!(reg(10, Role::Hoster, 1000, endpoint(10), 1));
        assert_noop!(
            reg(10, Role::Hoster, 1000, endpoint(10), 1),
            Error::<Test>::AlreadyRegistered
        );
        assert_noop!(
            reg(11, Role::Hoster, 1000, endpoint(10), 1),
            Error::<Test>::SigningKeyInUse
        );
        // Not enough funds: the currency's error.
        assert!(reg(11, Role::Hoster, FUNDS * 2, endpoint(11), 1).is_err());
        assert!(Participants::<Test>::get(11).is_none());
        // The list is bounded (MaxAttestors = 16).
        for a in 14..30u64 {
            assert_ok!(reg(a, Role::Attestor, 500, endpoint(a), 0));
        }
        assert_noop!(
            reg(2, Role::Attestor, 500, endpoint(2), 0),
            Error::<Test>::TooManyParticipants
        );
    });
}

#[test]
fn update_rotates_keys_and_errors() {
    new_test_ext().execute_with(|| {
        register_hosters(2, 1);
        assert_noop!(
            Datdot::update(RuntimeOrigin::signed(3), endpoint(3)),
            Error::<Test>::NotRegistered
        );
        assert_noop!(
            Datdot::update(RuntimeOrigin::signed(10), endpoint(11)),
            Error::<Test>::SigningKeyInUse
        );
        let mut bad = endpoint(10);
        bad.signing_key = [0; 32];
        bad.signing_key[0] = 2;
        assert_noop!(
            Datdot::update(RuntimeOrigin::signed(10), bad),
            Error::<Test>::InvalidSigningKey
        );
        let mut empty = endpoint(10);
        empty.addr = BoundedVec::new();
        assert_noop!(
            Datdot::update(RuntimeOrigin::signed(10), empty),
            Error::<Test>::NoAddress
        );
        let mut new = endpoint(50);
        new.addr = b"10.0.0.1:9".to_vec().try_into().expect("short");
        assert_ok!(Datdot::update(RuntimeOrigin::signed(10), new.clone()));
        assert_eq!(Participants::<Test>::get(10).map(|p| p.endpoint), Some(new));
        assert_eq!(KeyOwner::<Test>::get(key_of(50)), Some(10));
        assert_eq!(
            KeyOwner::<Test>::get(key_of(10)),
            None,
            "old key is free again"
        );
        // Same key, new address: fine.
        let mut same = endpoint(50);
        same.noise_key = noise_key_of(51);
        assert_ok!(Datdot::update(RuntimeOrigin::signed(10), same));
        assert!(events().contains(&Event::Updated { who: 10 }));
    });
}

#[test]
fn unregister_and_withdraw() {
    new_test_ext().execute_with(|| {
        register_attestors(1);
        assert_noop!(
            Datdot::unregister(RuntimeOrigin::signed(3)),
            Error::<Test>::NotRegistered
        );
        assert_noop!(
            Datdot::withdraw_unbonded(RuntimeOrigin::signed(3)),
            Error::<Test>::NotRegistered
        );
        assert_noop!(
            Datdot::withdraw_unbonded(RuntimeOrigin::signed(20)),
            Error::<Test>::NotUnbonding
        );
        assert_ok!(Datdot::unregister(RuntimeOrigin::signed(20)));
        assert!(events().contains(&Event::Unregistered {
            who: 20,
            until: 101
        }));
        assert!(crate::Attestors::<Test>::get().is_empty());
        assert_noop!(
            Datdot::unregister(RuntimeOrigin::signed(20)),
            Error::<Test>::Unbonding
        );
        run_to(100);
        assert_noop!(
            Datdot::withdraw_unbonded(RuntimeOrigin::signed(20)),
            Error::<Test>::StillUnbonding
        );
        run_to(101);
        assert_ok!(Datdot::withdraw_unbonded(RuntimeOrigin::signed(20)));
        assert_eq!(free(20), FUNDS);
        assert!(Participants::<Test>::get(20).is_none());
        assert_eq!(KeyOwner::<Test>::get(key_of(20)), None);
        assert!(events().contains(&Event::Withdrawn {
            who: 20,
            amount: ATTESTOR_STAKE
        }));
    });
}

#[test]
fn a_hoster_cannot_unregister_while_hosting() {
    new_test_ext().execute_with(|| {
        register_hosters(1, 1);
        assert_ok!(publish(PUBLISHER, 1, 1));
        assert_noop!(
            Datdot::unregister(RuntimeOrigin::signed(10)),
            Error::<Test>::StillHosting
        );
        assert_ok!(Datdot::end_plan(RuntimeOrigin::signed(PUBLISHER), 0));
        assert_ok!(Datdot::unregister(RuntimeOrigin::signed(10)));
    });
}

/// A member that registers another member's Noise key — or its negation, the same
/// X25519 key, or a small-order key — could have the victim's committee messages
/// dropped or taken for its own, and the victim accused of withholding. Noise keys are
/// unique in their X25519 form, and weak keys are refused.
#[test]
fn another_members_noise_key_or_its_negation_is_refused() {
    new_test_ext().execute_with(|| {
        let (victim, thief) = (ATTESTORS[0], ATTESTORS[1]);
        register_attestors(1);
        let reg = |e: Endpoint| {
            Datdot::register(
                RuntimeOrigin::signed(thief),
                Role::Attestor,
                ATTESTOR_STAKE,
                e,
                0,
            )
        };
        let mut e = endpoint(thief);
        e.noise_key = noise_key_of(victim);
        assert_noop!(reg(e.clone()), Error::<Test>::NoiseKeyInUse);
        // −P: the sign bit flipped; another ed25519 key, the same X25519 key.
        e.noise_key[31] ^= 0x80;
        assert_ne!(e.noise_key, noise_key_of(victim));
        assert_eq!(
            datdot_protocol::identity::x25519_of(&e.noise_key),
            datdot_protocol::identity::x25519_of(&noise_key_of(victim))
        );
        assert_noop!(reg(e.clone()), Error::<Test>::NoiseKeyInUse);
        // The identity point (y = 1): small order, every shared secret predictable.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        e.noise_key = identity;
        assert_noop!(reg(e), Error::<Test>::InvalidNoiseKey);
        // Nor by an update.
        assert_ok!(reg(endpoint(thief)));
        let mut e = endpoint(thief);
        e.noise_key = noise_key_of(victim);
        e.noise_key[31] ^= 0x80;
        assert_noop!(
            Datdot::update(RuntimeOrigin::signed(thief), e),
            Error::<Test>::NoiseKeyInUse
        );
        // Withdrawing frees the key.
        assert_ok!(Datdot::unregister(RuntimeOrigin::signed(victim)));
        run_to(System::block_number() + 1_000);
        assert_ok!(Datdot::withdraw_unbonded(RuntimeOrigin::signed(victim)));
        let mut e = endpoint(thief);
        e.noise_key = noise_key_of(victim);
        assert_ok!(Datdot::update(RuntimeOrigin::signed(thief), e));
    });
}
