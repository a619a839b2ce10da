//! Deterministic resolution: which customer an observation belongs to.

use crate::ids::CustomerId;

use super::IdentityKey;

/// What to do with an observation, given the customers that already hold its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No key is known: a new customer.
    Create,
    /// Exactly one customer holds the keys that are known.
    Attach(CustomerId),
    /// Several customers hold the keys: they are one person. The survivor is the oldest
    /// (UUIDv7 ids are time-ordered), so the result does not depend on arrival order.
    Merge { survivor: CustomerId, absorbed: Vec<CustomerId> },
}

/// Decide from `(key, holder)` pairs for the keys already held by a customer.
pub fn decide(holders: &[(IdentityKey, CustomerId)]) -> Decision {
    let mut ids: Vec<CustomerId> = holders.iter().map(|(_, c)| *c).collect();
    ids.sort();
    ids.dedup();
    match ids.as_slice() {
        [] => Decision::Create,
        [one] => Decision::Attach(*one),
        [first, rest @ ..] => Decision::Merge { survivor: *first, absorbed: rest.to_vec() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKind;

    fn key(v: &str) -> IdentityKey {
        IdentityKey { kind: IdentityKind::Email, namespace: String::new(), value: v.into() }
    }

    #[test]
    fn none_one_and_several_holders() {
        assert_eq!(decide(&[]), Decision::Create);
        let a = CustomerId::new();
        let b = CustomerId::new();
        assert_eq!(decide(&[(key("x"), a), (key("y"), a)]), Decision::Attach(a));
        assert_eq!(decide(&[(key("y"), b), (key("x"), a)]), Decision::Merge { survivor: a, absorbed: vec![b] });
    }
}
