//! SearchIndex adapters: tantivy (embedded default) and OpenSearch (scale-out).

mod opensearch;
mod tantivy;

pub use self::opensearch::OpenSearchIndex;
pub use self::tantivy::TantivyIndex;
