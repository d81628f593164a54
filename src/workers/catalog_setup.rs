//! First-start work: seeds the demo catalog into an empty store, makes sure search holds the
//! whole catalog, then marks the catalog ready (`/readyz`).

use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::app::AppContext;
use crate::domain::catalog::generator::CatalogGenerator;
use crate::server::DEMO_SEED;

pub async fn run(app: AppContext) {
    let outcome = async {
        let wanted = app.config.seed_products;
        if wanted > 0 && app.catalog.product_count().await.map_err(|e| e.to_string())? == 0 {
            let started = Instant::now();
            tracing::info!(products = wanted, "empty store: seeding the demo catalog");
            let generator = CatalogGenerator::new(DEMO_SEED);
            let written = app
                .catalog
                .import_all((0..wanted).map(|i| generator.product(i)), |_| ())
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(products = written, seconds = started.elapsed().as_secs_f64(), "demo catalog seeded");
            let interactions =
                app.recommendations.seed_demo_history(DEMO_SEED, wanted, None).await.map_err(|e| e.to_string())?;
            tracing::info!(interactions, "demo shopping history seeded");
        }
        let started = Instant::now();
        let indexed = app.search.rebuild_if_stale().await.map_err(|e| e.to_string())?;
        if indexed > 0 {
            tracing::info!(products = indexed, seconds = started.elapsed().as_secs_f64(), "search index built");
        }
        Ok::<_, String>(())
    }
    .await;
    match outcome {
        Ok(()) => app.catalog_ready.store(true, Ordering::Release),
        Err(err) => tracing::error!(error = %err, "preparing the catalog failed; /readyz stays unavailable"),
    }
}
