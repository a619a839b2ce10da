//! Statement shapes that repeat. Prepared statements are cached per connection by their
//! SQL text, and a multi-row statement's text grows with its row count; so rows are sent in
//! chunks whose sizes are powers of two or at most [`SMALL`] (a bounded set of statement
//! shapes), and `IN` lists are padded to a power of two with a repeated value (which
//! changes no result).

/// Largest power of two ≤ `n` (`n` ≥ 1).
fn floor_pow2(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.leading_zeros())
}

/// Rows per multi-row statement with `columns` parameters per row: a power of two, at most
/// 256 and well under SQLite's 32,766 and PostgreSQL's 65,535 parameters.
pub(crate) fn rows_per_statement(columns: usize) -> usize {
    floor_pow2((30_000 / columns.max(1)).clamp(1, 256))
}

/// A rest of at most this many rows goes in one statement of its exact size. The rows a
/// merge writes first are a handful per table, and in powers of two 7 rows took three
/// statements (4 + 2 + 1), each a round trip and a statement journal (~40 µs on SQLite,
/// ~160 µs on PostgreSQL).
const SMALL: usize = 8;

/// The sizes `n` items are sent in: `max` while at least `max` remain, then descending
/// powers of two, and a rest of at most [`SMALL`] at once.
fn sizes(mut n: usize, max: usize) -> impl Iterator<Item = usize> {
    let max = floor_pow2(max.max(1));
    std::iter::from_fn(move || {
        if n == 0 {
            return None;
        }
        let size = if n >= max {
            max
        } else if n <= SMALL {
            n
        } else {
            floor_pow2(n)
        };
        n -= size;
        Some(size)
    })
}

/// `items` in chunks of [`sizes`], owned.
pub(crate) fn chunks_of<T>(items: Vec<T>, max: usize) -> impl Iterator<Item = Vec<T>> {
    let mut rest = items.into_iter();
    let n = rest.len();
    sizes(n, max).map(move |size| rest.by_ref().take(size).collect())
}

/// `items` in chunks of [`sizes`], borrowed.
pub(crate) fn slices_of<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let mut start = 0;
    sizes(items.len(), max).map(move |size| {
        let chunk = &items[start..start + size];
        start += size;
        chunk
    })
}

/// `items` (not empty) for an `IN` list of `max` at most: chunks of `max`, the last padded
/// to the next power of two by repeating its last value.
pub(crate) fn padded_in<T: Clone>(items: &[T], max: usize) -> Vec<Vec<T>> {
    let max = floor_pow2(max.max(1));
    items
        .chunks(max)
        .map(|c| {
            let mut v = c.to_vec();
            let target = v.len().next_power_of_two().min(max);
            let last = c[c.len() - 1].clone();
            v.resize(target, last);
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_powers_of_two_or_a_small_rest_and_cover_every_item() {
        for n in 0..1_200 {
            let s: Vec<usize> = sizes(n, 256).collect();
            assert_eq!(s.iter().sum::<usize>(), n);
            assert!(s.iter().all(|x| *x <= 256));
            // Powers of two, but for one last statement of at most SMALL rows.
            if let Some((last, rest)) = s.split_last() {
                assert!(rest.iter().all(|x| x.is_power_of_two()), "{n}: {s:?}");
                assert!(last.is_power_of_two() || *last <= SMALL, "{n}: {s:?}");
            }
        }
        assert_eq!(sizes(300, 256).collect::<Vec<_>>(), vec![256, 32, 8, 4]);
        assert_eq!(sizes(7, 256).collect::<Vec<_>>(), vec![7]);
        assert_eq!(sizes(45, 256).collect::<Vec<_>>(), vec![32, 8, 5]);
        let items: Vec<u32> = (0..300).collect();
        let back: Vec<u32> = slices_of(&items, 256).flatten().copied().collect();
        assert_eq!(back, items);
        let back: Vec<u32> = chunks_of(items.clone(), 256).flatten().collect();
        assert_eq!(back, items);
    }

    #[test]
    fn in_lists_are_padded_with_their_last_value() {
        let p = padded_in(&[1, 2, 3], 256);
        assert_eq!(p, vec![vec![1, 2, 3, 3]]);
        let items: Vec<u32> = (0..300).collect();
        let p = padded_in(&items, 256);
        assert_eq!(p[0].len(), 256);
        assert_eq!(p[1].len(), 64);
        assert_eq!(p[1].last(), Some(&299));
        assert_eq!(rows_per_statement(11), 256);
        assert_eq!(rows_per_statement(200), 128);
    }
}
