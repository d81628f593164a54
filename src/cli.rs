//! The `shop` command line: serve (default), migrate, seed, import, reindex,
//! train-recommendations, create-admin.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::AppContext;
use crate::config::{Config, LogFormat};
use crate::domain::catalog::generator::CatalogGenerator;
use crate::domain::catalog::import::read_catalog_file;
use crate::domain::clock::SystemClock;
use crate::server;

#[derive(Parser)]
#[command(name = "shop", version, about = "Headless e-commerce GraphQL server")]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (migrates the store first). The default.
    Serve,
    /// Apply migrations and exit.
    Migrate,
    /// Add a deterministic generated catalog of N products (ids prod-0000001 …).
    Seed {
        #[arg(long)]
        products: u64,
        #[arg(long, default_value_t = server::DEMO_SEED)]
        seed: u64,
        /// Demo shoppers whose history recommendations learn from (default: one per five
        /// products, at most 5,000); written only into a store with no history yet.
        #[arg(long)]
        shoppers: Option<usize>,
    },
    /// Load products from a CSV or JSON Lines file (format in README).
    Import { file: PathBuf },
    /// Build a fresh search index beside the live one and swap it in (a running server adopts it
    /// within a second).
    Reindex,
    /// Train the recommendation models from the store's history and exit; a running server
    /// picks up the result within seconds.
    TrainRecommendations,
    /// Create an admin, or promote and re-key an existing account (promotion ends its sign-ins).
    CreateAdmin {
        #[arg(long, env = "SHOP_ADMIN_EMAIL")]
        email: String,
        /// Without it (or SHOP_ADMIN_PASSWORD), the first line of standard input, which keeps the
        /// password out of the process list and the shell history.
        #[arg(long, env = "SHOP_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    init_logging(&config);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => server::serve(config).await,
        Command::Migrate => {
            let app = open(config).await?;
            println!("store migrated ({})", app.db.backend_name());
            Ok(())
        }
        Command::Seed { products, seed, shoppers } => {
            let app = open(config).await?;
            let generator = CatalogGenerator::new(seed);
            let bar = progress_bar(Some(products));
            let started = Instant::now();
            let written = app
                .catalog
                .import_all((0..products).map(|i| generator.product(i)), |done| bar.set_position(done))
                .await?;
            bar.finish();
            report("seeded", written, started);
            let interactions = app.recommendations.seed_demo_history(seed, products, shoppers).await?;
            println!("seeded {interactions} interactions of demo shoppers");
            Ok(())
        }
        Command::Import { file } => {
            let app = open(config).await?;
            let started = Instant::now();
            let mut errors = Vec::new();
            let mut records = 0u64;
            for item in read_catalog_file(&file)? {
                match item {
                    Ok(_) => records += 1,
                    Err(err) => errors.push(err.to_string()),
                }
            }
            if !errors.is_empty() {
                for error in errors.iter().take(20) {
                    eprintln!("{}: {error}", file.display());
                }
                anyhow::bail!("{} invalid record(s) in {}; nothing was imported", errors.len(), file.display());
            }
            let bar = progress_bar(Some(records));
            let drafts = read_catalog_file(&file)?.filter_map(Result::ok);
            let written = app.catalog.import_all(drafts, |done| bar.set_position(done)).await?;
            bar.finish();
            report("imported", written, started);
            Ok(())
        }
        Command::Reindex => {
            let app = open(config).await?;
            let started = Instant::now();
            let indexed = app.search.reindex().await?;
            report("indexed", indexed, started);
            Ok(())
        }
        Command::TrainRecommendations => {
            let app = open(config).await?;
            let started = Instant::now();
            match app.recommendations.train().await? {
                Some(version) => {
                    println!("trained recommendation model {version} in {:.1} s", started.elapsed().as_secs_f64());
                    Ok(())
                }
                None => anyhow::bail!("another instance is training the recommendation models; try again later"),
            }
        }
        Command::CreateAdmin { email, password } => {
            let password = match password {
                Some(password) => password,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let app = open(config).await?;
            let admin = app.auth.ensure_admin(&email, &password).await?;
            println!("admin {} ready (id {})", admin.email, admin.id);
            Ok(())
        }
    }
}

async fn open(config: Config) -> anyhow::Result<AppContext> {
    AppContext::build(config, Arc::new(SystemClock)).await.context("opening the store")
}

fn progress_bar(total: Option<u64>) -> ProgressBar {
    let bar = total.map_or_else(ProgressBar::no_length, ProgressBar::new);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} products ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

fn report(verb: &str, written: u64, started: Instant) {
    let seconds = started.elapsed().as_secs_f64();
    println!("{verb} {written} products in {seconds:.1} s ({:.0} products/s)", written as f64 / seconds.max(1e-9));
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
