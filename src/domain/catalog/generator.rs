//! A deterministic, realistic catalog: the same `(seed, index)` always yields the same product,
//! whatever the batch size, so a seeded store is reproducible and can be re-seeded in place.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::model::{Attribute, ProductDraft};

const SPEC: &str = include_str!("demo_catalog.txt");

const BRAND_ROOTS: [&str; 30] = [
    "Nord", "Bright", "Oak", "Silver", "Blue", "Stone", "Iron", "Maple", "North", "Summit", "River", "Cedar", "Falcon",
    "Harbor", "Aurora", "Copper", "Lumen", "Vista", "Pine", "Zephyr", "Atlas", "Crest", "Ember", "Willow", "Granite",
    "Sierra", "Orion", "Meadow", "Polar", "Juniper",
];
const BRAND_SUFFIXES: [&str; 6] = ["haven", "well", "line", "craft", "field", "works"];
const BRANDS_PER_TOP: usize = 24;

const PITCHES: [&str; 6] = [
    "is built for everyday use",
    "combines thoughtful design with dependable performance",
    "is one of our most reviewed picks",
    "brings premium materials at a fair price",
    "was designed with feedback from thousands of customers",
    "is made to look good and work hard",
];

/// Products carry timestamps before this fixed instant, so a seed does not depend on today.
fn catalog_epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).single().unwrap_or_default()
}

struct Leaf {
    top: usize,
    path: String,
    leaf_name: String,
    nouns: Vec<String>,
    attributes: Vec<(String, Vec<String>)>,
    title_attributes: Vec<usize>,
    price_range: (i64, i64),
}

pub struct CatalogGenerator {
    seed: u64,
    leaves: Vec<Leaf>,
    top_sentences: Vec<String>,
    brands: Vec<String>,
}

fn split_list(list: &str, separator: char) -> Vec<String> {
    list.split(separator).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

impl CatalogGenerator {
    pub fn new(seed: u64) -> Self {
        let mut leaves = Vec::new();
        let mut tops: Vec<String> = Vec::new();
        let mut top_sentences = Vec::new();
        for line in SPEC.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            if let Some(header) = line.strip_prefix('=') {
                let (name, sentence) = header.split_once(':').unwrap_or((header, ""));
                tops.push(name.trim().to_owned());
                top_sentences.push(sentence.trim().to_owned());
                continue;
            }
            let fields: Vec<&str> = line.split('|').map(str::trim).collect();
            let [sub_and_leaf, nouns, attributes, title_attributes, prices] = fields[..] else { continue };
            let attributes: Vec<(String, Vec<String>)> = attributes
                .split(';')
                .filter_map(|a| a.split_once('='))
                .map(|(name, values)| (name.trim().to_owned(), split_list(values, ',')))
                .collect();
            let title_attributes = split_list(title_attributes, ',')
                .iter()
                .filter_map(|name| attributes.iter().position(|(n, _)| n == name))
                .collect();
            let (min, max) = prices.split_once('-').unwrap_or(("1000", "10000"));
            let top = tops.len().saturating_sub(1);
            leaves.push(Leaf {
                top,
                path: format!("{}/{}", tops.get(top).map_or("Other", String::as_str), sub_and_leaf),
                leaf_name: sub_and_leaf.rsplit('/').next().unwrap_or(sub_and_leaf).to_owned(),
                nouns: split_list(nouns, ','),
                attributes,
                title_attributes,
                price_range: (min.parse().unwrap_or(1000), max.parse().unwrap_or(10000)),
            });
        }
        let brands = BRAND_ROOTS
            .iter()
            .flat_map(|root| BRAND_SUFFIXES.iter().map(move |suffix| format!("{root}{suffix}")))
            .collect();
        Self { seed, leaves, top_sentences, brands }
    }

    pub fn brand_count(&self) -> usize {
        self.brands.len()
    }

    pub fn leaf_paths(&self) -> impl Iterator<Item = &str> {
        self.leaves.iter().map(|l| l.path.as_str())
    }

    /// Product ids are `prod-` and a 1-based, zero-padded index.
    pub fn product_id(index: u64) -> String {
        format!("prod-{:07}", index + 1)
    }

    pub fn product(&self, index: u64) -> ProductDraft {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let leaf = &self.leaves[(index as usize) % self.leaves.len()];
        let brand_offset = leaf.top * (self.brands.len() / self.top_sentences.len().max(1));
        let brand = &self.brands[(brand_offset + rng.random_range(0..BRANDS_PER_TOP)) % self.brands.len()];
        let noun = &leaf.nouns[rng.random_range(0..leaf.nouns.len())];
        let attributes: Vec<Attribute> = leaf
            .attributes
            .iter()
            .map(|(name, values)| Attribute {
                name: name.clone(),
                value: values[rng.random_range(0..values.len())].clone(),
            })
            .collect();

        let mut title = brand.clone();
        for &position in &leaf.title_attributes {
            title.push(' ');
            title.push_str(&attributes[position].value);
        }
        title.push(' ');
        title.push_str(noun);

        let attribute_sentence =
            attributes.iter().map(|a| format!("{} {}", a.name, a.value)).collect::<Vec<_>>().join(", ");
        let description = format!(
            "The {title} {pitch}. A {leaf} from {brand} with {attribute_sentence}. {top_sentence}",
            pitch = PITCHES[rng.random_range(0..PITCHES.len())],
            leaf = leaf.leaf_name.to_lowercase(),
            top_sentence = self.top_sentences[leaf.top],
        );

        let (min, max) = leaf.price_range;
        let price_cents = (rng.random_range(min..=max) / 100) * 100 + 99;
        let review_count: i32 = if rng.random_bool(0.05) { 0 } else { rng.random_range(0.0f64..8.0).exp() as i32 };
        let rating = (review_count > 0).then(|| {
            let skewed: f64 = 5.0 - rng.random_range(0.0f64..1.0).powi(2) * 3.5;
            (skewed * 10.0).round() / 10.0
        });
        let popularity = i64::from(review_count) * 10 + rng.random_range(0..500);
        let stock = if rng.random_bool(0.08) { 0 } else { rng.random_range(1..=250) };
        let created_at = catalog_epoch() - Duration::seconds(rng.random_range(0..730 * 24 * 3600));

        ProductDraft {
            id: Some(Self::product_id(index)),
            title,
            description,
            brand: Some(brand.clone()),
            category_path: Some(leaf.path.clone()),
            price_cents,
            currency: None,
            rating,
            review_count,
            popularity,
            attributes,
            stock: Some(stock),
            created_at: Some(created_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::model::parse_category_path;

    #[test]
    fn same_seed_and_index_give_the_same_product() {
        let a = CatalogGenerator::new(7);
        let b = CatalogGenerator::new(7);
        assert_eq!(a.product(12_345), b.product(12_345));
        assert_ne!(a.product(1).title, CatalogGenerator::new(8).product(1).title);
    }

    #[test]
    fn catalog_has_the_promised_breadth_and_valid_products() {
        let generator = CatalogGenerator::new(1);
        assert!(generator.brand_count() >= 150, "brands: {}", generator.brand_count());
        let tops: std::collections::BTreeSet<String> =
            generator.leaf_paths().map(|p| parse_category_path(p).map(|s| s[0].clone()).unwrap_or_default()).collect();
        assert!(tops.len() >= 12, "top categories: {tops:?}");
        assert!(generator.leaf_paths().all(|p| p.split('/').count() == 3));
        for index in 0..2_000 {
            let product = generator.product(index);
            product.validate().unwrap_or_else(|e| panic!("product {index} invalid: {e}"));
        }
        let tv = (0..500).map(|i| generator.product(i)).find(|p| p.title.contains("Smart TV"));
        assert!(tv.is_some_and(|p| p.title.contains("-inch")));
    }
}
