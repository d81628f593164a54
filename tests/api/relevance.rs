//! Relevance: the judged queries in tests/relevance/judgments.txt (exact words, synonyms, typos,
//! brand + category, attribute + category) scored as nDCG@10 over the demo catalog. The mean
//! must stay at or above 0.93: the read path's speed-ups (issue 12) may not cost relevance.

use serde_json::json;
use shop::domain::catalog::generator::CatalogGenerator;
use shop::domain::catalog::model::ProductDraft;

use crate::helpers::{Backend, ServerOptions, TestServer};
use crate::on_both_backends;

const PRODUCTS: u64 = 3_000;
const JUDGMENTS: &str = include_str!("../relevance/judgments.txt");
const TARGET: f64 = 0.93;

struct Judged {
    query: String,
    /// Rules of grade 3, 2, 1: alternatives of conjunctions of conditions.
    grades: Vec<Vec<Vec<String>>>,
}

fn parse() -> Vec<Judged> {
    JUDGMENTS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut parts = line.split('|').map(str::trim);
            let query = parts.next().expect("query").to_owned();
            let grades = parts
                .map(|grade| {
                    grade
                        .split(';')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(|alternative| alternative.split("&&").map(|c| c.trim().to_owned()).collect())
                        .collect()
                })
                .collect();
            Judged { query, grades }
        })
        .collect()
}

fn meets(product: &ProductDraft, condition: &str) -> bool {
    if let Some(text) = condition.strip_prefix("title~") {
        return product.title.to_lowercase().contains(&text.to_lowercase());
    }
    let (name, value) = condition.split_once('=').unwrap_or_else(|| panic!("bad condition {condition}"));
    match name {
        "leaf" => product.category_path.as_deref().and_then(|p| p.rsplit('/').next()) == Some(value),
        "brand" => product.brand.as_deref() == Some(value),
        attribute => product.attributes.iter().any(|a| a.name == attribute && a.value == value),
    }
}

fn grade(judged: &Judged, product: &ProductDraft) -> u32 {
    for (i, alternatives) in judged.grades.iter().enumerate() {
        if alternatives.iter().any(|conditions| conditions.iter().all(|c| meets(product, c))) {
            return 3 - i as u32;
        }
    }
    0
}

fn dcg(grades: impl Iterator<Item = u32>) -> f64 {
    grades.take(10).enumerate().map(|(i, g)| (2f64.powi(g as i32) - 1.0) / ((i + 2) as f64).log2()).sum()
}

on_both_backends!(judged_queries_score_at_least_0_93_ndcg_at_10, |backend: Backend| async move {
    let server = TestServer::start_with(backend, ServerOptions { seed_products: PRODUCTS, ..Default::default() }).await;
    let generator = CatalogGenerator::new(shop::server::DEMO_SEED);
    let catalog: Vec<ProductDraft> = (0..PRODUCTS).map(|i| generator.product(i)).collect();
    let by_id: std::collections::HashMap<String, &ProductDraft> =
        catalog.iter().map(|p| (p.id.clone().expect("generated id"), p)).collect();
    let judged = parse();
    assert!(judged.len() >= 60, "only {} judged queries", judged.len());
    let search = "query($q: String) { searchProducts(query: $q, first: 10) { nodes { id } } }";
    let mut scores = Vec::new();
    let mut report = String::new();
    for query in &judged {
        let data = server.data(search, json!({ "q": query.query }), None).await;
        let ids: Vec<String> = data["searchProducts"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| n["id"].as_str().expect("id").to_owned())
            .collect();
        let found = dcg(ids.iter().map(|id| by_id.get(id).map_or(0, |p| grade(query, p))));
        let mut ideal: Vec<u32> = catalog.iter().map(|p| grade(query, p)).collect();
        ideal.sort_unstable_by(|a, b| b.cmp(a));
        let best = dcg(ideal.into_iter());
        assert!(best > 0.0, "no product is relevant to {:?}: fix the judgment", query.query);
        let score = found / best;
        report.push_str(&format!("{score:.3}  {}\n", query.query));
        scores.push(score);
    }
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    println!("{report}mean nDCG@10 over {} queries: {mean:.3}", scores.len());
    assert!(mean >= TARGET, "mean nDCG@10 {mean:.3} < {TARGET}:\n{report}");
});
