//! On random organisations, the top-down owner scopes and the bottom-up record decisions
//! agree for every user, owner, module and action: two independent computations of §3.

use std::collections::BTreeMap;

use crm_model::{Owned, RecordShare, Action, Catalog, Conversation, Event, MessagePermission, Group, GroupMember, Holds, Model, Module, Party, Profile, Restricted, RestrictionRule, Role, Row, RuleAccess, Value, Filter, SharingLevel, SharingRule, User};
use proptest::prelude::*;

fn catalog() -> impl Strategy<Value = Catalog> {
    (2usize..40, 1usize..6, 1usize..60, any::<u64>()).prop_map(|(n_roles, n_profiles, n_users, seed)| {
        let mut rnd = seed;
        let mut next = |n: usize| {
            rnd = rnd.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((rnd >> 33) as usize) % n.max(1)
        };
        let roles = (0..n_roles)
            .map(|i| Role { id: i as i64 + 1, name: format!("R{}", i + 1), parent: (i > 0).then(|| next(i) as i64 + 1) })
            .collect();
        let mut modules: Vec<Module> = ["Leads", "Accounts", "Contacts", "Opportunities", "Messages", "Activities"]
            .iter()
            .map(|m| standard_module(m, SharingLevel::ALL[next(4)]))
            .collect();
        // Modules of the organisation's own (DESIGN §9): each under Accounts, an earlier one of
        // its own, or nothing; some controlled by their parent.
        let mut module_relations = standard_relations();
        for i in 0..next(4) {
            let name = format!("Custom{i}");
            let parent = match next(3) {
                0 => None,
                1 => Some("Accounts".to_string()),
                _ if i > 0 => Some(format!("Custom{}", next(i))),
                _ => Some("Accounts".to_string()),
            };
            let controlled = parent.is_some() && next(3) == 0;
            if let Some(p) = &parent {
                module_relations.push((p.clone(), name.clone()));
            }
            modules.push(Module { controlled_by: parent.filter(|_| controlled), ..Module::new(name, SharingLevel::ALL[next(4)]) });
        }
        let record_modules: Vec<String> =
            modules.iter().filter(|m| m.holds.is_none() && m.name != "Opportunities").map(|m| m.name.clone()).collect();
        let profiles = (0..n_profiles)
            .map(|i| Profile {
                id: i as i64 + 1,
                name: format!("P{i}"),
                view_all: next(8) == 0,
                edit_all: next(10) == 0,
                grants: modules
                    .iter()
                    .map(|m| (m.name.clone(), Action::ALL.iter().copied().filter(|_| next(3) > 0).collect()))
                    .collect::<BTreeMap<_, _>>(),
                message_permissions: MessagePermission::ALL.iter().copied().filter(|_| next(2) == 0).collect(),
                ..Default::default()
            })
            .collect();
        let role_profiles = (1..=n_roles as i64).flat_map(|r| vec![(r, next(n_profiles) as i64 + 1); 1 + next(2)]).collect();
        let users = (0..n_users)
            .map(|i| User {
                owner_id: 100 + i as i64,
                name: format!("u{i}").into(),
                role: next(n_roles) as i64 + 1,
                is_admin: next(20) == 0,
                is_active: next(10) > 0,
            })
            .collect();
        let n_groups = next(6);
        let groups: Vec<Group> = (0..n_groups).map(|g| Group { owner_id: 1000 + g as i64, name: format!("g{g}") }).collect();
        let mut group_members = Vec::new();
        for g in 0..n_groups {
            for _ in 0..next(4) {
                let member = match next(4) {
                    0 => Party::User(100 + next(n_users) as i64),
                    1 => Party::Role(next(n_roles) as i64 + 1),
                    2 => Party::RoleAndSubordinates(next(n_roles) as i64 + 1),
                    // Only earlier groups: nesting without cycles, as the API guarantees.
                    _ if g > 0 => Party::Group(1000 + next(g) as i64),
                    _ => continue,
                };
                group_members.push(GroupMember { group: 1000 + g as i64, member });
            }
        }
        let party = |next: &mut dyn FnMut(usize) -> usize| match next(3) {
            0 => Party::Role(next(n_roles) as i64 + 1),
            1 => Party::RoleAndSubordinates(next(n_roles) as i64 + 1),
            _ if n_groups > 0 => Party::Group(1000 + next(n_groups) as i64),
            _ => Party::Role(1),
        };
        // Rules on modules that govern themselves (as the API allows), carrying a related module.
        let governing: Vec<&String> = record_modules
            .iter()
            .filter(|r| modules.iter().any(|m| &m.name == *r && m.controlled_by.is_none()))
            .collect();
        let sharing_rules = (0..next(6))
            .map(|i| {
                let module = governing[next(governing.len())].clone();
                let children: Vec<String> = module_relations.iter().filter(|(p, _)| *p == module).map(|(_, c)| c.clone()).collect();
                SharingRule {
                    id: i as i64 + 1,
                    source: party(&mut next),
                    target: party(&mut next),
                    access: if next(2) == 0 { RuleAccess::Read } else { RuleAccess::ReadWrite },
                    related_modules: if next(2) == 0 && !children.is_empty() { vec![children[next(children.len())].clone()] } else { vec![] },
                    module,
                }
            })
            .collect();
        let permission_sets: Vec<Profile> = (0..next(3))
            .map(|i| Profile {
                id: 500 + i as i64,
                name: format!("S{i}"),
                view_all: next(6) == 0,
                edit_all: next(8) == 0,
                grants: BTreeMap::from([(["Leads", "Messages"][next(2)].to_string(), vec![Action::ALL[next(6)]])]),
                message_permissions: MessagePermission::ALL.iter().copied().filter(|_| next(4) == 0).collect(),
                ..Default::default()
            })
            .collect();
        let permission_set_assignments = (0..permission_sets.len() * 2)
            .map(|i| (500 + (i / 2) as i64, if next(2) == 0 || n_groups == 0 { 100 + next(n_users) as i64 } else { 1000 + next(n_groups) as i64 }, None))
            .collect();
        let calendar_shares = (0..next(8)).map(|_| (100 + next(n_users) as i64, 100 + next(n_users) as i64)).collect();
        // Restriction rules (DESIGN §9) on any record module, over two columns every record has.
        let n_sets = permission_sets.len();
        let restriction_rules = (0..next(5))
            .map(|i| {
                let applies_to = match next(4) {
                    0 => Restricted::Role(next(n_roles) as i64 + 1),
                    1 => Restricted::RoleAndSubordinates(next(n_roles) as i64 + 1),
                    2 if n_groups > 0 => Restricted::Group(1000 + next(n_groups) as i64),
                    3 if n_sets > 0 => Restricted::PermissionSet(500 + next(n_sets) as i64),
                    _ => Restricted::Role(1),
                };
                let (column, values) = if next(2) == 0 { ("region", REGIONS) } else { ("tier", TIERS) };
                let mut allowed: Vec<String> = values.iter().filter(|_| next(2) == 0).map(|v| v.to_string()).collect();
                if allowed.is_empty() {
                    allowed.push(values[0].to_string());
                }
                RestrictionRule { id: 900 + i as i64, module: record_modules[next(record_modules.len())].clone(), applies_to, column: column.into(), allowed }
            })
            .collect();
        Catalog {
            roles, profiles, role_profiles, users, modules, groups, group_members, sharing_rules, permission_sets,
            permission_set_assignments, calendar_shares, module_relations, restriction_rules, ..Default::default()
        }
    })
}

const REGIONS: [&str; 3] = ["EU", "US", "APAC"];
const TIERS: [&str; 3] = ["1", "2", "10"];

/// A record as restriction rules read it: its owner and two columns, as text.
struct Record<'a> {
    owner: i64,
    region: Option<&'a str>,
    tier: Option<&'a str>,
}

impl Row for Record<'_> {
    fn value(&self, column: &str) -> Option<Value<'_>> {
        match column {
            "owner" => Some(Value::Id(Some(self.owner))),
            "region" => Some(Value::Text(self.region)),
            "tier" => Some(Value::Text(self.tier)),
            _ => None,
        }
    }
}

/// Whether restriction rule `r` applies to `u`, from the catalog as written: roles by walking
/// up the parent ids, sets by their assignments (to the user, or to a group the user is in).
fn rule_applies(m: &Model, roles: &[Role], r: &RestrictionRule, u: &User) -> bool {
    let above = |top: i64, mut role: i64| loop {
        if role == top {
            return true;
        }
        match roles.iter().find(|x| x.id == role).and_then(|x| x.parent) {
            Some(p) => role = p,
            None => return false,
        }
    };
    match r.applies_to {
        Restricted::Role(role) => u.role == role,
        Restricted::RoleAndSubordinates(role) => above(role, u.role),
        Restricted::Group(g) => m.groups_of(u.owner_id).any(|x| x == g),
        Restricted::PermissionSet(s) => m.catalog().permission_sets.iter().any(|p| p.id == s)
            && m.catalog().permission_set_assignments.iter().any(|&(set, who, _)| set == s && (who == u.owner_id || m.groups_of(u.owner_id).any(|g| g == who))),
    }
}

/// The standard modules' roles as crm_access ships them (sql/catalog.sql's seed rows).
fn standard_module(name: &str, default: SharingLevel) -> Module {
    Module {
        controlled_by: (name == "Contacts").then(|| "Accounts".to_string()),
        holds: match name {
            "Messages" => Some(Holds::Conversations),
            "Activities" => Some(Holds::Events),
            _ => None,
        },
        links_conversations: matches!(name, "Leads" | "Contacts"),
        ..Module::new(name, default)
    }
}

fn standard_relations() -> Vec<(String, String)> {
    [("Accounts", "Opportunities"), ("Accounts", "Tickets"), ("Accounts", "Quotes"), ("Accounts", "SalesOrders"), ("Accounts", "Invoices"),
     ("Opportunities", "Quotes"), ("Opportunities", "SalesOrders"), ("Quotes", "SalesOrders"), ("SalesOrders", "Invoices")]
    .iter()
    .map(|(p, c)| (p.to_string(), c.to_string()))
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn scopes_agree_with_decisions(catalog in catalog()) {
        let m = Model::compile(catalog).unwrap();
        // The shared form (crm.compiled_model) decides exactly as the model it was made of.
        let shared = Model::from_bytes(&m.to_bytes()).unwrap();
        let owners: Vec<i64> = m.users().map(|u| u.owner_id).chain(1000..1006).chain([1, 99_999]).collect();
        let record_modules: Vec<String> = m.catalog().modules.iter().filter(|m| m.holds.is_none()).map(|m| m.name.clone()).collect();
        for u in m.users() {
            for module in record_modules.iter().map(String::as_str) {
                for action in Action::ALL {
                    let scope = m.scope(u.owner_id, module, action);
                    prop_assert_eq!(&scope, &shared.scope(u.owner_id, module, action));
                    for &o in &owners {
                        let d = m.decide(Some(u.owner_id), module, action, o);
                        prop_assert_eq!(scope.contains(o), d.allowed, "{} {} {} owner {}: {}", u.name, module, action, o, d.reason);
                        prop_assert_eq!(scope.filter().admits(&Owned(Some(o))), d.allowed, "filter: {} {} {} owner {}", u.name, module, action, o);
                    }
                }
                for action in [Action::Create, Action::Edit] {
                    let assignable = m.assignable(u.owner_id, module, action);
                    for &o in &owners {
                        let d = m.decide_assignment(Some(u.owner_id), module, action, o);
                        prop_assert_eq!(assignable.contains(&o), d.allowed, "assign {} {} {} owner {}: {}", u.name, module, action, o, d.reason);
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// The conversation filter policies use and the per-conversation decision agree.
    #[test]
    fn conversation_scopes_agree_with_decisions(catalog in catalog(), seed in any::<u64>()) {
        let m = Model::compile(catalog).unwrap();
        let mut rnd = seed;
        let mut next = |n: usize| {
            rnd = rnd.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((rnd >> 33) as usize) % n.max(1)
        };
        let people: Vec<i64> = m.users().map(|u| u.owner_id).chain(1000..1006).collect();
        let pick = |next: &mut dyn FnMut(usize) -> usize| (next(3) > 0).then(|| people[next(people.len())]);
        let conversations: Vec<Conversation> = (0..40)
            .map(|_| Conversation {
                assigned_to: pick(&mut next),
                linked_owner: pick(&mut next),
                is_new: next(3) == 0,
                archived_by: (0..next(3)).map(|_| people[next(people.len())]).collect(),
            })
            .collect();
        for u in m.users() {
            for action in Action::ALL {
                let scope = m.conversation_scope(u.owner_id, action);
                for c in &conversations {
                    if !action.is_record_level() && action != Action::Create {
                        continue;
                    }
                    let d = m.decide_conversation(Some(u.owner_id), action, c);
                    prop_assert_eq!(scope.filter().admits(c), d.allowed, "{} {} {:?}: {}", u.name, action, c, d.reason);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// The event filter policies use and the per-event decision agree.
    #[test]
    fn event_scopes_agree_with_decisions(catalog in catalog(), seed in any::<u64>()) {
        let m = Model::compile(catalog).unwrap();
        let mut rnd = seed;
        let mut next = |n: usize| {
            rnd = rnd.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((rnd >> 33) as usize) % n.max(1)
        };
        let people: Vec<i64> = m.users().map(|u| u.owner_id).collect();
        let events: Vec<Event> = (0..40)
            .map(|_| Event {
                owner: people[next(people.len())],
                invitees: (0..next(3)).map(|_| people[next(people.len())]).collect(),
                public: next(2) == 0,
            })
            .collect();
        for u in m.users() {
            for action in Action::ALL {
                let scope = m.event_scope(u.owner_id, action);
                for e in &events {
                    let d = m.decide_event(Some(u.owner_id), action, e);
                    prop_assert_eq!(scope.filter().admits(e), d.allowed, "{} {} {:?}: {}", u.name, action, e, d.reason);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// A child record's policy, `can(owner) OR can_via_parent(parent_owner)`, evaluated as the
    /// two filters the planner builds, agrees with the child decision (DESIGN §3.3).
    #[test]
    fn child_filters_agree_with_decisions(catalog in catalog()) {
        let m = Model::compile(catalog).unwrap();
        let owners: Vec<i64> = m.users().map(|u| u.owner_id).chain(1000..1006).chain([99_999]).collect();
        let parents: Vec<Option<i64>> = owners.iter().copied().map(Some).chain([None]).collect();
        // Every relation the catalog has: the shipped Accounts -> Opportunities and the
        // organisation's own modules under Accounts or under each other.
        let relations: Vec<(String, String)> = m
            .catalog()
            .module_relations
            .iter()
            .filter(|(p, c)| m.catalog().module(p).is_some() && m.catalog().module(c).is_some())
            .cloned()
            .collect();
        for (parent, child) in &relations {
            for u in m.users() {
                for action in [Action::Read, Action::Edit, Action::Delete] {
                    let own = m.scope(u.owner_id, child, action).filter();
                    let via_parent = m.scope_via_parent(u.owner_id, child, parent, action).filter();
                    for &o in &owners {
                        for &p in &parents {
                            let d = m.decide_child(Some(u.owner_id), child, parent, action, o, p);
                            let admitted = own.admits(&Owned(Some(o))) || via_parent.admits(&Owned(p));
                            prop_assert_eq!(admitted, d.allowed, "{} {} {} under {} owner {} parent {:?}: {}", u.name, action, child, parent, o, p, d.reason);
                        }
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Restriction rules: the owner scope AND the restriction filter a policy applies admit a
    /// record exactly when the decision, refined by the record's columns, allows it; and that
    /// refinement is what the rules say, read from the catalog (OR of the applying rules'
    /// values, NULL never; administrators exempt, View All and Edit All not).
    #[test]
    fn restrictions_agree_with_decisions(catalog in catalog()) {
        let roles = catalog.roles.clone();
        let m = Model::compile(catalog).unwrap();
        let shared = Model::from_bytes(&m.to_bytes()).unwrap();
        let owners: Vec<i64> = m.users().map(|u| u.owner_id).take(12).chain([1000, 99_999]).collect();
        let record_modules: Vec<String> = m.catalog().modules.iter().filter(|m| m.holds.is_none()).map(|m| m.name.clone()).collect();
        let regions = [None, Some("EU"), Some("US"), Some("APAC"), Some("eu")];
        let tiers = [None, Some("1"), Some("10"), Some("01")];
        for u in m.users() {
            for module in record_modules.iter().map(String::as_str) {
                let restriction = m.restriction_filter(u.owner_id, module);
                prop_assert_eq!(&restriction, &shared.restriction_filter(u.owner_id, module));
                let applying: Vec<&RestrictionRule> = if u.is_active && !u.is_admin {
                    m.catalog().restriction_rules.iter().filter(|r| r.module == module && rule_applies(&m, &roles, r, &u.to_user())).collect()
                } else {
                    vec![]
                };
                for action in [Action::Read, Action::Edit, Action::Delete] {
                    let scope = Filter::and([m.scope(u.owner_id, module, action).filter(), restriction.clone()]);
                    for &o in &owners {
                        for region in regions {
                            for tier in tiers {
                                let row = Record { owner: o, region, tier };
                                let d = m.decide(Some(u.owner_id), module, action, o);
                                let within = applying.is_empty()
                                    || applying.iter().any(|r| {
                                        let v = if r.column == "region" { region } else { tier };
                                        v.is_some_and(|v| r.allowed.iter().any(|a| a == v))
                                    });
                                let refined = m.restrict(Some(u.owner_id), module, d.clone(), &row);
                                prop_assert_eq!(refined.allowed, d.allowed && within, "{} {} {} {:?} {:?}: {}", u.name, module, action, region, tier, refined.reason);
                                prop_assert_eq!(scope.admits(&row), refined.allowed, "filter: {} {} {} owner {} {:?} {:?}", u.name, module, action, o, region, tier);
                            }
                        }
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Record shares (DESIGN §9): whose shares reach a user, computed top-down (the receivers
    /// a policy's lookup names), is exactly the set of receivers that reach the user computed
    /// bottom-up; and a record's decision with its shares allows exactly what the owner scope
    /// allows plus what a share that counts at the moment reaches, where the module privilege
    /// lets the user act at all.
    #[test]
    fn shares_reach_exactly_their_receivers_and_those_above(catalog in catalog(), seed in any::<u64>()) {
        let n_roles = catalog.roles.len() as i64;
        let m = Model::compile(catalog).unwrap();
        let mut rnd = seed;
        let mut next = |n: usize| {
            rnd = rnd.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((rnd >> 33) as usize) % n.max(1)
        };
        let receivers: Vec<Party> = m.users().map(|u| Party::User(u.owner_id))
            .chain((1000..1006).map(Party::Group))
            .chain((1..=n_roles).flat_map(|r| [Party::Role(r), Party::RoleAndSubordinates(r)]))
            .collect();
        for u in m.users() {
            let parties = m.share_parties(u.owner_id);
            for &r in &receivers {
                prop_assert_eq!(parties.contains(r), m.receives_share(u.owner_id, r), "{} receives {:?}", u.name, r);
            }
        }
        let at = 1_000_000;
        let shares: Vec<RecordShare> = (0..1 + next(4))
            .map(|i| RecordShare {
                id: i as i64,
                receiver: receivers[next(receivers.len())],
                access: if next(2) == 0 { RuleAccess::Read } else { RuleAccess::ReadWrite },
                until: match next(3) { 0 => None, 1 => Some(at - 1 + next(3) as i64), _ => Some(at + 10) },
                shared_by: 100,
            })
            .collect();
        let owners: Vec<i64> = m.users().map(|u| u.owner_id).take(8).chain([1000, 99_999]).collect();
        let record_modules: Vec<String> = m.catalog().modules.iter().filter(|m| m.holds.is_none()).map(|m| m.name.clone()).collect();
        for u in m.users() {
            let parties = m.share_parties(u.owner_id);
            for module in record_modules.iter().map(String::as_str) {
                for action in [Action::Read, Action::Edit, Action::Delete] {
                    let scope = m.scope(u.owner_id, module, action);
                    // The gate is open when the user may act on a record of their own.
                    let gate_open = m.decide(Some(u.owner_id), module, action, u.owner_id).allowed;
                    let shared = gate_open && shares.iter().any(|s| s.grants(action, at) && parties.contains(s.receiver));
                    for &o in &owners {
                        let d = m.decide_with_shares(Some(u.owner_id), module, action, o, &shares, at);
                        prop_assert_eq!(d.allowed, scope.contains(o) || shared, "{} {} {} owner {}: {}", u.name, module, action, o, d.reason);
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]
    /// Permission sets that expire (DESIGN §9): a model compiled at a moment decides exactly as
    /// one compiled from the catalog without the assignments that ended by then, and knows the
    /// next moment one ends.
    #[test]
    fn a_model_at_a_moment_leaves_out_what_ended_by_then(catalog in catalog(), seed in any::<u64>()) {
        let mut rnd = seed;
        let mut next = |n: usize| {
            rnd = rnd.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((rnd >> 33) as usize) % n.max(1)
        };
        let at = 1_000;
        let mut catalog = catalog;
        for a in &mut catalog.permission_set_assignments {
            a.2 = [None, Some(at - 5), Some(at), Some(at + 1), Some(at + 50)][next(5)];
        }
        let expected_until = catalog.permission_set_assignments.iter().filter_map(|a| a.2).filter(|&u| u > at).min();
        let first_end = catalog.permission_set_assignments.iter().filter_map(|a| a.2).min();
        let mut without = catalog.clone();
        // Their ends kept: reasons name them ("permission set X until ...").
        without.permission_set_assignments.retain(|a| a.2.is_none_or(|u| u > at));
        let m = Model::compile_at(catalog.clone(), at).unwrap();
        let plain = Model::compile(without).unwrap();
        prop_assert_eq!(m.valid_until(), expected_until);
        let everything = Model::compile(catalog).unwrap();
        let owners: Vec<i64> = plain.users().map(|u| u.owner_id).take(10).collect();
        for u in plain.users() {
            prop_assert_eq!(m.access_review(u.owner_id).iter().map(|r| (r.reach, r.owners)).collect::<Vec<_>>(),
                            plain.access_review(u.owner_id).iter().map(|r| (r.reach, r.owners)).collect::<Vec<_>>());
            for module in ["Leads", "Messages"] {
                for action in Action::ALL {
                    prop_assert_eq!(m.scope(u.owner_id, module, action), plain.scope(u.owner_id, module, action));
                    for &o in &owners {
                        prop_assert_eq!(m.decide(Some(u.owner_id), module, action, o), plain.decide(Some(u.owner_id), module, action, o));
                    }
                }
            }
        }
        // Compiled for no moment (the beginning of time), every assignment counts until the first ends.
        prop_assert_eq!(everything.valid_until(), first_end);
        prop_assert_eq!(everything.catalog().permission_set_assignments.len(), plain.catalog().permission_set_assignments.len() + everything.catalog().permission_set_assignments.iter().filter(|a| a.2.is_some_and(|u| u <= at)).count());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Incremental changes (issue 28, item 2): new sharing defaults patched into a compiled
    /// model (and into one read back from its bytes, as the extension patches the published
    /// one) leave exactly the bytes a compile of the changed catalog makes.
    #[test]
    fn patched_sharing_defaults_equal_a_fresh_compile(catalog in catalog(), seed in any::<u64>()) {
        let mut rnd = seed;
        let mut next = |n: usize| {
            rnd = rnd.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((rnd >> 33) as usize) % n.max(1)
        };
        // Some modules get a level, the others none (private); a level for a module that does
        // not exist is ignored, as the catalog's load ignores it.
        let mut levels: BTreeMap<String, SharingLevel> = BTreeMap::new();
        for m in &catalog.modules {
            if next(4) > 0 {
                levels.insert(m.name.clone(), SharingLevel::ALL[next(4)]);
            }
        }
        levels.insert("NoSuchModule".to_string(), SharingLevel::PublicReadWriteDelete);
        let mut changed = catalog.clone();
        for m in &mut changed.modules {
            m.sharing_default = levels.get(&m.name).copied().unwrap_or(SharingLevel::Private);
        }
        let fresh = Model::compile_at(changed, 1_000).unwrap().to_bytes();
        let mut patched = Model::compile_at(catalog, 1_000).unwrap();
        let mut read_back = Model::from_bytes(&patched.to_bytes()).unwrap();
        patched.patch_sharing_defaults(&levels);
        read_back.patch_sharing_defaults(&levels);
        prop_assert!(patched.to_bytes() == fresh, "patched in memory differs from a fresh compile");
        prop_assert!(read_back.to_bytes() == fresh, "patched from bytes differs from a fresh compile");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Incremental changes (issue 28, item 2): the sharing rules replaced (some dropped, some
    /// added with any roles and groups, and some of them unknown, some changed in place, the
    /// order shuffled, as a load reads the table) and patched into a compiled model leave
    /// exactly the bytes a compile of the changed catalog makes.
    #[test]
    fn patched_sharing_rules_equal_a_fresh_compile(catalog in catalog(), seed in any::<u64>()) {
        let mut rnd = seed;
        let mut next = |n: usize| {
            rnd = rnd.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((rnd >> 33) as usize) % n.max(1)
        };
        let n_roles = catalog.roles.len();
        let n_groups = catalog.groups.len();
        let modules: Vec<String> = catalog.modules.iter().filter(|m| m.controlled_by.is_none()).map(|m| m.name.clone()).collect();
        let mut rules: Vec<SharingRule> = catalog.sharing_rules.iter().filter(|_| next(3) > 0).cloned().collect();
        for r in &mut rules {
            if next(3) == 0 {
                r.access = if r.access == RuleAccess::Read { RuleAccess::ReadWrite } else { RuleAccess::Read };
                r.related_modules = catalog.module_relations.iter().filter(|(p, _)| *p == r.module).map(|(_, c)| c.clone()).take(next(3)).collect();
            }
        }
        let party = |next: &mut dyn FnMut(usize) -> usize| match next(5) {
            0 => Party::Role(next(n_roles + 2) as i64 + 1),
            1 => Party::RoleAndSubordinates(next(n_roles + 2) as i64 + 1),
            2 => Party::Group(1000 + next(n_groups + 2) as i64),
            // A source and target some rule already has, with its sets reused.
            _ => catalog.sharing_rules.get(next(catalog.sharing_rules.len().max(1))).map_or(Party::Role(1), |r| if next(2) == 0 { r.source } else { r.target }),
        };
        for i in 0..next(5) {
            rules.push(SharingRule {
                id: 100 + i as i64,
                module: modules[next(modules.len())].clone(),
                source: party(&mut next),
                target: party(&mut next),
                access: RuleAccess::Read,
                related_modules: vec!["NotRelated".to_string()],
            });
        }
        for i in (1..rules.len()).rev() {
            rules.swap(i, next(i + 1));
        }
        let mut changed = catalog.clone();
        changed.sharing_rules = rules.clone();
        let fresh = Model::compile_at(changed, 1_000).unwrap().to_bytes();
        let mut patched = Model::compile_at(catalog, 1_000).unwrap();
        let mut read_back = Model::from_bytes(&patched.to_bytes()).unwrap();
        patched.patch_sharing_rules(rules.clone());
        read_back.patch_sharing_rules(rules);
        prop_assert!(patched.to_bytes() == fresh, "patched in memory differs from a fresh compile");
        prop_assert!(read_back.to_bytes() == fresh, "patched from bytes differs from a fresh compile");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]
    /// A model's bytes depend on the catalog alone, not on the order its rows were read in (a
    /// table's physical order, a join's plan): what lets a patched model equal a compile's bytes
    /// (red team of issue 28, item 2).
    #[test]
    fn a_models_bytes_do_not_depend_on_the_order_rows_are_read_in(catalog in catalog(), seed in any::<u64>()) {
        let mut rnd = seed;
        let mut next = |n: usize| {
            rnd = rnd.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((rnd >> 33) as usize) % n.max(1)
        };
        fn shuffle<T>(v: &mut [T], next: &mut dyn FnMut(usize) -> usize) {
            for i in (1..v.len()).rev() {
                v.swap(i, next(i + 1));
            }
        }
        let mut shuffled = catalog.clone();
        shuffle(&mut shuffled.roles, &mut next);
        shuffle(&mut shuffled.profiles, &mut next);
        for p in &mut shuffled.profiles {
            for actions in p.grants.values_mut() {
                shuffle(actions, &mut next);
            }
        }
        shuffle(&mut shuffled.role_profiles, &mut next);
        shuffle(&mut shuffled.users, &mut next);
        shuffle(&mut shuffled.modules, &mut next);
        shuffle(&mut shuffled.module_relations, &mut next);
        shuffle(&mut shuffled.groups, &mut next);
        shuffle(&mut shuffled.group_members, &mut next);
        shuffle(&mut shuffled.sharing_rules, &mut next);
        shuffle(&mut shuffled.permission_sets, &mut next);
        shuffle(&mut shuffled.permission_set_assignments, &mut next);
        shuffle(&mut shuffled.restriction_rules, &mut next);
        let a = Model::compile_at(catalog, 1_000).unwrap().to_bytes();
        let b = Model::compile_at(shuffled, 1_000).unwrap().to_bytes();
        prop_assert!(a == b, "the same catalog read in another order compiled to other bytes");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Incremental changes (issue 28, item 2): group memberships replaced (some removed, some
    /// added: users, roles, roles with their subordinates, groups in groups, and some naming
    /// what does not exist) and patched into a compiled model leave exactly the bytes a
    /// compile of the changed catalog makes.
    #[test]
    fn patched_group_members_equal_a_fresh_compile(catalog in catalog(), seed in any::<u64>()) {
        let mut rnd = seed;
        let mut next = |n: usize| {
            rnd = rnd.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((rnd >> 33) as usize) % n.max(1)
        };
        let n_roles = catalog.roles.len();
        let n_users = catalog.users.len();
        let n_groups = catalog.groups.len();
        let mut members: Vec<GroupMember> = catalog.group_members.iter().filter(|_| next(3) > 0).cloned().collect();
        for _ in 0..next(8) {
            let group = 1000 + next(n_groups + 1) as i64;
            let member = match next(4) {
                0 => Party::User(100 + next(n_users + 2) as i64),
                1 => Party::Role(next(n_roles + 1) as i64 + 1),
                2 => Party::RoleAndSubordinates(next(n_roles + 1) as i64 + 1),
                _ => Party::Group(1000 + next(n_groups + 1) as i64),
            };
            members.push(GroupMember { group, member });
        }
        members.dedup();
        for i in (1..members.len()).rev() {
            members.swap(i, next(i + 1));
        }
        let mut changed = catalog.clone();
        changed.group_members = members.clone();
        let fresh = Model::compile_at(changed, 1_000).unwrap().to_bytes();
        // Only the changed groups' memberships read (the extension's commit knows those groups
        // from the audit trigger's rows): groups that gained or lost a member, and some
        // unchanged ones besides (a rolled-back subtransaction's groups stay in the list).
        let of = |ms: &[GroupMember], g: i64| -> Vec<Party> {
            let mut v: Vec<Party> = ms.iter().filter(|m| m.group == g).map(|m| m.member).collect();
            v.sort();
            v.dedup();
            v
        };
        let all_groups: std::collections::BTreeSet<i64> = catalog.group_members.iter().chain(&members).map(|m| m.group).collect();
        let groups: Vec<i64> = all_groups.into_iter().filter(|&g| of(&catalog.group_members, g) != of(&members, g) || next(5) == 0).collect();
        let mut rows: Vec<GroupMember> = members.iter().filter(|m| groups.contains(&m.group)).cloned().collect();
        rows.dedup();
        let mut patched = Model::compile_at(catalog, 1_000).unwrap();
        let mut read_back = Model::from_bytes(&patched.to_bytes()).unwrap();
        let mut by_keys = Model::from_bytes(&patched.to_bytes()).unwrap();
        patched.patch_group_members(members.clone());
        read_back.patch_group_members(members);
        by_keys.patch_changed_members(&groups, rows);
        prop_assert!(patched.to_bytes() == fresh, "patched in memory differs from a fresh compile");
        prop_assert!(read_back.to_bytes() == fresh, "patched from bytes differs from a fresh compile");
        prop_assert!(by_keys.to_bytes() == fresh, "the changed groups patched differ from a fresh compile");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Memberships and rules changed in one commit, patched in that order (as the extension
    /// does): a new rule naming a group reaches the group's new members.
    #[test]
    fn patched_members_then_rules_equal_a_fresh_compile(catalog in catalog(), seed in any::<u64>()) {
        let mut rnd = seed;
        let mut next = |n: usize| {
            rnd = rnd.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((rnd >> 33) as usize) % n.max(1)
        };
        let n_roles = catalog.roles.len();
        let n_groups = catalog.groups.len();
        let mut members: Vec<GroupMember> = catalog.group_members.iter().filter(|_| next(3) > 0).cloned().collect();
        for _ in 0..next(6) {
            members.push(GroupMember { group: 1000 + next(n_groups + 1) as i64, member: Party::Role(next(n_roles) as i64 + 1) });
        }
        let mut rules: Vec<SharingRule> = catalog.sharing_rules.iter().filter(|_| next(3) > 0).cloned().collect();
        let module = catalog.modules.iter().find(|m| m.controlled_by.is_none()).unwrap().name.clone();
        for i in 0..next(4) {
            rules.push(SharingRule {
                id: 200 + i as i64,
                module: module.clone(),
                source: Party::Group(1000 + next(n_groups + 1) as i64),
                target: if next(2) == 0 { Party::Group(1000 + next(n_groups + 1) as i64) } else { Party::Role(next(n_roles) as i64 + 1) },
                access: RuleAccess::ReadWrite,
                related_modules: vec![],
            });
        }
        let mut changed = catalog.clone();
        changed.group_members = members.clone();
        changed.sharing_rules = rules.clone();
        let fresh = Model::compile_at(changed, 1_000).unwrap().to_bytes();
        let mut patched = Model::from_bytes(&Model::compile_at(catalog, 1_000).unwrap().to_bytes()).unwrap();
        patched.patch_group_members(members);
        patched.patch_sharing_rules(rules);
        prop_assert!(patched.to_bytes() == fresh, "patched differs from a fresh compile");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Users moved to other roles, made administrators or not, disabled or enabled, added and
    /// removed (in the order a load reads them), patched into a compiled model (and into one
    /// read back from its bytes) leave exactly the bytes a compile of the changed catalog makes;
    /// a user of a role that does not exist is refused as a compile refuses it, and leaves
    /// the model unchanged.
    #[test]
    fn patched_users_equal_a_fresh_compile(catalog in catalog(), seed in any::<u64>()) {
        let mut rnd = seed;
        let mut next = |n: usize| {
            rnd = rnd.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((rnd >> 33) as usize) % n.max(1)
        };
        let n_roles = catalog.roles.len();
        // One case in three changes only flags (what a compile derives nothing from), one
        // moves users between roles (only what hangs on those roles is computed again).
        let mode = next(3);
        let (flags_only, moves_only) = (mode == 0, mode == 1);
        let mut users: Vec<User> = catalog.users.iter().filter(|_| flags_only || moves_only || next(8) > 0).cloned().collect();
        for u in users.iter_mut() {
            match if flags_only { 1 + next(3) } else { next(6) } {
                0 => u.role = next(n_roles) as i64 + 1,
                1 => u.is_admin = !u.is_admin,
                2 => u.is_active = !u.is_active,
                _ => {}
            }
        }
        for i in 0..if flags_only || moves_only { 0 } else { next(3) } {
            users.push(User { owner_id: 500 + i as i64, name: format!("new{i}").into(), role: next(n_roles) as i64 + 1, is_admin: false, is_active: true });
        }
        for i in (1..users.len()).rev() {
            users.swap(i, next(i + 1));
        }
        let mut changed = catalog.clone();
        changed.users = users.clone();
        let fresh = Model::compile_at(changed, 1_000).unwrap().to_bytes();
        let before = Model::compile_at(catalog, 1_000).unwrap();
        let mut patched = before.clone();
        let mut read_back = Model::from_bytes(&before.to_bytes()).unwrap();
        patched.patch_users(users.clone()).unwrap();
        read_back.patch_users(users.clone()).unwrap();
        prop_assert!(patched.to_bytes() == fresh, "patched in memory differs from a fresh compile");
        prop_assert!(read_back.to_bytes() == fresh, "patched from bytes differs from a fresh compile");

        // Only the changed users read (the extension's commit knows their ids from the audit
        // trigger's rows): ids changed, added or deleted, and some unchanged ones besides (a
        // rolled-back subtransaction's ids stay in the list).
        let mut ids: Vec<i64> = before.users().filter(|m| users.iter().find(|u| u.owner_id == m.owner_id) != Some(&m.to_user())).map(|m| m.owner_id).collect();
        ids.extend(users.iter().filter(|u| before.user(u.owner_id).map(|m| m.to_user()).as_ref() != Some(*u)).map(|u| u.owner_id));
        ids.extend(before.users().filter(|_| next(10) == 0).map(|m| m.owner_id));
        let rows: Vec<User> = users.iter().filter(|u| ids.contains(&u.owner_id)).cloned().collect();
        let mut by_keys = Model::from_bytes(&before.to_bytes()).unwrap();
        by_keys.patch_changed_users(&ids, rows).unwrap();
        prop_assert!(by_keys.to_bytes() == fresh, "the changed users patched differ from a fresh compile");
        // A changed user (held, same name) of a role that does not exist: refused as a
        // compile refuses it, the model unchanged (the in-place path checks before it sets).
        if let Some(m) = before.users().last() {
            let mut lost = m.to_user();
            lost.role = n_roles as i64 + 7;
            let moved = before.users().next().filter(|f| f.owner_id != lost.owner_id).map(|f| User { role: lost.role - 6, ..f.to_user() });
            let mut refused = Model::from_bytes(&before.to_bytes()).unwrap();
            prop_assert!(refused.patch_changed_users(&[lost.owner_id], moved.into_iter().chain([lost]).collect()).is_err());
            prop_assert!(refused.to_bytes() == before.to_bytes(), "a refused patch of the changed users changed the model");
        }

        let mut unknown = users;
        unknown.push(User { owner_id: 600, name: "lost".into(), role: n_roles as i64 + 7, is_admin: false, is_active: true });
        let mut refused = before.clone();
        prop_assert!(refused.patch_users(unknown).is_err());
        prop_assert!(refused.to_bytes() == before.to_bytes(), "a refused patch changed the model");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Users, memberships and rules changed in one commit, patched in that order (as the
    /// extension does): memberships and new rules look up the users as they are now.
    #[test]
    fn patched_users_members_and_rules_equal_a_fresh_compile(catalog in catalog(), seed in any::<u64>()) {
        let mut rnd = seed;
        let mut next = |n: usize| {
            rnd = rnd.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((rnd >> 33) as usize) % n.max(1)
        };
        let n_roles = catalog.roles.len();
        let n_groups = catalog.groups.len();
        let mut users = catalog.users.clone();
        for u in users.iter_mut() {
            if next(3) == 0 {
                u.role = next(n_roles) as i64 + 1;
            }
        }
        let mut members: Vec<GroupMember> = catalog.group_members.iter().filter(|_| next(3) > 0).cloned().collect();
        for _ in 0..next(6) {
            members.push(GroupMember { group: 1000 + next(n_groups + 1) as i64, member: Party::RoleAndSubordinates(next(n_roles) as i64 + 1) });
        }
        let mut rules: Vec<SharingRule> = catalog.sharing_rules.iter().filter(|_| next(3) > 0).cloned().collect();
        let module = catalog.modules.iter().find(|m| m.controlled_by.is_none()).unwrap().name.clone();
        for i in 0..next(4) {
            rules.push(SharingRule {
                id: 200 + i as i64,
                module: module.clone(),
                source: Party::RoleAndSubordinates(next(n_roles) as i64 + 1),
                target: if next(2) == 0 { Party::Group(1000 + next(n_groups + 1) as i64) } else { Party::Role(next(n_roles) as i64 + 1) },
                access: RuleAccess::Read,
                related_modules: vec![],
            });
        }
        let mut changed = catalog.clone();
        changed.users = users.clone();
        changed.group_members = members.clone();
        changed.sharing_rules = rules.clone();
        let fresh = Model::compile_at(changed, 1_000).unwrap().to_bytes();
        let mut patched = Model::from_bytes(&Model::compile_at(catalog, 1_000).unwrap().to_bytes()).unwrap();
        patched.patch_users(users).unwrap();
        patched.patch_group_members(members);
        patched.patch_sharing_rules(rules);
        prop_assert!(patched.to_bytes() == fresh, "patched differs from a fresh compile");
    }
}
