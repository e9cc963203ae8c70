//! The compiled model's bytes (`Model::to_bytes`): a model read back decides exactly as the
//! one written, and the layout is pinned so that a change of it cannot go unnoticed.

use std::collections::BTreeMap;

use crm_model::{Action, Catalog, Model, Module, Party, Profile, Role, RuleAccess, SharingLevel, SharingRule, User};

fn catalog() -> Catalog {
    let roles = vec![
        Role { id: 1, name: "CEO".into(), parent: None },
        Role { id: 2, name: "Rep".into(), parent: Some(1) },
    ];
    let grants = BTreeMap::from([("Leads".to_string(), vec![Action::Read, Action::Edit])]);
    Catalog {
        roles,
        profiles: vec![Profile { id: 1, name: "Sales".into(), grants, ..Default::default() }],
        role_profiles: vec![(1, 1), (2, 1)],
        users: vec![
            User { owner_id: 10, name: "ceo".into(), role: 1, is_admin: false, is_active: true },
            User { owner_id: 11, name: "rep".into(), role: 2, is_admin: false, is_active: true },
            User { owner_id: 12, name: "rep2".into(), role: 2, is_admin: false, is_active: true },
        ],
        modules: vec![Module::new("Leads", SharingLevel::Private)],
        sharing_rules: vec![SharingRule {
            id: 5,
            module: "Leads".into(),
            source: Party::Role(2),
            target: Party::Role(2),
            access: RuleAccess::Read,
            related_modules: vec![],
        }],
        db_role_map: BTreeMap::from([(16384, 11)]),
        trusted_roles: vec![16385],
        ..Default::default()
    }
}

/// FNV-1a: a digest that stays the same across Rust releases, unlike the std hasher.
fn digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

#[test]
fn a_model_read_back_decides_the_same() {
    let m = Model::compile(catalog()).unwrap();
    let back = Model::from_bytes(&m.to_bytes()).expect("reads back");
    for u in [10, 11, 12] {
        for action in Action::ALL {
            assert_eq!(m.scope(u, "Leads", action), back.scope(u, "Leads", action));
        }
    }
    assert_eq!(back.user_by_name("rep2").map(|u| u.owner_id), Some(12));
    assert_eq!(back.catalog(), m.catalog());
}

#[test]
fn other_bytes_are_refused() {
    let bytes = Model::compile(catalog()).unwrap().to_bytes();
    assert!(Model::from_bytes(&bytes[..bytes.len() - 1]).is_none(), "truncated");
    assert!(Model::from_bytes(&[bytes.as_slice(), &[0]].concat()).is_none(), "trailing bytes");
    assert!(Model::from_bytes(&bytes[1..]).is_none(), "no format tag");
    assert!(Model::from_bytes(b"").is_none());
}

#[test]
fn role_bindings_are_replaced() {
    let mut m = Model::from_bytes(&Model::compile(catalog()).unwrap().to_bytes()).unwrap();
    m.set_role_bindings(BTreeMap::from([(20000, 12)]), vec![]);
    assert_eq!(m.catalog().db_role_map, BTreeMap::from([(20000, 12)]));
    assert!(m.catalog().trusted_roles.is_empty());
}

/// Fails whenever the layout of the model's types changes. Then bump `FORMAT` in
/// model/src/shared.rs (so that no build reads bytes of another layout) and update this
/// digest.
#[test]
fn layout_is_pinned() {
    let bytes = Model::compile(catalog()).unwrap().to_bytes();
    assert_eq!((bytes.len(), digest(&bytes)), (200, 14058045555694435729), "the model's byte layout changed: bump FORMAT in model/src/shared.rs");
}


/// Lookups search users by id: bytes whose users are out of id order (only a damaged or
/// forged model) are no model at all, so the backend compiles the catalog instead.
#[test]
fn users_out_of_order_are_refused() {
    let bytes = Model::compile(catalog()).unwrap().to_bytes();
    // ceo (10, role 1) and rep (11, role 2) as postcard writes them: zigzag id, zigzag role,
    // the name's length (the names follow the users), flags.
    let ceo: &[u8] = &[20, 2, 3, 0, 1];
    let rep: &[u8] = &[22, 4, 3, 0, 1];
    let at = bytes.windows(10).position(|w| w == [ceo, rep].concat()).expect("the users' records, side by side");
    let mut swapped = bytes.clone();
    // The ids swapped, everything else in place.
    (swapped[at], swapped[at + 5]) = (22, 20);
    assert!(Model::from_bytes(&swapped).is_none(), "users out of order");
    // An edit of the same records keeping them in order (ceo made an administrator) still
    // reads: only the order refused it.
    let flagged: Vec<u8> = [&[20, 2, 3, 1, 1][..], rep].concat();
    swapped[at..at + 10].copy_from_slice(&flagged);
    assert_eq!(Model::from_bytes(&swapped).expect("reads").user(10).map(|u| u.is_admin), Some(true));
}

/// Bytes with any one byte changed either are refused or read as a model whose lookups and
/// decisions do not panic (a decode checks what its lookups follow: ids, names, positions,
/// ranges). Every position, every value; a name of two-byte characters among the users.
#[test]
fn any_one_byte_changed_is_refused_or_decides() {
    let mut catalog = catalog();
    catalog.users.push(User { owner_id: 13, name: "zoë".into(), role: 2, is_admin: false, is_active: true });
    let bytes = Model::compile(catalog).unwrap().to_bytes();
    let mut read = 0;
    for at in 0..bytes.len() {
        for value in 0..=u8::MAX {
            let mut edited = bytes.clone();
            edited[at] = value;
            let outcome = std::panic::catch_unwind(|| {
                let Some(m) = Model::from_bytes(&edited) else { return false };
                for u in m.users().map(|u| u.owner_id).chain([10, 11, 12, 13, 99]) {
                    let _ = (m.owner_name(u), m.groups_of(u).count());
                    for action in Action::ALL {
                        let _ = m.scope(u, "Leads", action);
                        for owner in [10, 11, 12, 99] {
                            let _ = m.decide(Some(u), "Leads", action, owner);
                        }
                    }
                }
                let _ = (m.user_by_name("rep2"), m.user_by_name("zoë"), m.owner_by_name("rep"));
                true
            });
            match outcome {
                Ok(true) => read += 1,
                Ok(false) => {}
                Err(_) => panic!("byte {at} set to {value} panicked"),
            }
        }
    }
    // Many edits change a flag, a name's letter or a privilege and still read.
    assert!(read > 1000, "{read} read");
}
