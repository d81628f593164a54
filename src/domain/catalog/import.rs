//! Catalog files: CSV with a header row, or JSON Lines, one product per record, same field names.
//! See README.md ("Importing a catalog") for the format.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::model::{Attribute, ProductDraft};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("unknown file type {0}: use .csv, .jsonl or .ndjson")]
    UnknownFormat(String),
    #[error("line {line}: {message}")]
    Record { line: u64, message: String },
}

/// Attributes: `color=Red;material=Leather` in CSV, an object `{"color": "Red"}` in JSON Lines.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AttributesField {
    Pairs(String),
    Object(BTreeMap<String, String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportRecord {
    id: String,
    title: String,
    #[serde(default)]
    description: String,
    brand: Option<String>,
    category: Option<String>,
    price_cents: i64,
    currency: Option<String>,
    rating: Option<f64>,
    review_count: Option<i32>,
    popularity: Option<i64>,
    stock: Option<i32>,
    attributes: Option<AttributesField>,
    created_at: Option<DateTime<Utc>>,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

impl ImportRecord {
    fn into_draft(self) -> Result<ProductDraft, String> {
        let attributes = match self.attributes {
            None => Vec::new(),
            Some(AttributesField::Object(map)) => {
                map.into_iter().map(|(name, value)| Attribute { name, value }).collect()
            }
            Some(AttributesField::Pairs(text)) => text
                .split(';')
                .filter(|pair| !pair.trim().is_empty())
                .map(|pair| {
                    pair.split_once('=')
                        .map(|(name, value)| Attribute { name: name.trim().to_owned(), value: value.trim().to_owned() })
                        .ok_or_else(|| format!("attribute `{pair}` is not name=value"))
                })
                .collect::<Result<_, _>>()?,
        };
        let draft = ProductDraft {
            id: Some(self.id),
            title: self.title,
            description: self.description,
            brand: non_empty(self.brand),
            category_path: non_empty(self.category),
            price_cents: self.price_cents,
            currency: non_empty(self.currency),
            rating: self.rating,
            review_count: self.review_count.unwrap_or(0),
            popularity: self.popularity.unwrap_or(0),
            attributes,
            stock: self.stock,
            created_at: self.created_at,
        };
        draft.validate().map_err(|e| e.to_string())?;
        Ok(draft)
    }
}

pub type ImportItem = Result<ProductDraft, ImportError>;

/// Streams the file's products, each validated; a bad record is an error naming its line.
pub fn read_catalog_file(path: &Path) -> Result<Box<dyn Iterator<Item = ImportItem>>, ImportError> {
    let io_error = |source| ImportError::Io { path: path.display().to_string(), source };
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    let file = File::open(path).map_err(io_error)?;
    match extension.as_str() {
        "csv" => {
            let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(BufReader::new(file));
            let headers =
                reader.headers().map_err(|err| ImportError::Record { line: 1, message: err.to_string() })?.clone();
            Ok(Box::new(reader.into_records().map(move |record| {
                let record = record.map_err(|err| ImportError::Record {
                    line: err.position().map_or(0, |p| p.line()),
                    message: err.to_string(),
                })?;
                let line = record.position().map_or(0, |p| p.line());
                record
                    .deserialize::<ImportRecord>(Some(&headers))
                    .map_err(|e| e.to_string())
                    .and_then(ImportRecord::into_draft)
                    .map_err(|message| ImportError::Record { line, message })
            })))
        }
        "jsonl" | "ndjson" => {
            let lines = BufReader::new(file).lines().enumerate();
            Ok(Box::new(lines.filter_map(|(index, line)| {
                let line_no = index as u64 + 1;
                let record_error = |message: String| ImportError::Record { line: line_no, message };
                match line {
                    Err(err) => Some(Err(record_error(err.to_string()))),
                    Ok(text) if text.trim().is_empty() => None,
                    Ok(text) => Some(
                        serde_json::from_str::<ImportRecord>(&text)
                            .map_err(|e| e.to_string())
                            .and_then(ImportRecord::into_draft)
                            .map_err(record_error),
                    ),
                }
            })))
        }
        other => Err(ImportError::UnknownFormat(other.to_owned())),
    }
}
