//! The trained model: read-only once built, shared by every request through an `Arc`, and
//! stored whole so that other instances load what one of them trained.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Model {
    /// Latent factors per item and per shopper (ALS on implicit feedback), row-major.
    pub(super) factors: usize,
    pub(super) item_ids: Vec<String>,
    pub(super) item_factors: Vec<f32>,
    pub(super) shopper_factors: HashMap<String, Vec<f32>>,
    /// Per product: products the same shoppers interacted with, most similar first.
    pub(super) also_liked: HashMap<String, Vec<String>>,
    /// Per product: products bought in the same orders, most often first.
    pub(super) bought_together: HashMap<String, Vec<String>>,
    /// Recently viewed and bought products, with time decay, hottest first.
    pub(super) trending: Vec<String>,
    /// Products by rating, shrunk towards the mean for few reviews, best first.
    pub(super) best_rated: Vec<String>,
}

impl Model {
    /// The shopper's top `count` products by predicted affinity, best first; empty for a shopper
    /// the model has not seen.
    pub fn personal(&self, shopper: &str, count: usize) -> Vec<String> {
        let Some(taste) = self.shopper_factors.get(shopper) else { return Vec::new() };
        if self.factors == 0 || count == 0 {
            return Vec::new();
        }
        let mut scored: Vec<(f32, usize)> = self
            .item_factors
            .chunks_exact(self.factors)
            .enumerate()
            .map(|(item, factors)| (factors.iter().zip(taste).map(|(a, b)| a * b).sum(), item))
            .collect();
        let count = count.min(scored.len());
        if count < scored.len() {
            scored.select_nth_unstable_by(count, |a, b| b.0.total_cmp(&a.0));
            scored.truncate(count);
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().map(|(_, item)| self.item_ids[item].clone()).collect()
    }

    pub fn also_liked(&self, product_id: &str) -> &[String] {
        self.also_liked.get(product_id).map_or(&[], Vec::as_slice)
    }

    pub fn bought_together(&self, product_id: &str) -> &[String] {
        self.bought_together.get(product_id).map_or(&[], Vec::as_slice)
    }

    pub fn trending(&self) -> &[String] {
        &self.trending
    }

    pub fn best_rated(&self) -> &[String] {
        &self.best_rated
    }
}
