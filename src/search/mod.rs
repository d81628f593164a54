//! SearchIndex adapters: tantivy (embedded default).

mod tantivy;

pub use self::tantivy::TantivyIndex;
