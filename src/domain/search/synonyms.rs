//! Synonym groups: a query word in a group also matches the other words of its group.

use std::collections::HashMap;

/// The groups shipped with the shop; `SHOP_SYNONYMS_FILE` replaces them.
pub const DEFAULT_SYNONYMS: &str = include_str!("synonyms.txt");

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Synonyms {
    groups: HashMap<String, Vec<String>>,
}

impl Synonyms {
    /// Parses `a, b, c` lines; `#` starts a comment. Words are lower-cased.
    pub fn parse(text: &str) -> Self {
        let mut groups = HashMap::new();
        for line in text.lines().map(|l| l.split('#').next().unwrap_or_default()) {
            let words: Vec<String> =
                line.split(',').map(|w| w.trim().to_lowercase()).filter(|w| !w.is_empty()).collect();
            if words.len() > 1 {
                for word in &words {
                    groups.insert(word.clone(), words.clone());
                }
            }
        }
        Self { groups }
    }

    /// Every group once, as `a, b, c` lines (the Solr format OpenSearch's synonym filters read).
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.groups.values().map(|group| group.join(", ")).collect();
        lines.sort();
        lines.dedup();
        lines
    }

    /// The word and its synonyms (just the word when it has none).
    pub fn expand(&self, word: &str) -> Vec<String> {
        self.groups.get(word).cloned().unwrap_or_else(|| vec![word.to_owned()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_expand_both_ways() {
        let synonyms = Synonyms::parse("# comment\nTV, Television\nsofa, couch # trailing\nlonely\n");
        assert_eq!(synonyms.expand("television"), ["tv", "television"]);
        assert_eq!(synonyms.expand("couch"), ["sofa", "couch"]);
        assert_eq!(synonyms.expand("lonely"), ["lonely"]);
        assert_eq!(synonyms.lines(), ["sofa, couch", "tv, television"]);
        assert!(Synonyms::parse(DEFAULT_SYNONYMS).expand("laptop").contains(&"notebook".to_owned()));
    }
}
