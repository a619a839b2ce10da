//! Deterministic resolution rules: which identifier kinds may link records on their own,
//! how many of each a customer may hold, and in which priority order conflicts are settled.
//!
//! [`plan`] is pure: given a record's keys and name, the customers that hold those keys and
//! the pairs that must never merge automatically, it says whether to create, attach or
//! merge, which of the record's keys stay active or are set aside (and why), and which
//! pairs go to the review queue. The store applies the plan.
//!
//! How the rules keep traps apart (households, namesakes):
//! - names are evidence, never identifiers, so namesakes (same name, no shared key) never link;
//! - a kind with [`Trust::MergeUnlessNamesDiffer`] (email and phone by default) links only
//!   when the names do not *clearly* differ: a shared family phone used by "Maria" and
//!   "José" Garcia becomes a review suggestion and the phone is set aside on the record;
//! - a merge that would give a customer more identifiers of a kind than its limit
//!   (two Shopify ids, six emails) is not made: the lowest-priority identifier that links
//!   the conflicting customers is set aside and the pair is queued for review.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use super::normalize::PersonName;
use super::{IdentityKey, IdentityKind};
use crate::ids::CustomerId;

/// What a shared identifier of a kind may do on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    /// Links records, and merges customers, on its own (platform ids, verified emails).
    Merge,
    /// Like `Merge`, but only suggests when both sides have names that clearly differ
    /// (shared family phones and emails).
    MergeUnlessNamesDiffer,
    /// Attaches a record to the one customer holding it, never merges two customers.
    AttachOnly,
    /// Never links; a shared value only creates a review suggestion.
    SuggestOnly,
}

/// The rule for one identifier kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindRule {
    pub kind: IdentityKind,
    /// Most active identifiers of this kind per customer (per namespace for external and
    /// device ids).
    pub max_per_customer: usize,
    pub trust: Trust,
}

/// The rules, in priority order (first = highest priority, kept when a conflict forces a
/// choice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    pub kinds: Vec<KindRule>,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            kinds: vec![
                KindRule { kind: IdentityKind::ExternalId, max_per_customer: 1, trust: Trust::Merge },
                KindRule { kind: IdentityKind::Email, max_per_customer: 5, trust: Trust::MergeUnlessNamesDiffer },
                KindRule { kind: IdentityKind::Phone, max_per_customer: 5, trust: Trust::MergeUnlessNamesDiffer },
                KindRule { kind: IdentityKind::Device, max_per_customer: 50, trust: Trust::AttachOnly },
            ],
        }
    }
}

impl Rules {
    /// Check that each kind appears once and limits are at least 1.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        for r in &self.kinds {
            if !seen.insert(r.kind) {
                return Err(format!("kind `{}` appears twice", r.kind.as_str()));
            }
            if r.max_per_customer == 0 {
                return Err(format!("max_per_customer of `{}` must be at least 1", r.kind.as_str()));
            }
        }
        Ok(())
    }

    fn rule(&self, kind: IdentityKind) -> KindRule {
        self.kinds.iter().find(|r| r.kind == kind).cloned().unwrap_or(KindRule {
            kind,
            max_per_customer: usize::MAX,
            trust: Trust::SuggestOnly,
        })
    }

    /// Lower is more important.
    pub fn priority(&self, kind: IdentityKind) -> usize {
        self.kinds.iter().position(|r| r.kind == kind).unwrap_or(self.kinds.len())
    }
}

/// One identity row of a customer, as far as the rules care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldKey {
    pub key: IdentityKey,
    pub active: bool,
}

/// A customer that holds (active or set aside) one of the record's keys.
#[derive(Debug, Clone)]
pub struct CustomerView {
    pub id: CustomerId,
    /// The golden record's name.
    pub name: Option<PersonName>,
    /// Every identity the customer holds.
    pub identities: Vec<HeldKey>,
}

/// What happens to one of the record's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    SetAside(String),
}

/// Where the record goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Create,
    Attach(CustomerId),
    /// The survivor is the oldest id (UUIDv7 is time-ordered).
    Merge {
        survivor: CustomerId,
        absorbed: Vec<CustomerId>,
    },
}

/// Why two customers are linked or suggested: the shared key and the rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub kind: IdentityKind,
    pub namespace: String,
    pub value: String,
    pub customer: String,
    pub rule: String,
}

/// A pair for the review queue: the record's customer (known once created) and `other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub other: CustomerId,
    pub rule: String,
    pub evidence: Vec<Evidence>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub target: Target,
    /// One per record key, in the order given.
    pub keys: Vec<(IdentityKey, KeyStatus)>,
    /// The links that justified attach or merge.
    pub evidence: Vec<Evidence>,
    pub suggestions: Vec<Suggestion>,
}

/// Pairs that must not merge automatically (undone merges, rejected candidates).
pub type Blocked = HashSet<(CustomerId, CustomerId)>;

pub fn blocked_pair(a: CustomerId, b: CustomerId) -> (CustomerId, CustomerId) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// First-name tokens of a name: the given name's tokens, else every token.
fn first_tokens(n: &PersonName) -> Vec<&str> {
    match n.given_key() {
        Some(g) if !g.is_empty() => g.split(' ').filter(|t| !t.is_empty()).collect(),
        _ => n.pinyin_key().split(' ').filter(|t| !t.is_empty()).collect(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Optimal string alignment (adjacent transpositions count once: "Rnady" ~ "Randy").
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

/// Common English short forms whose spelling differs from the full name
/// (`(short, start of the full name)`).
const NICKNAMES: &[(&str, &str)] = &[
    ("bill", "will"),
    ("billy", "will"),
    ("bob", "rob"),
    ("bobby", "rob"),
    ("dick", "rich"),
    ("peggy", "marg"),
    ("maggie", "marg"),
    ("jack", "john"),
    ("ted", "ed"),
    ("ned", "ed"),
    ("betty", "eliz"),
    ("liz", "eliz"),
    ("beth", "eliz"),
    ("jim", "jam"),
    ("jimmy", "jam"),
    ("chuck", "charl"),
    ("hank", "henr"),
    ("sally", "sar"),
    ("polly", "mar"),
    ("tony", "anton"),
    ("sandy", "alex"),
    ("kate", "cath"),
    ("katie", "cath"),
];

fn tokens_close(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let (la, lb) = (a.chars().count(), b.chars().count());
    // An initial ("J.") or a shortened form ("Chris" / "Christopher").
    if (la == 1 || lb == 1) && a.chars().next() == b.chars().next() {
        return true;
    }
    if la.min(lb) >= 3 && (a.starts_with(b) || b.starts_with(a)) {
        return true;
    }
    // A short form sharing the first three letters ("Gabe" / "Gabriel", "Kate" / "Katherine").
    if la.min(lb) <= 4 && la.min(lb) >= 3 && a.chars().take(3).eq(b.chars().take(3)) {
        return true;
    }
    if NICKNAMES.iter().any(|(x, y)| (a == *x && b.starts_with(y)) || (b == *x && a.starts_with(y))) {
        return true;
    }
    let allowed = match la.max(lb) {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    };
    edit_distance(a, b) <= allowed
}

/// True when both names are known and their first names share no close token: the
/// signal that a shared phone or email belongs to a household, not to one person.
/// Typos (one or two edits), initials, prefixes and hanzi/pinyin forms do not differ, and
/// a given name is not compared with a family name alone ("Randy" and "Davis" may well be
/// one person).
pub fn names_clearly_differ(a: Option<&PersonName>, b: Option<&PersonName>) -> bool {
    let (Some(a), Some(b)) = (a, b) else { return false };
    if a.tokens_key() == b.tokens_key() {
        return false;
    }
    let has = |k: Option<&str>| k.is_some_and(|k| !k.trim().is_empty());
    let family_only = |n: &PersonName| !has(n.given_key()) && has(n.family_key());
    if (has(a.given_key()) && family_only(b)) || (has(b.given_key()) && family_only(a)) {
        // Only the family names can be compared.
        let (Some(fa), Some(fb)) = (a.family_key(), b.family_key()) else { return false };
        let (ta, tb): (Vec<&str>, Vec<&str>) =
            (fa.split(' ').filter(|t| !t.is_empty()).collect(), fb.split(' ').filter(|t| !t.is_empty()).collect());
        return !ta.is_empty() && !tb.is_empty() && !ta.iter().any(|x| tb.iter().any(|y| tokens_close(x, y)));
    }
    let (ta, tb) = (first_tokens(a), first_tokens(b));
    if ta.is_empty() || tb.is_empty() {
        return false;
    }
    !ta.iter().any(|x| tb.iter().any(|y| tokens_close(x, y)))
}

/// Does a set of active keys respect the limits? Returns the first broken kind.
fn limit_broken<'a>(rules: &Rules, keys: impl Iterator<Item = &'a IdentityKey>) -> Option<IdentityKind> {
    // (kind, namespace, value), each once, sorted: a customer holds a handful of keys, so a
    // list is cheaper than a map of sets (this runs for every link the rules weigh).
    let mut held: Vec<(IdentityKind, &str, &str)> = keys
        .map(|k| (k.kind, if k.kind.is_namespaced() { k.namespace.as_str() } else { "" }, k.value.as_str()))
        .collect();
    held.sort_unstable();
    held.dedup();
    // The highest-priority kind over its limit; among equals, the first in (kind, namespace) order.
    let mut broken: Option<IdentityKind> = None;
    for same in held.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        let kind = same[0].0;
        if same.len() > rules.rule(kind).max_per_customer
            && broken.is_none_or(|b| rules.priority(kind) < rules.priority(b))
        {
            broken = Some(kind);
        }
    }
    broken
}

fn kind_label(kind: IdentityKind) -> &'static str {
    match kind {
        IdentityKind::Email => "emails",
        IdentityKind::Phone => "phones",
        IdentityKind::ExternalId => "external ids per namespace",
        IdentityKind::Device => "device ids per namespace",
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    Strong,
    Attach,
    Suggest(&'static str),
}

/// Decide where a record goes. `record_keys` are the record's normalised keys;
/// `customers` every live customer holding one of them (absorbed ids already followed);
/// `target` forces the record onto one customer (manual edits). Customers may be given
/// owned or borrowed.
pub fn plan<V: std::borrow::Borrow<CustomerView>>(
    rules: &Rules,
    record_keys: &[IdentityKey],
    record_name: Option<&PersonName>,
    customers: &[V],
    blocked: &Blocked,
    target: Option<CustomerId>,
) -> Plan {
    let customers: Vec<&CustomerView> = customers.iter().map(V::borrow).collect();
    let mut keys: Vec<&IdentityKey> = record_keys.iter().collect();
    keys.sort_by(|a, b| rules.priority(a.kind).cmp(&rules.priority(b.kind)).then_with(|| a.cmp(b)));
    keys.dedup();

    // Every (key, customer) link, in priority order: key priority, active holder first, id.
    let mut links: Vec<(usize, &IdentityKey, &CustomerView, bool, Link)> = Vec::new();
    for (ki, k) in keys.iter().copied().enumerate() {
        let rule = rules.rule(k.kind);
        let mut holders: Vec<(&CustomerView, bool)> = customers
            .iter()
            .filter_map(|&c| c.identities.iter().find(|h| &h.key == k).map(|h| (c, h.active)))
            .collect();
        holders.sort_by_key(|(c, active)| (!*active, c.id));
        for (c, active) in holders {
            let link = match rule.trust {
                Trust::Merge => Link::Strong,
                Trust::MergeUnlessNamesDiffer if names_clearly_differ(record_name, c.name.as_ref()) => {
                    Link::Suggest("shared_identifier_names_differ")
                }
                Trust::MergeUnlessNamesDiffer => Link::Strong,
                Trust::AttachOnly => Link::Attach,
                Trust::SuggestOnly => Link::Suggest("shared_identifier_suggest_only"),
            };
            links.push((ki, k, c, active, link));
        }
    }

    let mut group: Vec<&CustomerView> = Vec::new();
    if let Some(t) = target {
        if let Some(&c) = customers.iter().find(|c| c.id == t) {
            group.push(c);
        }
    }
    let mut set_aside: BTreeMap<usize, String> = BTreeMap::new();
    let mut linked_keys: BTreeSet<usize> = BTreeSet::new();
    let mut evidence = Vec::new();
    let mut suggestions: BTreeMap<CustomerId, Suggestion> = BTreeMap::new();
    let ev = |k: &IdentityKey, c: &CustomerView, rule: &str| Evidence {
        kind: k.kind,
        namespace: k.namespace.clone(),
        value: k.value.clone(),
        customer: c.id.to_string(),
        rule: rule.to_string(),
    };
    let mut suggest = |c: &CustomerView, k: &IdentityKey, rule: &'static str| {
        let s =
            suggestions.entry(c.id).or_insert_with(|| Suggestion { other: c.id, rule: rule.into(), evidence: vec![] });
        s.evidence.push(ev(k, c, rule));
    };

    // Active keys of the group so far, plus the record's keys not set aside.
    fn group_keys<'k>(
        keys: &[&'k IdentityKey],
        group: &[&'k CustomerView],
        set_aside: &BTreeMap<usize, String>,
        extra: Option<&'k CustomerView>,
        with_record: bool,
    ) -> Vec<&'k IdentityKey> {
        let mut all: Vec<&IdentityKey> = keys
            .iter()
            .enumerate()
            .filter(|(i, _)| with_record && !set_aside.contains_key(i))
            .map(|(_, k)| *k)
            .collect();
        for c in group.iter().copied().chain(extra) {
            all.extend(c.identities.iter().filter(|h| h.active).map(|h| &h.key));
        }
        all
    }

    for pass in [Link::Strong, Link::Attach] {
        for &(ki, k, c, _active, link) in &links {
            if link != pass || group.iter().any(|g| g.id == c.id) {
                if link == pass {
                    linked_keys.insert(ki);
                }
                continue;
            }
            if set_aside.contains_key(&ki) {
                continue;
            }
            if pass == Link::Attach && !group.is_empty() {
                // Attach-only kinds never bring a second customer in.
                suggest(c, k, "attach_only_identifier");
                continue;
            }
            let is_blocked = group.iter().any(|g| blocked.contains(&blocked_pair(g.id, c.id)));
            // The customers together must respect the limits. With the record's own keys,
            // a broken limit blocks the link only when the record's key outranks the
            // linking key (a second platform id beats a shared email); otherwise the
            // surplus record key is set aside below and the link stands.
            let broken = limit_broken(rules, group_keys(&keys, &group, &set_aside, Some(c), false).into_iter())
                .or_else(|| {
                    limit_broken(rules, group_keys(&keys, &group, &set_aside, Some(c), true).into_iter())
                        .filter(|kind| rules.priority(*kind) < rules.priority(k.kind))
                });
            let conflict = match (is_blocked, broken) {
                (true, _) => Some("blocked_pair".to_string()),
                (false, Some(kind)) => {
                    Some(format!("limit: at most {} {}", rules.rule(kind).max_per_customer, kind_label(kind)))
                }
                (false, None) => None,
            };
            match conflict {
                None => {
                    group.push(c);
                    linked_keys.insert(ki);
                    evidence.push(ev(
                        k,
                        c,
                        if pass == Link::Strong { "shared_identifier" } else { "attach_only_identifier" },
                    ));
                }
                Some(reason) => {
                    suggest(c, k, if is_blocked { "blocked_pair" } else { "identifier_conflict" });
                    if !linked_keys.contains(&ki) {
                        set_aside.insert(ki, format!("conflict with another customer ({reason})"));
                    }
                }
            }
        }
    }
    for &(_, k, c, _, link) in &links {
        if let Link::Suggest(rule) = link {
            if !group.iter().any(|g| g.id == c.id) {
                suggest(c, k, rule);
            }
        }
    }
    // Suggestions for customers that ended up in the group are moot.
    for g in &group {
        suggestions.remove(&g.id);
    }

    // Final status of each record key.
    let in_group = |id: CustomerId| group.iter().any(|g| g.id == id);
    let mut active_so_far: Vec<&IdentityKey> =
        group.iter().flat_map(|c| c.identities.iter().filter(|h| h.active).map(|h| &h.key)).collect();
    let mut statuses: Vec<(&IdentityKey, KeyStatus)> = Vec::with_capacity(keys.len());
    for (ki, k) in keys.iter().copied().enumerate() {
        if let Some(reason) = set_aside.get(&ki) {
            statuses.push((k, KeyStatus::SetAside(reason.clone())));
            continue;
        }
        let active_holder = customers.iter().find(|c| c.identities.iter().any(|h| &h.key == k && h.active));
        let status = match active_holder {
            Some(c) if in_group(c.id) => KeyStatus::Active,
            Some(_) => KeyStatus::SetAside("held by another customer".into()),
            None => match limit_broken(rules, active_so_far.iter().copied().chain(std::iter::once(k))) {
                Some(kind) if kind == k.kind => KeyStatus::SetAside(format!(
                    "limit: at most {} {}",
                    rules.rule(kind).max_per_customer,
                    kind_label(kind)
                )),
                _ => {
                    active_so_far.push(k);
                    KeyStatus::Active
                }
            },
        };
        statuses.push((k, status));
    }
    // Keep the caller's order.
    let keys_out = record_keys
        .iter()
        .filter_map(|k| statuses.iter().find(|(s, _)| *s == k).map(|(s, status)| ((*s).clone(), status.clone())))
        .fold(Vec::new(), |mut acc: Vec<(IdentityKey, KeyStatus)>, item| {
            if !acc.iter().any(|(k, _)| k == &item.0) {
                acc.push(item);
            }
            acc
        });

    let mut ids: Vec<CustomerId> = group.iter().map(|g| g.id).collect();
    ids.sort();
    ids.dedup();
    let target = match ids.as_slice() {
        [] => Target::Create,
        [one] => Target::Attach(*one),
        [first, rest @ ..] => Target::Merge { survivor: *first, absorbed: rest.to_vec() },
    };
    Plan { target, keys: keys_out, evidence, suggestions: suggestions.into_values().collect() }
}

/// Why two customers would or would not be merged: for `explainMatch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// `merge`, `suggest` or `no_match`.
    pub verdict: String,
    pub shared: Vec<Evidence>,
    pub conflicts: Vec<String>,
    pub names_differ: bool,
}

/// Explain how the rules treat two customers, from their identities and names.
pub fn explain(rules: &Rules, a: &CustomerView, b: &CustomerView, blocked: &Blocked) -> Explanation {
    let names_differ = names_clearly_differ(a.name.as_ref(), b.name.as_ref());
    let mut shared = Vec::new();
    let mut strong = false;
    for h in &a.identities {
        if !b.identities.iter().any(|o| o.key == h.key) {
            continue;
        }
        let rule = rules.rule(h.key.kind);
        let label = match rule.trust {
            Trust::Merge => {
                strong = true;
                "shared_identifier"
            }
            Trust::MergeUnlessNamesDiffer if names_differ => "shared_identifier_names_differ",
            Trust::MergeUnlessNamesDiffer => {
                strong = true;
                "shared_identifier"
            }
            Trust::AttachOnly => "attach_only_identifier",
            Trust::SuggestOnly => "shared_identifier_suggest_only",
        };
        shared.push(Evidence {
            kind: h.key.kind,
            namespace: h.key.namespace.clone(),
            value: h.key.value.clone(),
            customer: b.id.to_string(),
            rule: label.into(),
        });
    }
    let mut conflicts = Vec::new();
    let both = a.identities.iter().chain(&b.identities).filter(|h| h.active).map(|h| &h.key);
    if let Some(kind) = limit_broken(rules, both) {
        conflicts.push(format!("limit: at most {} {}", rules.rule(kind).max_per_customer, kind_label(kind)));
    }
    if blocked.contains(&blocked_pair(a.id, b.id)) {
        conflicts.push("blocked: a merge of these customers was undone or rejected".into());
    }
    let verdict = if strong && conflicts.is_empty() {
        "merge"
    } else if !shared.is_empty() {
        "suggest"
    } else {
        "no_match"
    };
    Explanation { verdict: verdict.into(), shared, conflicts, names_differ }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::strategy::Strategy;

    fn k(kind: IdentityKind, ns: &str, v: &str) -> IdentityKey {
        IdentityKey { kind, namespace: ns.into(), value: v.into() }
    }
    fn email(v: &str) -> IdentityKey {
        k(IdentityKind::Email, "", v)
    }
    fn phone(v: &str) -> IdentityKey {
        k(IdentityKind::Phone, "", v)
    }
    fn ext(ns: &str, v: &str) -> IdentityKey {
        k(IdentityKind::ExternalId, ns, v)
    }
    fn name(g: &str, f: &str) -> PersonName {
        PersonName::parse(Some(g), Some(f), None).unwrap()
    }
    fn view(id: CustomerId, n: Option<PersonName>, keys: &[IdentityKey]) -> CustomerView {
        CustomerView {
            id,
            name: n,
            identities: keys.iter().map(|k| HeldKey { key: k.clone(), active: true }).collect(),
        }
    }

    #[test]
    fn names_differ_only_when_clear() {
        let randy = name("Randy", "Davis");
        assert!(!names_clearly_differ(Some(&randy), Some(&name("Rnady", "Davis"))), "transposition");
        assert!(!names_clearly_differ(Some(&randy), Some(&name("R", "Davis"))), "initial");
        assert!(!names_clearly_differ(Some(&name("Gabe", "")), Some(&name("Gabriel", "Lee"))), "short form");
        assert!(!names_clearly_differ(Some(&name("Bob", "Li")), Some(&name("Robert", "Li"))), "nickname");
        assert!(!names_clearly_differ(Some(&randy), None), "unknown");
        assert!(names_clearly_differ(Some(&randy), Some(&name("Sarah", "Davis"))), "household");
        assert!(!names_clearly_differ(Some(&name("Randy", "")), Some(&name("", "Davis"))), "given vs family only");
        assert!(!names_clearly_differ(Some(&name("", "Davis")), Some(&randy)), "family only vs full");
        assert!(names_clearly_differ(Some(&name("", "Davis")), Some(&name("", "Okafor"))), "two family names");
        assert!(names_clearly_differ(Some(&name("", "Okafor")), Some(&randy)), "family only, and it differs");
        let han = PersonName::parse(None, None, Some("张伟")).unwrap();
        assert!(!names_clearly_differ(Some(&han), Some(&name("Wei", "Zhang"))), "hanzi vs pinyin");
        assert!(names_clearly_differ(Some(&han), Some(&name("Xiuying", "Zhang"))));
    }

    #[test]
    fn household_phone_suggests_and_sets_aside() {
        let a = CustomerId::new();
        let customers = [view(a, Some(name("Maria", "Garcia")), &[phone("+1"), email("m@x")])];
        let p =
            plan(&Rules::default(), &[phone("+1")], Some(&name("Jose", "Garcia")), &customers, &Blocked::new(), None);
        assert_eq!(p.target, Target::Create);
        assert!(matches!(p.keys[0].1, KeyStatus::SetAside(_)));
        assert_eq!(p.suggestions.len(), 1);
        assert_eq!(p.suggestions[0].rule, "shared_identifier_names_differ");
        // The same name attaches.
        let p =
            plan(&Rules::default(), &[phone("+1")], Some(&name("Maria", "Garcia")), &customers, &Blocked::new(), None);
        assert_eq!(p.target, Target::Attach(a));
        assert_eq!(p.keys[0].1, KeyStatus::Active);
    }

    #[test]
    fn second_platform_id_blocks_merge_and_sets_aside_the_weaker_key() {
        let a = CustomerId::new();
        let customers = [view(a, None, &[ext("shop", "1"), email("e@x")])];
        let p = plan(&Rules::default(), &[ext("shop", "2"), email("e@x")], None, &customers, &Blocked::new(), None);
        assert_eq!(p.target, Target::Create);
        assert_eq!(p.keys.iter().find(|(k, _)| k.kind == IdentityKind::ExternalId).unwrap().1, KeyStatus::Active);
        assert!(matches!(
            p.keys.iter().find(|(k, _)| k.kind == IdentityKind::Email).unwrap().1,
            KeyStatus::SetAside(_)
        ));
        assert_eq!(p.suggestions[0].rule, "identifier_conflict");
    }

    #[test]
    fn merge_picks_oldest_and_respects_priority_on_conflict() {
        let a = CustomerId::new();
        let b = CustomerId::new();
        let c = CustomerId::new();
        let customers = [
            view(a, None, &[email("e@x")]),
            view(b, None, &[phone("+2"), ext("shop", "9")]),
            view(c, None, &[ext("shop", "7"), k(IdentityKind::Device, "app", "d")]),
        ];
        let rec = [email("e@x"), phone("+2"), k(IdentityKind::Device, "app", "d")];
        let p = plan(&Rules::default(), &rec, None, &customers, &Blocked::new(), None);
        assert_eq!(p.target, Target::Merge { survivor: a, absorbed: vec![b] });
        // The device is attach-only: it cannot bring c in, it is set aside and suggested.
        assert!(matches!(p.keys[2].1, KeyStatus::SetAside(_)));
        assert_eq!(p.suggestions.iter().map(|s| s.other).collect::<Vec<_>>(), vec![c]);
        // A blocked pair is not merged.
        let blocked: Blocked = [blocked_pair(a, b)].into_iter().collect();
        let p = plan(&Rules::default(), &rec[..2], None, &customers, &blocked, None);
        assert_eq!(p.target, Target::Attach(a));
    }

    #[test]
    fn limits_cap_emails() {
        let a = CustomerId::new();
        let emails: Vec<IdentityKey> = (0..5).map(|i| email(&format!("{i}@x"))).collect();
        let customers = [view(a, None, &emails)];
        let p = plan(&Rules::default(), &[email("0@x"), email("new@x")], None, &customers, &Blocked::new(), None);
        assert_eq!(p.target, Target::Attach(a));
        assert!(matches!(&p.keys[1].1, KeyStatus::SetAside(r) if r.contains("5 emails")));
    }

    /// An in-memory store applying plans exactly as `store::customers::ingest_in` does.
    #[derive(Default)]
    struct Sim {
        next: u128,
        customers: BTreeMap<CustomerId, (Vec<HeldKey>, Vec<usize>)>,
    }

    impl Sim {
        fn ingest(&mut self, idx: usize, keys: &[IdentityKey], names: &[PersonName]) {
            let views: Vec<CustomerView> = self
                .customers
                .iter()
                .filter(|(_, (ids, _))| ids.iter().any(|h| keys.contains(&h.key)))
                .map(|(id, (ids, recs))| CustomerView {
                    id: *id,
                    // Golden name: the latest record's (records occur in index order).
                    name: recs.iter().max().map(|r| names[*r].clone()),
                    identities: ids.clone(),
                })
                .collect();
            let p = plan(&Rules::default(), keys, Some(&names[idx]), &views, &Blocked::new(), None);
            let target = match p.target {
                Target::Create => {
                    self.next += 1;
                    let id = CustomerId(uuid::Uuid::from_u128(self.next));
                    self.customers.insert(id, (vec![], vec![]));
                    id
                }
                Target::Attach(id) => id,
                Target::Merge { survivor, absorbed } => {
                    for a in absorbed {
                        let (ids, recs) = self.customers.remove(&a).unwrap();
                        let s = self.customers.get_mut(&survivor).unwrap();
                        for h in ids {
                            match s.0.iter_mut().find(|x| x.key == h.key) {
                                Some(x) => x.active |= h.active,
                                None => s.0.push(h),
                            }
                        }
                        s.1.extend(recs);
                    }
                    survivor
                }
            };
            let c = self.customers.get_mut(&target).unwrap();
            for (k, st) in p.keys {
                let active = st == KeyStatus::Active;
                match c.0.iter_mut().find(|x| x.key == k) {
                    Some(x) => x.active |= active,
                    None => c.0.push(HeldKey { key: k, active }),
                }
            }
            c.1.push(idx);
            // No key may be active on two customers.
            let mut seen = BTreeSet::new();
            for (ids, _) in self.customers.values() {
                for h in ids.iter().filter(|h| h.active) {
                    assert!(seen.insert(h.key.clone()), "a key is active twice");
                }
            }
        }

        fn partition(&self) -> BTreeSet<BTreeSet<usize>> {
            self.customers.values().map(|(_, recs)| recs.iter().copied().collect()).collect()
        }
    }

    /// Six people with an email, a phone and a platform id each (person 5 is a namesake of
    /// person 0); each record carries a random non-empty subset; a household member shares
    /// person 0's phone.
    fn scenario() -> impl proptest::strategy::Strategy<Value = Vec<(Vec<IdentityKey>, PersonName)>> {
        use proptest::prelude::*;
        let person = |p: usize, mask: u8| {
            let mut keys = vec![];
            if mask & 1 != 0 {
                keys.push(email(&format!("p{p}@x")));
            }
            if mask & 2 != 0 {
                keys.push(phone(&format!("+1{p}")));
            }
            if mask & 4 != 0 {
                keys.push(ext("shop", &format!("{p}")));
            }
            (keys, name(["Ann", "Bea", "Cy", "Dot", "Eve"][p % 5], "Doe"))
        };
        proptest::collection::vec((0usize..6, 1u8..8), 1..16).prop_map(move |recs| {
            let mut out: Vec<(Vec<IdentityKey>, PersonName)> = recs.into_iter().map(|(p, m)| person(p, m)).collect();
            out.push((vec![phone("+10")], name("Zed", "Doe")));
            out.push((vec![phone("+10"), email("zed@x")], name("Zed", "Doe")));
            out
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(200))]
        #[test]
        fn the_partition_does_not_depend_on_arrival_order(
            (records, order) in scenario().prop_flat_map(|r| {
                let n = r.len();
                (proptest::strategy::Just(r), proptest::strategy::Just((0..n).collect::<Vec<_>>()).prop_shuffle())
            })
        ) {
            let names: Vec<PersonName> = records.iter().map(|(_, n)| n.clone()).collect();
            let mut in_order = Sim::default();
            for (i, (keys, _)) in records.iter().enumerate() {
                in_order.ingest(i, keys, &names);
            }
            let mut shuffled = Sim::default();
            for &i in &order {
                shuffled.ingest(i, &records[i].0, &names);
            }
            proptest::prop_assert_eq!(in_order.partition(), shuffled.partition());
            // The household member is never merged with person 0.
            let zed = records.len() - 1;
            let p0: Vec<usize> = (0..records.len()).filter(|i| records[*i].1.given() == Some("Ann")).collect();
            let namesakes = shuffled.partition().iter().any(|c| {
                c.iter().any(|r| records[*r].0.contains(&email("p0@x")) || records[*r].0.contains(&phone("+10")))
                    && c.iter().any(|r| records[*r].0.iter().any(|k| k.value.contains('5')))
            });
            proptest::prop_assert!(!namesakes, "namesakes merged");
            for p in p0 {
                let same = shuffled.partition().iter().any(|c| c.contains(&p) && c.contains(&zed));
                proptest::prop_assert!(!same, "household merged");
            }
        }
    }
}
