//! Product search: what a shopper may ask, the SearchIndex port, and the service that validates
//! requests and keeps the index in step with the catalog.

pub mod model;
pub mod spelling;
pub mod synonyms;

pub use model::{
    FacetCount, SearchDocument, SearchError, SearchFilter, SearchHits, SearchRequest, SearchSort, sort_facet_counts,
};
pub use spelling::{allowed_edits, correct_spelling, edit_distance};
pub use synonyms::Synonyms;
