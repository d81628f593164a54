//! Typo tolerance shared by the index adapters: how far a word may be misspelt, and how far
//! apart two words are.

/// Edits a query word may be away from an indexed one: none below 4 letters, one from 4, two
/// from 8.
pub fn allowed_edits(word: &str) -> u8 {
    match word.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// Edits (insertions, deletions, substitutions, adjacent transpositions) between two words.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// The query with each word `better_word` offers a spelling for (given the word and its allowed
/// edits) replaced; `None` when nothing changed. The last word is left alone while
/// `begins_a_word` says a known word starts with it (type-ahead).
pub fn correct_spelling(
    words: &[String],
    begins_a_word: impl Fn(&str) -> bool,
    mut better_word: impl FnMut(&str, usize) -> Option<String>,
) -> Option<String> {
    let mut changed = false;
    let corrected: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(position, word)| {
            let limit = usize::from(allowed_edits(word));
            if limit == 0 || (position + 1 == words.len() && begins_a_word(word)) {
                return word.clone();
            }
            match better_word(word, limit) {
                Some(better) => {
                    changed = true;
                    better
                }
                None => word.clone(),
            }
        })
        .collect();
    changed.then(|| corrected.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_grow_with_word_length_and_count_transpositions_once() {
        assert_eq!([allowed_edits("tv"), allowed_edits("sofa"), allowed_edits("keyboards")], [0, 1, 2]);
        assert_eq!(edit_distance("sofa", "sfoa"), 1);
        assert_eq!(edit_distance("televison", "television"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
