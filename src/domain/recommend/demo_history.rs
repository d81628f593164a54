//! A generated interaction history with planted tastes, for the demo store and the quality
//! test: each shopper favours one or two leaf categories and a brand in them, popularity is
//! skewed as in real catalogs, and some products are planted as bought together.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Interaction, InteractionKind};
use crate::domain::catalog::generator::CatalogGenerator;

/// Share of a shopper's interactions that follow their taste; the rest are popular products.
const TASTE_SHARE: f64 = 0.8;
/// Share of taste picks that are of the shopper's favourite brand.
const BRAND_SHARE: f64 = 0.5;
const PURCHASE_SHARE: f64 = 0.25;
/// A product bought is bought with its planted partner this often.
const PARTNER_SHARE: f64 = 0.6;

/// The planted partner of a generated product: the next one, which is of the next leaf
/// category (a phone and its case, say).
pub fn planted_partner(index: u64, products: u64) -> Option<u64> {
    (index + 1 < products).then_some(index + 1)
}

pub fn shopper_key(n: usize) -> String {
    format!("user:demo-shopper-{n:05}")
}

/// The history of `shoppers` shoppers over the first `products` products of `catalog`,
/// spread over the 30 days before `now`. A purchase's partner shares its timestamp: one basket.
pub fn planted_history(
    catalog: &CatalogGenerator,
    products: u64,
    shoppers: usize,
    seed: u64,
    now: DateTime<Utc>,
) -> Vec<Interaction> {
    let leaves = catalog.leaf_paths().count().max(1) as u64;
    if products == 0 {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut brands: HashMap<u64, Option<String>> = HashMap::new();
    let mut brand_of = |index: u64| brands.entry(index).or_insert_with(|| catalog.product(index).brand).clone();
    let mut leaf_products: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut history = Vec::new();
    for n in 0..shoppers {
        let shopper = shopper_key(n);
        let favourite_leaves: Vec<u64> =
            (0..if rng.random_bool(0.6) { 1 } else { 2 }).map(|_| rng.random_range(0..leaves.min(products))).collect();
        // Per favourite leaf: its products, and those of the shopper's favourite brand.
        let mut tastes: Vec<(Vec<u64>, Vec<u64>)> = Vec::new();
        let mut favourite_brand = None;
        for leaf in favourite_leaves {
            let in_leaf = leaf_products
                .entry(leaf)
                .or_insert_with(|| (leaf..products).step_by(leaves as usize).collect())
                .clone();
            let brand =
                favourite_brand.get_or_insert_with(|| brand_of(in_leaf[rng.random_range(0..in_leaf.len())])).clone();
            let of_brand = in_leaf.iter().copied().filter(|&i| brand_of(i) == brand).collect();
            tastes.push((in_leaf, of_brand));
        }
        for _ in 0..rng.random_range(8..30) {
            let index = if rng.random_bool(TASTE_SHARE) {
                let (in_leaf, of_brand) = &tastes[rng.random_range(0..tastes.len())];
                let pool = if !of_brand.is_empty() && rng.random_bool(BRAND_SHARE) { of_brand } else { in_leaf };
                pool[skewed(&mut rng, pool.len())]
            } else {
                skewed(&mut rng, products as usize) as u64
            };
            let at = now - Duration::seconds(rng.random_range(0..30 * 24 * 3600));
            let kind = if rng.random_bool(PURCHASE_SHARE) { InteractionKind::Purchase } else { InteractionKind::View };
            let mut add = |index: u64| {
                history.push(Interaction {
                    shopper: shopper.clone(),
                    product_id: CatalogGenerator::product_id(index),
                    kind,
                    at,
                })
            };
            add(index);
            if kind == InteractionKind::Purchase && rng.random_bool(PARTNER_SHARE) {
                planted_partner(index, products).into_iter().for_each(&mut add);
            }
        }
    }
    history
}

/// An index below `len`, low ones far more often: a few products get most of the attention.
fn skewed(rng: &mut ChaCha8Rng, len: usize) -> usize {
    let u: f64 = rng.random_range(0.0..1.0);
    ((u.powi(3) * len as f64) as usize).min(len.saturating_sub(1))
}
