//! Turning candidates from several sources into one list: scores add up where sources agree,
//! and no leaf category takes the whole list.

use std::collections::HashMap;

/// Candidate products and their scores, in the order they were first proposed.
#[derive(Debug, Default)]
pub struct Candidates {
    scores: HashMap<String, f32>,
    order: Vec<String>,
}

impl Candidates {
    /// Adds a ranked list from one source: its first product scores `weight`, later ones less.
    /// A product several sources propose gets the sum.
    pub fn add_ranked<'a>(&mut self, ranked: impl IntoIterator<Item = &'a String>, weight: f32) {
        for (rank, id) in ranked.into_iter().enumerate() {
            let score = weight / (1.0 + rank as f32 * 0.1);
            match self.scores.get_mut(id) {
                Some(total) => *total += score,
                None => {
                    self.scores.insert(id.clone(), score);
                    self.order.push(id.clone());
                }
            }
        }
    }

    pub fn ids(&self) -> &[String] {
        &self.order
    }

    /// The candidates `keep` accepts, best score first (ties: first proposed first).
    pub fn ranked(self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let Candidates { scores, order } = self;
        let mut kept: Vec<(usize, String)> = order.into_iter().enumerate().filter(|(_, id)| keep(id)).collect();
        kept.sort_by(|(a_rank, a), (b_rank, b)| scores[b].total_cmp(&scores[a]).then(a_rank.cmp(b_rank)));
        kept.into_iter().map(|(_, id)| id).collect()
    }
}

/// The first `count` of `ranked` (id, leaf category), with at most 70% of them from one leaf
/// category while others are on offer; when there are too few others, the list is filled in
/// rank order.
pub fn pick_varied(ranked: Vec<(String, Option<String>)>, count: usize) -> Vec<String> {
    let per_category = if count <= 1 { count } else { count - (count * 3 / 10).max(1) };
    let mut taken: HashMap<Option<String>, usize> = HashMap::new();
    let (mut picks, mut passed) = (Vec::with_capacity(count), Vec::new());
    for (id, category) in ranked {
        if picks.len() == count {
            break;
        }
        let used = taken.entry(category).or_default();
        if *used < per_category {
            *used += 1;
            picks.push(id);
        } else {
            passed.push(id);
        }
    }
    let missing = count - picks.len();
    picks.extend(passed.into_iter().take(missing));
    picks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn sources_that_agree_lift_a_candidate_above_either_alone() {
        let mut candidates = Candidates::default();
        candidates.add_ranked(&ids(&["a", "b", "c"]), 1.0);
        candidates.add_ranked(&ids(&["c", "d"]), 1.0);
        assert_eq!(candidates.ranked(|id| id != "d"), ids(&["c", "a", "b"]));
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
