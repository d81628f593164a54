//! The embedded SearchIndex: tantivy on disk beside the store.
//!
//! Relevance is BM25 over title (boost 3), brand (2), category path and attribute values
//! (1.5) and description (1), English stemming; every query term must match some field, terms
//! of 4+ letters that no searched field holds also match at one edit (8+ at two) and the last
//! term also as a prefix. The final RELEVANCE score blends text relevance with what shoppers liked:
//! `bm25 × (1 + 0.1·ln(1 + popularity)) × (0.8 + 0.04·rating)`.
//! Facets are facet fields, counted per term for one-level fields (`FlatFacetCollector`) and
//! with FacetCollector for the category tree; a facet's counts ignore that facet's own
//! selection and honour every other filter.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use sha2::{Digest, Sha256};
use tantivy::collector::sort_key::SortByStaticFastValue;
use tantivy::collector::{Count, FacetCollector, FruitHandle, MultiCollector, MultiFruit, SortKeyComputer, TopDocs};
use tantivy::fastfield::FastValue;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{
    FAST, Facet, FacetOptions, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TantivyDocument,
    TextFieldIndexing, TextOptions, Value,
};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, SegmentReader, Term};
use tokio::sync::Mutex;

use crate::domain::search::model::price_bucket;
use crate::domain::search::{
    FacetCount, SearchDocument, SearchError, SearchFilter, SearchHits, SearchRequest, SearchSort, Synonyms,
    allowed_edits, correct_spelling, edit_distance, sort_facet_counts,
};
use crate::ports::SearchIndex;

/// Weight of the title-phrase match over a single title word (3.0).
const PHRASE_BOOST: f32 = 6.0;
const WRITER_MEMORY: usize = 64 * 1024 * 1024;
const ANALYZER: &str = "en_stem";
/// Lower-cases and splits without stemming: the vocabulary spelling corrections come from.
const RAW: &str = "default";

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    title: Field,
    brand_text: Field,
    category_text: Field,
    attributes_text: Field,
    description: Field,
    spell: Field,
    brand: Field,
    category: Field,
    attributes: Field,
    price_bucket: Field,
    price: Field,
    rating: Field,
    popularity: Field,
    created_at: Field,
    available: Field,
    tie: Field,
}

impl Fields {
    fn schema() -> (Schema, Fields) {
        let mut builder = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let fields = Fields {
            id: builder.add_text_field("id", STRING | STORED),
            title: builder.add_text_field("title", text.clone()),
            brand_text: builder.add_text_field("brand_text", text.clone()),
            category_text: builder.add_text_field("category_text", text.clone()),
            attributes_text: builder.add_text_field("attributes_text", text.clone()),
            description: builder.add_text_field("description", text),
            spell: builder.add_text_field(
                "spell",
                TextOptions::default().set_indexing_options(
                    TextFieldIndexing::default().set_tokenizer(RAW).set_index_option(IndexRecordOption::Basic),
                ),
            ),
            brand: builder.add_facet_field("brand", FacetOptions::default()),
            category: builder.add_facet_field("category", FacetOptions::default()),
            attributes: builder.add_facet_field("attributes", FacetOptions::default()),
            price_bucket: builder.add_facet_field("price_bucket", FacetOptions::default()),
            price: builder.add_i64_field("price", INDEXED | FAST),
            rating: builder.add_f64_field("rating", INDEXED | FAST),
            popularity: builder.add_i64_field("popularity", FAST),
            created_at: builder.add_i64_field("created_at", FAST),
            available: builder.add_i64_field("available", INDEXED | FAST),
            tie: builder.add_u64_field(TIE, FAST),
        };
        (builder.build(), fields)
    }

    /// Text fields searched, with their boosts.
    fn searched(&self) -> [(Field, f32); 5] {
        [
            (self.title, 3.0),
            (self.brand_text, 2.0),
            (self.category_text, 1.5),
            (self.attributes_text, 1.5),
            (self.description, 1.0),
        ]
    }
}

fn facet(segments: &[&str]) -> Facet {
    Facet::from_path(segments.iter().copied())
}

fn attribute_facet(name: &str, value: &str) -> Facet {
    facet(&[&format!("{name}={value}")])
}

fn category_facet(path: &str) -> Facet {
    facet(&path.split('/').collect::<Vec<_>>())
}

/// A facet's children counts, most frequent first.
fn sorted_counts(counts: &tantivy::collector::FacetCounts, root: &Facet) -> Vec<FacetCount> {
    let mut values: Vec<FacetCount> = counts
        .get(root.to_path_string().as_str())
        .map(|(facet, count)| FacetCount {
            value: facet.to_path().last().map(|s| s.to_string()).unwrap_or_default(),
            count,
        })
        .collect();
    sort_facet_counts(&mut values);
    values
}

/// The counts of a facet field whose facets are all one level deep (brand, price bucket,
/// `name=value` attributes), most frequent first. Every term of such a field is a child of the
/// root, so a document's facet ordinals are counted as they are. tantivy's FacetCollector first
/// walks the segment's whole dictionary to map each term to the child it rolls up to, on every
/// search: that walk was a third of an uncached search's time.
struct FlatFacetCollector {
    field: String,
}

struct FlatFacetSegment {
    reader: tantivy::fastfield::FacetReader,
    counts: Vec<u64>,
}

impl tantivy::collector::Collector for FlatFacetCollector {
    type Fruit = Vec<FacetCount>;
    type Child = FlatFacetSegment;

    fn for_segment(&self, _: tantivy::SegmentOrdinal, segment: &SegmentReader) -> tantivy::Result<FlatFacetSegment> {
        let reader = segment.facet_reader(&self.field)?;
        Ok(FlatFacetSegment { counts: vec![0; reader.num_facets()], reader })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, segments: Vec<Vec<FacetCount>>) -> tantivy::Result<Vec<FacetCount>> {
        let mut by_value: BTreeMap<String, u64> = BTreeMap::new();
        for FacetCount { value, count } in segments.into_iter().flatten() {
            *by_value.entry(value).or_default() += count;
        }
        let mut counts: Vec<FacetCount> =
            by_value.into_iter().map(|(value, count)| FacetCount { value, count }).collect();
        sort_facet_counts(&mut counts);
        Ok(counts)
    }
}

impl tantivy::collector::SegmentCollector for FlatFacetSegment {
    type Fruit = Vec<FacetCount>;

    fn collect(&mut self, doc: tantivy::DocId, _: tantivy::Score) {
        // A facet the document holds twice counts once, as FacetCollector counts it.
        let mut previous = None;
        for ord in self.reader.facet_ords(doc) {
            self.counts[ord as usize] += u64::from(previous != Some(ord));
            previous = Some(ord);
        }
    }

    fn harvest(self) -> Vec<FacetCount> {
        let mut facet = Facet::root();
        let mut counts = Vec::new();
        for (ord, &count) in self.counts.iter().enumerate().filter(|(_, count)| **count > 0) {
            if self.reader.facet_from_ord(ord as u64, &mut facet).is_ok()
                && let Some(value) = facet.to_path().last()
            {
                counts.push(FacetCount { value: (*value).to_owned(), count });
            }
        }
        counts
    }
}

/// One complete index on disk, `<root>/<name>/`. `shop reindex` builds a new one beside the live
/// one and then names it in `<root>/CURRENT`; searches move to it in one step.
struct Generation {
    name: String,
    index: Index,
    reader: IndexReader,
    /// Opened on the first write: only one process may hold it, and the CLI commands never
    /// write the live index (the serving process follows their changes).
    writer: tokio::sync::OnceCell<Arc<Mutex<IndexWriter>>>,
}

impl Generation {
    fn open(root: &Path, name: &str) -> Result<Self, SearchError> {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).map_err(SearchError::index)?;
        let (schema, _) = Fields::schema();
        let directory = tantivy::directory::MmapDirectory::open(&dir).map_err(SearchError::index)?;
        let index = Index::open_or_create(directory, schema).map_err(SearchError::index)?;
        let reader =
            index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(SearchError::index)?;
        Ok(Self { name: name.to_owned(), index, reader, writer: tokio::sync::OnceCell::new() })
    }

    /// Closes the writer once its merges have finished.
    async fn finish_merges(self) -> Result<(), SearchError> {
        let Some(writer) = self.writer.into_inner() else { return Ok(()) };
        let writer =
            Arc::try_unwrap(writer).map_err(|_| SearchError::index("the index writer is still in use"))?.into_inner();
        tokio::task::spawn_blocking(move || writer.wait_merging_threads())
            .await
            .map_err(SearchError::index)?
            .map_err(SearchError::index)
    }

    async fn writer(&self) -> Result<Arc<Mutex<IndexWriter>>, SearchError> {
        self.writer
            .get_or_try_init(|| async {
                self.index.writer(WRITER_MEMORY).map(|w| Arc::new(Mutex::new(w))).map_err(SearchError::index)
            })
            .await
            .cloned()
    }
}

/// `<root>/CURRENT`: the live generation's name, then (for one built by `shop reindex`) when its
/// snapshot of the store began, in RFC 3339.
const CURRENT: &str = "CURRENT";
const FIRST_GENERATION: &str = "gen-initial";

fn read_current(root: &Path) -> Option<(String, Option<DateTime<Utc>>)> {
    let text = std::fs::read_to_string(root.join(CURRENT)).ok()?;
    let mut lines = text.lines();
    let name = lines.next()?.trim().to_owned();
    let since = lines.next().and_then(|l| DateTime::parse_from_rfc3339(l.trim()).ok()).map(|t| t.with_timezone(&Utc));
    Some((name, since)).filter(|(name, _)| !name.is_empty())
}

/// Replaces CURRENT atomically (write beside, then rename).
fn write_current(root: &Path, name: &str, since: Option<DateTime<Utc>>) -> Result<(), SearchError> {
    let temporary = root.join(format!("{CURRENT}.tmp-{}", uuid::Uuid::new_v4().simple()));
    let text = format!("{name}\n{}\n", since.map(|t| t.to_rfc3339()).unwrap_or_default());
    std::fs::write(&temporary, text).map_err(SearchError::index)?;
    std::fs::rename(&temporary, root.join(CURRENT)).map_err(SearchError::index)
}

#[derive(Clone)]
pub struct TantivyIndex {
    root: PathBuf,
    live: Arc<RwLock<Arc<Generation>>>,
    fields: Fields,
    /// Bumped after every commit and swap, so cached results of older contents are never served.
    generation: Arc<std::sync::atomic::AtomicU64>,
    /// Tells this index's generations from another instance's.
    instance: String,
    synonyms: Arc<Synonyms>,
}

impl TantivyIndex {
    /// Opens the generation CURRENT names under `root` (a first, empty one if none), and removes
    /// generations left behind by earlier swaps.
    pub fn open(root: &Path, synonyms: Synonyms) -> Result<Self, SearchError> {
        std::fs::create_dir_all(root).map_err(SearchError::index)?;
        discard_other_formats(root)?;
        let name = match read_current(root) {
            Some((name, _)) => name,
            None => {
                write_current(root, FIRST_GENERATION, None)?;
                FIRST_GENERATION.to_owned()
            }
        };
        let live = Generation::open(root, &name)?;
        remove_generations_except(root, &[&name]);
        let (_, fields) = Fields::schema();
        Ok(Self {
            root: root.to_owned(),
            live: Arc::new(RwLock::new(Arc::new(live))),
            fields,
            generation: Arc::default(),
            instance: uuid::Uuid::new_v4().simple().to_string(),
            synonyms: Arc::new(synonyms),
        })
    }

    fn live(&self) -> Arc<Generation> {
        self.live.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Moves searches to `next`. The previous generation stays on disk until the swap after
    /// this one (searches and writes still under way may use it); older ones are removed.
    fn adopt(&self, next: Generation) {
        let name = next.name.clone();
        let previous =
            std::mem::replace(&mut *self.live.write().unwrap_or_else(PoisonError::into_inner), Arc::new(next));
        self.generation.fetch_add(1, std::sync::atomic::Ordering::Release);
        remove_generations_except(&self.root, &[&name, &previous.name]);
    }

    fn document(&self, source: &SearchDocument) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.id, &source.id);
        doc.add_text(f.title, &source.title);
        doc.add_text(f.spell, &source.title);
        doc.add_text(f.description, &source.description);
        if let Some(brand) = &source.brand {
            doc.add_text(f.brand_text, brand);
            doc.add_text(f.spell, brand);
            doc.add_facet(f.brand, facet(&[brand]));
        }
        if let Some(path) = &source.category_path {
            doc.add_text(f.category_text, path.replace('/', " "));
            doc.add_text(f.spell, path.replace('/', " "));
            doc.add_facet(f.category, category_facet(path));
        }
        for attribute in &source.attributes {
            doc.add_text(f.attributes_text, &attribute.value);
            doc.add_text(f.spell, &attribute.value);
            doc.add_facet(f.attributes, attribute_facet(&attribute.name, &attribute.value));
        }
        doc.add_facet(f.price_bucket, facet(&[&price_bucket(source.price_cents)]));
        doc.add_i64(f.price, source.price_cents);
        doc.add_f64(f.rating, source.rating.unwrap_or(0.0));
        doc.add_i64(f.popularity, source.popularity);
        doc.add_i64(f.created_at, source.created_at);
        doc.add_i64(f.available, i64::from(source.available));
        doc.add_u64(f.tie, tie_breaker(&source.id));
        doc
    }

    /// The text's tokens through the named analyzer.
    fn tokens(&self, analyzer: &str, text: &str) -> Vec<String> {
        let Some(mut analyzer) = self.live().index.tokenizers().get(analyzer) else { return Vec::new() };
        let mut stream = analyzer.token_stream(text);
        let mut tokens = Vec::new();
        while stream.advance() {
            tokens.push(stream.token().text.clone());
        }
        tokens
    }

    /// Every word (all but one of three or more) must match some field: itself exactly, at one
    /// or two edits when no searched field knows it, or (the last word) as a prefix, or one of
    /// its synonyms exactly (stemmed as the index stores words). Titles holding the words as a
    /// phrase rank higher.
    fn text_query(&self, searcher: &Searcher, words: &[String]) -> Box<dyn Query> {
        if words.is_empty() {
            return Box::new(AllQuery);
        }
        let last = words.len() - 1;
        let word_stems: Vec<Vec<String>> = words.iter().map(|word| self.tokens(ANALYZER, word)).collect();
        let per_word: Vec<(Occur, Box<dyn Query>)> = words
            .iter()
            .zip(&word_stems)
            .enumerate()
            .map(|(position, (word, own_stems))| {
                let mut variants: Vec<(Occur, Box<dyn Query>)> = Vec::new();
                let synonym_stems = self
                    .synonyms
                    .expand(word)
                    .into_iter()
                    .filter(|w| w != word)
                    .flat_map(|w| self.tokens(ANALYZER, &w));
                let stems =
                    own_stems.iter().map(|stem| (stem.clone(), true)).chain(synonym_stems.map(|stem| (stem, false)));
                for (stem, own) in stems.collect::<Vec<_>>() {
                    // Expanding a word the catalog holds would only add near-misses of a word that
                    // already matches, and walking each segment's dictionary with the automaton
                    // was the largest cost of an uncached search.
                    let distance = if own && !self.knows(searcher, &stem) { allowed_edits(&stem) } else { 0 };
                    for (field, boost) in self.fields.searched() {
                        let term = Term::from_field_text(field, &stem);
                        let exact = TermQuery::new(term.clone(), IndexRecordOption::WithFreqs);
                        variants.push((Occur::Should, Box::new(BoostQuery::new(Box::new(exact), boost))));
                        // Typo tolerance and type-ahead are for the shopper's own word; synonyms
                        // match exactly.
                        if !own || field == self.fields.description {
                            continue;
                        }
                        if distance > 0 {
                            let fuzzy = FuzzyTermQuery::new(term.clone(), distance, true);
                            variants.push((Occur::Should, Box::new(BoostQuery::new(Box::new(fuzzy), boost * 0.5))));
                        }
                        if position == last {
                            let prefix = FuzzyTermQuery::new_prefix(term, 0, true);
                            variants.push((Occur::Should, Box::new(BoostQuery::new(Box::new(prefix), boost * 0.5))));
                        }
                    }
                }
                (Occur::Should, Box::new(BooleanQuery::new(variants)) as Box<dyn Query>)
            })
            .collect();
        // Every word must match, except that a longer query may miss one ("leather tote bag"
        // still finds other tote bags); products matching more words score higher.
        let required = if words.len() >= 3 { words.len() - 1 } else { words.len() };
        let all_words: Box<dyn Query> = Box::new(BooleanQuery::with_minimum_required_clauses(per_word, required));
        let mut clauses = vec![(Occur::Must, all_words)];
        if let Some(phrase) = self.title_phrase(&word_stems) {
            clauses.push((Occur::Should, phrase));
        }
        Box::new(BooleanQuery::new(clauses))
    }

    /// Whether some searched field holds the stem.
    fn knows(&self, searcher: &Searcher, stem: &str) -> bool {
        self.fields
            .searched()
            .iter()
            .any(|(field, _)| searcher.doc_freq(&Term::from_field_text(*field, stem)).unwrap_or(0) > 0)
    }

    /// Proximity: titles holding the words next to each other, in order (one word apart at
    /// most), rank above titles that merely contain them ("tote bag" over "bag … tote").
    fn title_phrase(&self, word_stems: &[Vec<String>]) -> Option<Box<dyn Query>> {
        let terms: Vec<Term> = word_stems
            .iter()
            .filter_map(|stems| stems.first())
            .map(|stem| Term::from_field_text(self.fields.title, stem))
            .collect();
        if terms.len() < 2 {
            return None;
        }
        let mut phrase = PhraseQuery::new(terms);
        phrase.set_slop(1);
        Some(Box::new(BoostQuery::new(Box::new(phrase), PHRASE_BOOST)))
    }

    /// The query with each word the catalog does not know replaced by the most common known
    /// word within the same edit distance the search allowed; `None` when nothing changed.
    /// The last word is left alone when it begins a known word (type-ahead).
    fn corrected_query(&self, searcher: &Searcher, words: &[String]) -> Option<String> {
        let known = |word: &str| searcher.doc_freq(&Term::from_field_text(self.fields.spell, word)).unwrap_or(0) > 0;
        correct_spelling(
            words,
            |last| self.begins_a_word(searcher, last),
            |word, limit| if known(word) { None } else { self.closest_word(searcher, word, limit) },
        )
    }

    fn begins_a_word(&self, searcher: &Searcher, prefix: &str) -> bool {
        searcher.segment_readers().iter().any(|segment| {
            segment.inverted_index(self.fields.spell).ok().is_some_and(|inverted| {
                inverted
                    .terms()
                    .range()
                    .ge(prefix.as_bytes())
                    .into_stream()
                    .ok()
                    .is_some_and(|mut terms| terms.advance() && terms.key().starts_with(prefix.as_bytes()))
            })
        })
    }

    /// The known word within `limit` edits of `word` that most documents contain.
    fn closest_word(&self, searcher: &Searcher, word: &str, limit: usize) -> Option<String> {
        let mut best: Option<(usize, u64, String)> = None;
        for segment in searcher.segment_readers() {
            let Ok(inverted) = segment.inverted_index(self.fields.spell) else { continue };
            let Ok(mut terms) = inverted.terms().stream() else { continue };
            while terms.advance() {
                let Ok(candidate) = std::str::from_utf8(terms.key()) else { continue };
                if candidate.len().abs_diff(word.len()) > limit {
                    continue;
                }
                let distance = edit_distance(word, candidate);
                let frequency = u64::from(terms.value().doc_freq);
                if distance <= limit
                    && best.as_ref().is_none_or(|(d, f, _)| distance < *d || (distance == *d && frequency > *f))
                {
                    best = Some((distance, frequency, candidate.to_owned()));
                }
            }
        }
        best.map(|(_, _, candidate)| candidate)
    }

    /// Filter clauses by facet name (`brand`, `category`, `price`, or an attribute name), so a
    /// facet's counts can leave out its own clause.
    fn filter_clauses(&self, filter: &SearchFilter) -> Vec<(String, Box<dyn Query>)> {
        let f = &self.fields;
        let any_of = |facets: Vec<Facet>, field: Field| -> Box<dyn Query> {
            Box::new(BooleanQuery::new(
                facets
                    .into_iter()
                    .map(|facet| {
                        let query: Box<dyn Query> =
                            Box::new(TermQuery::new(Term::from_facet(field, &facet), IndexRecordOption::Basic));
                        (Occur::Should, query)
                    })
                    .collect(),
            ))
        };
        let mut clauses: Vec<(String, Box<dyn Query>)> = Vec::new();
        if !filter.brands.is_empty() {
            clauses.push(("brand".into(), any_of(filter.brands.iter().map(|b| facet(&[b])).collect(), f.brand)));
        }
        if let Some(path) = &filter.category_path {
            clauses.push(("category".into(), any_of(vec![category_facet(path)], f.category)));
        }
        if filter.min_price.is_some() || filter.max_price.is_some() {
            let lower =
                filter.min_price.map_or(Bound::Unbounded, |p| Bound::Included(Term::from_field_i64(f.price, p)));
            let upper =
                filter.max_price.map_or(Bound::Unbounded, |p| Bound::Included(Term::from_field_i64(f.price, p)));
            clauses.push(("price".into(), Box::new(RangeQuery::new(lower, upper))));
        }
        if filter.in_stock_only {
            let in_stock = RangeQuery::new(Bound::Included(Term::from_field_i64(f.available, 1)), Bound::Unbounded);
            clauses.push(("inStock".into(), Box::new(in_stock)));
        }
        if let Some(rating) = filter.min_rating {
            let rated = RangeQuery::new(Bound::Included(Term::from_field_f64(f.rating, rating)), Bound::Unbounded);
            clauses.push(("rating".into(), Box::new(rated)));
        }
        for (name, values) in &filter.attributes {
            let facets = values.iter().map(|value| attribute_facet(name, value)).collect();
            clauses.push((name.clone(), any_of(facets, f.attributes)));
        }
        clauses
    }

    fn search_blocking(&self, request: &SearchRequest) -> Result<SearchHits, SearchError> {
        let searcher = self.live().reader.searcher();
        let words = self.tokens(RAW, &request.text);
        let text = self.text_query(&searcher, &words);
        let filters = self.filter_clauses(&request.filter);
        let query_without = |left_out: Option<&str>| -> BooleanQuery {
            let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, text.box_clone())];
            clauses.extend(
                filters
                    .iter()
                    .filter(|(name, _)| Some(name.as_str()) != left_out)
                    .map(|(_, q)| (Occur::Must, q.box_clone())),
            );
            BooleanQuery::new(clauses)
        };
        let query = query_without(None);
        // One pass collects the page, the match count and every facet; a facet whose own
        // selection is active is then recounted without it.
        let f = self.fields;
        let category_root = request.filter.category_path.as_deref().map_or_else(Facet::root, category_facet);
        let mut category_collector = FacetCollector::for_field(searcher.schema().get_field_name(f.category));
        category_collector.add_facet(category_root.clone());
        let flat = |field: Field| FlatFacetCollector { field: searcher.schema().get_field_name(field).to_owned() };
        let mut collectors = MultiCollector::new();
        let page = self.add_top_documents(&mut collectors, request);
        let count = collectors.add_collector(Count);
        let brand_collected = collectors.add_collector(flat(f.brand));
        let category_collected = collectors.add_collector(category_collector);
        let price_collected = collectors.add_collector(flat(f.price_bucket));
        let attributes_collected = collectors.add_collector(flat(f.attributes));
        let mut fruits = searcher.search(&query, &collectors).map_err(SearchError::index)?;
        let mut product_ids = Vec::new();
        for address in page(&mut fruits) {
            let doc: TantivyDocument = searcher.doc(address).map_err(SearchError::index)?;
            if let Some(id) = doc.get_first(self.fields.id).and_then(|v| v.as_str()) {
                product_ids.push(id.to_owned());
            }
        }
        let total = count.extract(&mut fruits);
        let (brand_counts, category_counts, price_counts, attribute_counts) = (
            brand_collected.extract(&mut fruits),
            category_collected.extract(&mut fruits),
            price_collected.extract(&mut fruits),
            attributes_collected.extract(&mut fruits),
        );
        let active: Vec<&str> = filters.iter().map(|(name, _)| name.as_str()).collect();
        let counts_for =
            |name: &str, field: Field, unfiltered: Vec<FacetCount>| -> Result<Vec<FacetCount>, SearchError> {
                if active.contains(&name) {
                    searcher.search(&query_without(Some(name)), &flat(field)).map_err(SearchError::index)
                } else {
                    Ok(unfiltered)
                }
            };
        let mut facets = vec![
            ("brand".to_owned(), counts_for("brand", f.brand, brand_counts)?),
            // The category facet lists the selected category's children, whose counts that
            // selection cannot change: no recount.
            ("category".to_owned(), sorted_counts(&category_counts, &category_root)),
            ("price".to_owned(), counts_for("price", f.price_bucket, price_counts)?),
        ];
        let mut by_name: BTreeMap<String, Vec<FacetCount>> = BTreeMap::new();
        for pair in attribute_counts {
            if let Some((name, value)) = pair.value.split_once('=') {
                by_name
                    .entry(name.to_owned())
                    .or_default()
                    .push(FacetCount { value: value.to_owned(), count: pair.count });
            }
        }
        for (name, _) in &request.filter.attributes {
            let widened =
                searcher.search(&query_without(Some(name)), &flat(f.attributes)).map_err(SearchError::index)?;
            let values = widened
                .into_iter()
                .filter_map(|pair| {
                    let (pair_name, value) = pair.value.split_once('=')?;
                    (pair_name == name).then(|| FacetCount { value: value.to_owned(), count: pair.count })
                })
                .collect();
            by_name.insert(name.clone(), values);
        }
        facets.extend(by_name);
        let corrected_query = if total > 0 { self.corrected_query(&searcher, &words) } else { None };
        Ok(SearchHits { total: total as u64, product_ids, facets, corrected_query })
    }

    /// Adds the collector of the requested page, in the requested order, to `collectors`;
    /// the returned function takes the page's addresses out of the collected fruits. Every
    /// order ends with the `tie` field (see `tie_breaker`).
    fn add_top_documents(&self, collectors: &mut MultiCollector<'_>, request: &SearchRequest) -> PageOfAddresses {
        let top = || TopDocs::with_limit(request.limit).and_offset(request.offset);
        let mut by = |field: &'static str, order: Order| -> PageOfAddresses {
            addresses_of(collectors.add_collector(top().order_by(then_by_tie::<i64>(field, order))))
        };
        match request.sort {
            SearchSort::PriceAsc => by("price", Order::Asc),
            SearchSort::PriceDesc => by("price", Order::Desc),
            SearchSort::Newest => by("created_at", Order::Desc),
            SearchSort::Popularity => by("popularity", Order::Desc),
            SearchSort::Rating => {
                addresses_of(collectors.add_collector(top().order_by(then_by_tie::<f64>("rating", Order::Desc))))
            }
            SearchSort::Relevance => {
                let blended = top().tweak_score(|segment: &SegmentReader| {
                    let fast = segment.fast_fields();
                    let popularity = fast.i64("popularity").ok().map(|c| c.first_or_default_col(0));
                    let rating = fast.f64("rating").ok().map(|c| c.first_or_default_col(0.0));
                    let tie = fast.u64(TIE).ok().map(|c| c.first_or_default_col(0));
                    move |doc: tantivy::DocId, score: tantivy::Score| {
                        let popularity = popularity.as_ref().map_or(0, |c| c.get_val(doc)).max(0) as f32;
                        let rating = rating.as_ref().map_or(0.0, |c| c.get_val(doc)) as f32;
                        let blended = score * (1.0 + 0.1 * (1.0 + popularity).ln()) * (0.8 + 0.04 * rating);
                        (blended, tie.as_ref().map_or(0, |c| c.get_val(doc)))
                    }
                });
                addresses_of(collectors.add_collector(blended))
            }
        }
    }
}

/// Names the fast field holding each product's `tie_breaker`.
const TIE: &str = "tie";

/// A number of its own per product (the first 8 bytes of its id's SHA-256) that orders products
/// equal in the sort key. Without it tantivy orders them by where they sit in the index, which
/// re-indexing a product or merging segments changes, and pages would repeat or skip them.
fn tie_breaker(id: &str) -> u64 {
    let digest = Sha256::digest(id.as_bytes());
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Orders by a fast field, then by `tie_breaker`.
fn then_by_tie<T: FastValue>(
    field: &str,
    order: Order,
) -> impl SortKeyComputer<SortKey = (Option<T>, Option<u64>)> + Send + 'static {
    ((SortByStaticFastValue::<T>::for_field(field), order), (SortByStaticFastValue::<u64>::for_field(TIE), Order::Asc))
}

/// Takes a page's document addresses out of a MultiCollector's fruits.
type PageOfAddresses = Box<dyn FnOnce(&mut MultiFruit) -> Vec<DocAddress>>;

fn addresses_of<Key: Send + Sync + 'static>(page: FruitHandle<Vec<(Key, DocAddress)>>) -> PageOfAddresses {
    Box::new(move |fruits| page.extract(fruits).into_iter().map(|(_, address)| address).collect())
}

impl TantivyIndex {
    /// Adds or replaces the documents in one generation and makes them visible.
    async fn write(&self, target: &Generation, documents: Vec<SearchDocument>) -> Result<(), SearchError> {
        let docs: Vec<(String, TantivyDocument)> = documents.iter().map(|d| (d.id.clone(), self.document(d))).collect();
        let mut writer = target.writer().await?.lock_owned().await;
        let (reader, id_field) = (target.reader.clone(), self.fields.id);
        tokio::task::spawn_blocking(move || {
            for (id, doc) in docs {
                writer.delete_term(Term::from_field_text(id_field, &id));
                writer.add_document(doc).map_err(SearchError::index)?;
            }
            writer.commit().map_err(SearchError::index)?;
            reader.reload().map_err(SearchError::index)
        })
        .await
        .map_err(SearchError::index)?
    }
}

/// `<root>/FORMAT`: how this version writes indices. Version 2 leaves the dictionaries of facet
/// columns uncompressed (a search reads many of their blocks, and tantivy sets up a zstd
/// context for every compressed one), which this build can no longer read; version 3 adds the
/// `tie` field. An index in another format is dropped, and start-up rebuilds it from the store.
const FORMAT: &str = "FORMAT";
const FORMAT_VERSION: &str = "3";

fn discard_other_formats(root: &Path) -> Result<(), SearchError> {
    let format = std::fs::read_to_string(root.join(FORMAT)).unwrap_or_default();
    if format.trim() == FORMAT_VERSION {
        return Ok(());
    }
    if read_current(root).is_some() {
        tracing::info!("the search index was written in another format; it is rebuilt");
    }
    for entry in std::fs::read_dir(root).map_err(SearchError::index)?.flatten() {
        let path = entry.path();
        let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        removed.map_err(SearchError::index)?;
    }
    std::fs::write(root.join(FORMAT), FORMAT_VERSION).map_err(SearchError::index)
}

/// Deletes generation directories not in `keep` (and builds a crashed `shop reindex` left).
fn remove_generations_except(root: &Path, keep: &[&str]) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale_build = name.starts_with("build-")
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|at| at.elapsed().unwrap_or_default().as_secs() > 86_400);
        if (name.starts_with("gen-") && !keep.contains(&name.as_str())) || stale_build {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[async_trait]
impl SearchIndex for TantivyIndex {
    async fn search(&self, request: &SearchRequest) -> Result<SearchHits, SearchError> {
        let this = self.clone();
        let request = request.clone();
        tokio::task::spawn_blocking(move || this.search_blocking(&request)).await.map_err(SearchError::index)?
    }

    async fn upsert(&self, documents: Vec<SearchDocument>) -> Result<(), SearchError> {
        let live = self.live();
        self.write(&live, documents).await?;
        // A write that lands in a generation swapped out meanwhile changes nothing searchable.
        if Arc::ptr_eq(&live, &self.live()) {
            self.generation.fetch_add(1, std::sync::atomic::Ordering::Release);
        }
        Ok(())
    }

    async fn replace_all(
        &self,
        mut pages: BoxStream<'_, Result<Vec<SearchDocument>, SearchError>>,
        snapshot_started: DateTime<Utc>,
    ) -> Result<(), SearchError> {
        // Built under a name that start-up clean-up leaves alone, renamed once complete.
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (building, name) = (format!("build-{id}"), format!("gen-{id}"));
        let next = Generation::open(&self.root, &building)?;
        let built = async {
            while let Some(page) = pages.next().await {
                self.write(&next, page?).await?;
            }
            Ok::<_, SearchError>(())
        }
        .await;
        // Merges still running would be cut off by the rename below and leave many small
        // segments, each of which every search then visits.
        let built = match built {
            Ok(()) => next.finish_merges().await,
            Err(err) => Err(err),
        };
        if let Err(err) = built {
            let _ = std::fs::remove_dir_all(self.root.join(&building));
            return Err(err);
        }
        std::fs::rename(self.root.join(&building), self.root.join(&name)).map_err(SearchError::index)?;
        let next = Generation::open(&self.root, &name)?;
        write_current(&self.root, &name, Some(snapshot_started))?;
        self.adopt(next);
        Ok(())
    }

    async fn adopt_replacement(&self) -> Result<Option<DateTime<Utc>>, SearchError> {
        let Some((name, since)) = read_current(&self.root) else { return Ok(None) };
        if name == self.live().name {
            return Ok(None);
        }
        let root = self.root.clone();
        let next =
            tokio::task::spawn_blocking(move || Generation::open(&root, &name)).await.map_err(SearchError::index)??;
        self.adopt(next);
        Ok(Some(since.unwrap_or_else(Utc::now)))
    }

    fn generation(&self) -> String {
        format!("{}-{}", self.instance, self.generation.load(std::sync::atomic::Ordering::Acquire))
    }

    async fn document_count(&self) -> Result<u64, SearchError> {
        Ok(self.live().reader.searcher().num_docs())
    }
}
