//! Turning candidates from several sources into one list: scores add up where sources agree,
//! and no leaf category takes the whole list.

use std::collections::HashMap;

/// Candidate products and their scores, in the order they were first proposed. The ids are
/// borrowed from the lists they came from: a request blends a few hundred and keeps ten.
#[derive(Debug, Default)]
pub struct Candidates<'a> {
    /// Where each product sits in `scored`. foldhash: a request hashes a few hundred ids, all
    /// from the model and the store, none from the caller.
    index: foldhash::HashMap<&'a str, usize>,
    scored: Vec<(&'a str, f32)>,
}

impl<'a> Candidates<'a> {
    /// Adds a ranked list from one source: its first product scores `weight`, later ones less.
    /// A product several sources propose gets the sum.
    pub fn add_ranked(&mut self, ranked: impl IntoIterator<Item = &'a String>, weight: f32) {
        let ranked = ranked.into_iter();
        self.index.reserve(ranked.size_hint().0);
        self.scored.reserve(ranked.size_hint().0);
        for (rank, id) in ranked.enumerate() {
            let score = weight / (1.0 + rank as f32 * 0.1);
            match self.index.get(id.as_str()) {
                Some(&at) => self.scored[at].1 += score,
                None => {
                    self.index.insert(id, self.scored.len());
                    self.scored.push((id, score));
                }
            }
        }
    }

    /// The candidates `keep` accepts, best score first (ties: first proposed first).
    pub fn ranked(self, keep: impl Fn(&str) -> bool) -> Vec<&'a str> {
        let mut kept: Vec<(&str, f32)> = self.scored.into_iter().filter(|(id, _)| keep(id)).collect();
        // A stable sort keeps ties in the order they were proposed.
        kept.sort_by(|(_, a), (_, b)| b.total_cmp(a));
        kept.into_iter().map(|(id, _)| id).collect()
    }
}

/// Picks `count` products offered in rank order (id, leaf category), with at most 70% of them
/// from one leaf category while others are on offer; when there are too few others, the list
/// is filled in rank order from those passed over.
#[derive(Debug)]
pub struct VariedPicks {
    count: usize,
    per_category: usize,
    taken: HashMap<Option<String>, usize>,
    picks: Vec<String>,
    passed: Vec<String>,
}

impl VariedPicks {
    pub fn new(count: usize) -> Self {
        let per_category = if count <= 1 { count } else { count - (count * 3 / 10).max(1) };
        Self { count, per_category, taken: HashMap::new(), picks: Vec::with_capacity(count), passed: Vec::new() }
    }

    /// Offers the next candidate; whether the picks are full (later ones cannot change them).
    pub fn offer(&mut self, id: String, category: Option<String>) -> bool {
        if self.is_full() {
            return true;
        }
        let used = self.taken.entry(category).or_default();
        if *used < self.per_category {
            *used += 1;
            self.picks.push(id);
        } else {
            self.passed.push(id);
        }
        self.is_full()
    }

    pub fn is_full(&self) -> bool {
        self.picks.len() == self.count
    }

    pub fn finish(mut self) -> Vec<String> {
        let missing = self.count - self.picks.len();
        self.picks.extend(self.passed.into_iter().take(missing));
        self.picks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn sources_that_agree_lift_a_candidate_above_either_alone() {
        let (first, second) = (ids(&["a", "b", "c"]), ids(&["c", "d"]));
        let mut candidates = Candidates::default();
        candidates.add_ranked(&first, 1.0);
        candidates.add_ranked(&second, 1.0);
        assert_eq!(candidates.ranked(|id| id != "d"), ["c", "a", "b"]);
    }

    fn pick_varied(ranked: Vec<(String, Option<String>)>, count: usize) -> Vec<String> {
        let mut picks = VariedPicks::new(count);
        for (id, category) in ranked {
            if picks.offer(id, category) {
                break;
            }
        }
        picks.finish()
    }

    #[test]
    fn one_category_takes_at_most_seven_of_ten_while_others_are_on_offer() {
        let mut ranked: Vec<(String, Option<String>)> =
            (0..20).map(|i| (format!("shoe-{i}"), Some("shoes".to_owned()))).collect();
        ranked.push(("hat".to_owned(), Some("hats".to_owned())));
        ranked.push(("scarf".to_owned(), Some("scarves".to_owned())));
        let picks = pick_varied(ranked.clone(), 10);
        assert_eq!(picks.len(), 10);
        assert_eq!(picks.iter().filter(|p| p.starts_with("shoe")).count(), 8, "{picks:?}");
        assert!(picks.contains(&"hat".to_owned()) && picks.contains(&"scarf".to_owned()));
        assert_eq!(pick_varied(ranked[..12].to_vec(), 10).len(), 10, "filled from one category when alone");
    }
}
