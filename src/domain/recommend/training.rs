//! Training: from the history of views, cart lines and orders to a `Model`. Pure and
//! synchronous (it runs on a blocking thread); the same input always gives the same model.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use discorec::RecommenderBuilder;

use super::model::Model;
use super::{Interaction, InteractionKind};

/// Latent factors and ALS sweeps: enough for taste clusters, cheap enough for a million
/// interactions in well under the two-minute budget on two cores.
const FACTORS: u32 = 16;
const ITERATIONS: u32 = 12;
const SEED: u64 = 20_261_203;
/// Neighbours kept per product, and products kept in the trending and best-rated lists.
const NEIGHBOURS: usize = 20;
const TOP_LIST: usize = 200;
/// Products of one shopper (their heaviest) that co-occurrence pairs up: bounds the pairs at
/// 66 per shopper, whatever their history.
const PAIRED_PER_SHOPPER: usize = 12;
const PAIRED_PER_BASKET: usize = 10;
/// A trending signal halves in weight every three days.
const TRENDING_HALF_LIFE_DAYS: f64 = 3.0;
/// Reviews a rating needs before it counts fully (fewer are shrunk towards the mean).
const RATING_PRIOR_REVIEWS: f64 = 10.0;

/// What training reads.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub interactions: Vec<Interaction>,
    /// Products bought together: each paid order, and each basket of the demo history.
    pub baskets: Vec<Vec<String>>,
    /// The catalog's (product id, rating, review count).
    pub ratings: Vec<(String, Option<f64>, i32)>,
}

/// Ids interned to dense indexes, so that the pair counts key on integers, not strings.
#[derive(Default)]
struct Interner {
    index: HashMap<String, u32>,
    ids: Vec<String>,
}

impl Interner {
    fn intern(&mut self, id: &str) -> u32 {
        if let Some(&index) = self.index.get(id) {
            return index;
        }
        let index = self.ids.len() as u32;
        self.ids.push(id.to_owned());
        self.index.insert(id.to_owned(), index);
        index
    }
}

pub fn train(history: &History, now: DateTime<Utc>) -> Model {
    let mut products = Interner::default();
    let mut shoppers = Interner::default();
    let mut affinity: HashMap<(u32, u32), f32> = HashMap::new();
    let mut heat: HashMap<u32, f64> = HashMap::new();
    for interaction in &history.interactions {
        let product = products.intern(&interaction.product_id);
        let shopper = shoppers.intern(&interaction.shopper);
        *affinity.entry((shopper, product)).or_default() += interaction.kind.weight();
        let age_days = (now - interaction.at).num_seconds().max(0) as f64 / 86_400.0;
        *heat.entry(product).or_default() +=
            f64::from(interaction.kind.weight()) * 0.5f64.powf(age_days / TRENDING_HALF_LIFE_DAYS);
    }

    let mut model = Model::default();
    fit_factors(&mut model, &affinity, &products, &shoppers);
    model.also_liked = neighbours(&shopper_products(&affinity), products.ids.len())
        .into_iter()
        .map(|(product, similar)| (products.ids[product as usize].clone(), named(&products, similar)))
        .collect();
    let baskets: Vec<Vec<u32>> = history
        .baskets
        .iter()
        .map(|basket| {
            let mut basket: Vec<u32> = basket.iter().map(|id| products.intern(id)).collect();
            basket.sort_unstable();
            basket.dedup();
            basket.truncate(PAIRED_PER_BASKET);
            basket
        })
        .collect();
    model.bought_together = co_bought(&baskets)
        .into_iter()
        .map(|(product, with)| (products.ids[product as usize].clone(), named(&products, with)))
        .collect();
    let mut trending: Vec<(u32, f64)> = heat.into_iter().collect();
    trending.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    model.trending = trending.into_iter().take(TOP_LIST).map(|(p, _)| products.ids[p as usize].clone()).collect();
    model.best_rated = best_rated(&history.ratings);
    model
}

fn named(products: &Interner, indexes: Vec<u32>) -> Vec<String> {
    indexes.into_iter().map(|p| products.ids[p as usize].clone()).collect()
}

/// ALS on implicit feedback; each shopper's and product's factors are copied out of the
/// trainer (which is not `Sync`) into the model.
fn fit_factors(model: &mut Model, affinity: &HashMap<(u32, u32), f32>, products: &Interner, shoppers: &Interner) {
    if affinity.is_empty() {
        return;
    }
    let mut data: Vec<(u32, u32, f32)> =
        affinity.iter().map(|(&(shopper, product), &weight)| (shopper, product, weight.ln_1p())).collect();
    // The trainer's result depends on the order it is fed.
    data.sort_unstable_by_key(|&(shopper, product, _)| (shopper, product));
    let trained = RecommenderBuilder::new().factors(FACTORS).iterations(ITERATIONS).seed(SEED).fit_implicit(&data);
    model.factors = FACTORS as usize;
    for &product in trained.item_ids() {
        if let Some(factors) = trained.item_factors(&product) {
            model.item_ids.push(products.ids[product as usize].clone());
            model.item_factors.extend_from_slice(factors);
        }
    }
    for &shopper in trained.user_ids() {
        if let Some(factors) = trained.user_factors(&shopper) {
            model.shopper_factors.insert(shoppers.ids[shopper as usize].clone(), factors.to_vec());
        }
    }
}

/// Each shopper's heaviest products.
fn shopper_products(affinity: &HashMap<(u32, u32), f32>) -> Vec<Vec<u32>> {
    let mut by_shopper: HashMap<u32, Vec<(u32, f32)>> = HashMap::new();
    for (&(shopper, product), &weight) in affinity {
        by_shopper.entry(shopper).or_default().push((product, weight));
    }
    let mut sets: Vec<(u32, Vec<u32>)> = by_shopper
        .into_iter()
        .map(|(shopper, mut products)| {
            products.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            products.truncate(PAIRED_PER_SHOPPER);
            let mut products: Vec<u32> = products.into_iter().map(|(p, _)| p).collect();
            products.sort_unstable();
            (shopper, products)
        })
        .collect();
    sets.sort_unstable_by_key(|(shopper, _)| *shopper);
    sets.into_iter().map(|(_, products)| products).collect()
}

/// Item-to-item cosine similarity of who interacted with what: co-occurrences over the square
/// root of both products' shopper counts.
fn neighbours(sets: &[Vec<u32>], product_count: usize) -> HashMap<u32, Vec<u32>> {
    let mut counts = vec![0u32; product_count];
    let mut pairs: HashMap<(u32, u32), u32> = HashMap::new();
    for set in sets {
        for (i, &a) in set.iter().enumerate() {
            counts[a as usize] += 1;
            for &b in &set[i + 1..] {
                *pairs.entry((a, b)).or_default() += 1;
            }
        }
    }
    let mut scored: HashMap<u32, Vec<(f64, u32)>> = HashMap::new();
    for ((a, b), together) in pairs {
        let similarity = f64::from(together) / (f64::from(counts[a as usize]) * f64::from(counts[b as usize])).sqrt();
        scored.entry(a).or_default().push((similarity, b));
        scored.entry(b).or_default().push((similarity, a));
    }
    best_first(scored)
}

/// How often products were bought in the same basket.
fn co_bought(baskets: &[Vec<u32>]) -> HashMap<u32, Vec<u32>> {
    let mut pairs: HashMap<(u32, u32), u32> = HashMap::new();
    for basket in baskets {
        for (i, &a) in basket.iter().enumerate() {
            for &b in &basket[i + 1..] {
                *pairs.entry((a, b)).or_default() += 1;
            }
        }
    }
    let mut scored: HashMap<u32, Vec<(f64, u32)>> = HashMap::new();
    for ((a, b), together) in pairs {
        scored.entry(a).or_default().push((f64::from(together), b));
        scored.entry(b).or_default().push((f64::from(together), a));
    }
    best_first(scored)
}

fn best_first(scored: HashMap<u32, Vec<(f64, u32)>>) -> HashMap<u32, Vec<u32>> {
    scored
        .into_iter()
        .map(|(product, mut others)| {
            others.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
            others.truncate(NEIGHBOURS);
            (product, others.into_iter().map(|(_, other)| other).collect())
        })
        .collect()
}

/// Bayesian average: a 5.0 from two reviews ranks below a 4.8 from two thousand.
fn best_rated(ratings: &[(String, Option<f64>, i32)]) -> Vec<String> {
    let rated: Vec<(&String, f64, f64)> =
        ratings.iter().filter_map(|(id, rating, reviews)| Some((id, (*rating)?, f64::from(*reviews)))).collect();
    if rated.is_empty() {
        return Vec::new();
    }
    let mean = rated.iter().map(|(_, rating, _)| rating).sum::<f64>() / rated.len() as f64;
    let mut scored: Vec<(f64, &String)> = rated
        .into_iter()
        .map(|(id, rating, reviews)| {
            ((mean * RATING_PRIOR_REVIEWS + rating * reviews) / (RATING_PRIOR_REVIEWS + reviews), id)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.into_iter().take(TOP_LIST).map(|(_, id)| id.clone()).collect()
}

/// Purchases recorded as interactions (the demo history), grouped into baskets: one shopper's
/// purchases at one instant.
pub fn baskets_of(interactions: &[Interaction]) -> Vec<Vec<String>> {
    let mut baskets: BTreeMap<(&str, DateTime<Utc>), Vec<String>> = BTreeMap::new();
    for interaction in interactions.iter().filter(|i| i.kind == InteractionKind::Purchase) {
        baskets.entry((&interaction.shopper, interaction.at)).or_default().push(interaction.product_id.clone());
    }
    baskets.into_values().filter(|basket| basket.len() > 1).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use chrono::TimeZone;
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::domain::catalog::generator::CatalogGenerator;
    use crate::domain::recommend::demo_history::{planted_history, planted_partner};

    const PRODUCTS: u64 = 3_000;
    const SHOPPERS: usize = 800;
    const K: usize = 10;

    /// Hold out 20% of each shopper's products, train on the rest, and compare the personal
    /// picks with a popularity baseline that also leaves out what the shopper has seen.
    #[test]
    fn personal_picks_beat_popularity_on_held_out_interactions() {
        let catalog = CatalogGenerator::new(1);
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let history = planted_history(&catalog, PRODUCTS, SHOPPERS, 42, now);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut by_shopper: HashMap<&str, Vec<&str>> = HashMap::new();
        for interaction in &history {
            let products = by_shopper.entry(&interaction.shopper).or_default();
            if !products.contains(&interaction.product_id.as_str()) {
                products.push(&interaction.product_id);
            }
        }
        let mut held_out: HashMap<&str, HashSet<&str>> = HashMap::new();
        for (shopper, products) in &mut by_shopper {
            products.shuffle(&mut rng);
            let hold = products.len() / 5;
            held_out.insert(shopper, products[..hold].iter().copied().collect());
        }
        let training: Vec<Interaction> =
            history.iter().filter(|i| !held_out[i.shopper.as_str()].contains(i.product_id.as_str())).cloned().collect();
        let model = train(
            &History { baskets: baskets_of(&training), interactions: training.clone(), ..History::default() },
            now,
        );

        let mut popularity: HashMap<&str, usize> = HashMap::new();
        let mut seen: HashMap<&str, HashSet<&str>> = HashMap::new();
        for interaction in &training {
            if seen.entry(&interaction.shopper).or_default().insert(&interaction.product_id) {
                *popularity.entry(&interaction.product_id).or_default() += 1;
            }
        }
        let mut popular: Vec<(&str, usize)> = popularity.into_iter().collect();
        popular.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));

        let (mut model_hits, mut baseline_hits, mut relevant, mut evaluated) = (0, 0, 0, 0);
        let mut recommended: HashSet<String> = HashSet::new();
        for (shopper, held) in held_out.iter().filter(|(_, held)| !held.is_empty()) {
            let seen = &seen[shopper];
            let picks: Vec<String> = model
                .personal(shopper, K + seen.len())
                .into_iter()
                .filter(|p| !seen.contains(p.as_str()))
                .take(K)
                .collect();
            let baseline = popular.iter().map(|(p, _)| *p).filter(|p| !seen.contains(p)).take(K);
            model_hits += picks.iter().filter(|p| held.contains(p.as_str())).count();
            baseline_hits += baseline.filter(|p| held.contains(p)).count();
            relevant += held.len();
            evaluated += 1;
            recommended.extend(picks);
        }
        let precision = |hits: usize| hits as f64 / (evaluated * K) as f64;
        let (model_precision, baseline_precision) = (precision(model_hits), precision(baseline_hits));
        eprintln!(
            "precision@10: ALS {model_precision:.4}, popularity {baseline_precision:.4} ({:.2}x); recall@10: ALS {:.4}, popularity {:.4}; catalog coverage {:.1}% ({evaluated} shoppers)",
            model_precision / baseline_precision,
            model_hits as f64 / relevant as f64,
            baseline_hits as f64 / relevant as f64,
            100.0 * recommended.len() as f64 / PRODUCTS as f64,
        );
        assert!(
            model_precision >= 1.5 * baseline_precision,
            "ALS {model_precision:.4} vs popularity {baseline_precision:.4}"
        );
    }

    #[test]
    fn planted_pairs_are_found_bought_together() {
        let catalog = CatalogGenerator::new(1);
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let history = planted_history(&catalog, PRODUCTS, SHOPPERS, 42, now);
        let model =
            train(&History { baskets: baskets_of(&history), interactions: history.clone(), ..History::default() }, now);
        let mut bought: HashMap<&str, usize> = HashMap::new();
        for interaction in history.iter().filter(|i| i.kind == InteractionKind::Purchase) {
            *bought.entry(&interaction.product_id).or_default() += 1;
        }
        let (mut checked, mut found) = (0, 0);
        for index in
            (0..PRODUCTS).filter(|i| bought.get(CatalogGenerator::product_id(*i).as_str()).is_some_and(|n| *n >= 4))
        {
            let Some(partner) = planted_partner(index, PRODUCTS) else { continue };
            checked += 1;
            let together = model.bought_together(&CatalogGenerator::product_id(index));
            found += usize::from(together.iter().take(3).any(|p| *p == CatalogGenerator::product_id(partner)));
        }
        assert!(checked >= 20, "only {checked} products bought often enough");
        assert!(found * 10 >= checked * 8, "partner among the top 3 for {found} of {checked}");
    }

    #[test]
    fn trending_favours_recent_activity_and_best_rated_shrinks_few_reviews() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let view = |product: &str, days_ago: i64, n: usize| Interaction {
            shopper: format!("guest:s{n}"),
            product_id: product.to_owned(),
            kind: InteractionKind::View,
            at: now - chrono::Duration::days(days_ago),
        };
        let mut interactions: Vec<Interaction> = (0..10).map(|n| view("old-hit", 30, n)).collect();
        interactions.extend((10..14).map(|n| view("new-hit", 0, n)));
        let ratings = vec![
            ("few".to_owned(), Some(5.0), 2),
            ("many".to_owned(), Some(4.8), 2_000),
            ("none".to_owned(), None, 0),
            ("fair".to_owned(), Some(4.0), 100),
            ("poor".to_owned(), Some(3.8), 50),
        ];
        let model = train(&History { interactions, baskets: Vec::new(), ratings }, now);
        assert_eq!(model.trending()[0], "new-hit");
        assert_eq!(model.best_rated()[..2], ["many".to_owned(), "few".to_owned()]);
        assert_eq!(model.best_rated().len(), 4, "products without a rating are left out");
    }
}
