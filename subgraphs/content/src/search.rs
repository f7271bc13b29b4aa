//! The full-text index of posts (tantivy), kept under `<data_dir>/search/`.
//!
//! Documents hold the post id (stored), the author and visibility (for the visibility filter)
//! and the body (indexed with positions for phrases, not stored: snippets are cut from the body
//! read back from the database, which is the source of truth anyway).
//!
//! Queries: bare words must all match, each either exactly (BM25-scored) or within a small edit
//! distance (1 for words of 4–7 characters, 2 from 8; a constant, smaller score so exact matches
//! rank first); `"quoted words"` must match as a phrase. The index records, in its commit
//! payload, the highest index queue position applied, for diagnostics; correctness on restart
//! comes from the queue itself (see [`crate::indexer`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::sync::OnceLock;

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, Occur, PhraseQuery, Query, TermQuery, TermSetQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TantivyDocument, TextFieldIndexing, TextOptions, Value,
    STORED, STRING,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, Term};

use levenshtein_automata::{Distance, LevenshteinAutomatonBuilder, DFA};

use crate::store::{PostRecord, Visibility};

/// The tokenizer name registered on the index.
const TOKENIZER: &str = "content";
/// Longest accepted search query, in characters.
pub const MAX_QUERY_CHARS: usize = 500;
/// Most words (terms plus phrase words) one query may use.
pub const MAX_QUERY_WORDS: usize = 16;
/// Snippet length, in characters.
const SNIPPET_CHARS: usize = 200;
/// BM25 multiplier of a typo variant one edit away (exact matches count fully).
const ONE_EDIT_BOOST: f32 = 0.6;
/// BM25 multiplier of a typo variant two edits away.
const TWO_EDITS_BOOST: f32 = 0.35;
/// Most typo variants one query word expands to (closest, then most frequent, first).
const MAX_VARIANTS: usize = 24;
/// Writer heap for the service (split across the writer's threads).
const WRITER_HEAP_BYTES: usize = 64 * 1024 * 1024;

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// tantivy failed (I/O, corrupt files, lock held by another process…).
    #[error("search index error: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// The directory could not be opened or created.
    #[error("search index directory: {0}")]
    Directory(String),
    /// The query cannot be run.
    #[error("{0}")]
    BadQuery(String),
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    author: Field,
    visibility: Field,
    body: Field,
}

/// The search index: one writer, one reader, reloaded after every commit.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    analyzer: TextAnalyzer,
}

/// One change to apply to the index.
#[derive(Debug, Clone)]
pub enum IndexChange {
    /// Insert or replace the post's document.
    Upsert(PostRecord),
    /// Remove the post's document (it is gone from the database).
    Delete(String),
}

/// Who is searching, for the visibility filter.
#[derive(Debug, Clone, Default)]
pub struct SearchScope {
    /// The signed-in caller, if any.
    pub viewer: Option<String>,
    /// The caller's connections (their connections-only posts are visible).
    pub connections: Vec<String>,
}

/// One result.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// The post id.
    pub post_id: String,
    /// BM25 score (typo variants weighted down).
    pub score: f32,
}

/// A page of results.
#[derive(Debug, Clone)]
pub struct SearchPage {
    /// Best first.
    pub hits: Vec<SearchHit>,
    /// Matches in total (all pages).
    pub total: usize,
    /// More results follow this page.
    pub has_next: bool,
    /// Makes snippets for these hits' bodies.
    pub highlighter: Highlighter,
}

/// A parsed search query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedQuery {
    /// Normalised bare words.
    pub terms: Vec<String>,
    /// Normalised words of each quoted phrase.
    pub phrases: Vec<Vec<String>>,
}

/// Cuts highlighted snippets out of post bodies for one query.
#[derive(Clone)]
pub struct Highlighter {
    analyzer: TextAnalyzer,
    body: Field,
    /// Every index term the query matched on (typo variants included).
    words: Vec<String>,
}

impl std::fmt::Debug for Highlighter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Highlighter")
            .field("words", &self.words)
            .finish()
    }
}

/// The edit distance a bare word tolerates: none under 4 characters, 1 under 8, else 2.
pub fn typo_distance(word: &str) -> u8 {
    match word.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// The optimal-string-alignment distance (adjacent transpositions cost 1, like the Levenshtein
/// automaton), or `None` once it exceeds `max`.
fn edit_distance(a: &str, b: &str, max: u8) -> Option<u8> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let max = usize::from(max);
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let width = b.len() + 1;
    let mut prev2 = vec![0usize; width];
    let mut prev: Vec<usize> = (0..width).collect();
    let mut cur = vec![0usize; width];
    for i in 1..=a.len() {
        cur[0] = i;
        let mut row_min = cur[0];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(prev2[j - 2] + 1);
            }
            cur[j] = d;
            row_min = row_min.min(d);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[b.len()];
    (d <= max).then(|| u8::try_from(d).unwrap_or(u8::MAX))
}

/// Levenshtein automaton builders for distances 1 and 2 (transpositions cost 1). Building one
/// takes milliseconds, so they are built once per process.
fn automaton_builder(distance: u8) -> &'static LevenshteinAutomatonBuilder {
    static BUILDERS: OnceLock<[LevenshteinAutomatonBuilder; 2]> = OnceLock::new();
    let builders = BUILDERS.get_or_init(|| {
        [
            LevenshteinAutomatonBuilder::new(1, true),
            LevenshteinAutomatonBuilder::new(2, true),
        ]
    });
    &builders[usize::from(distance.clamp(1, 2)) - 1]
}

/// A Levenshtein DFA as an FST automaton, to stream matching terms out of a term dictionary.
struct DfaAutomaton(DFA);

impl tantivy_fst::Automaton for DfaAutomaton {
    type State = u32;

    fn start(&self) -> u32 {
        self.0.initial_state()
    }

    fn is_match(&self, state: &u32) -> bool {
        matches!(self.0.distance(*state), Distance::Exact(_))
    }

    fn can_match(&self, state: &u32) -> bool {
        *state != levenshtein_automata::SINK_STATE
    }

    fn accept(&self, state: &u32, byte: u8) -> u32 {
        self.0.transition(*state, byte)
    }
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let id = builder.add_text_field("id", STRING | STORED);
    let author = builder.add_text_field("author", STRING);
    let visibility = builder.add_text_field("visibility", STRING);
    let body_options = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let body = builder.add_text_field("body", body_options);
    (
        builder.build(),
        Fields {
            id,
            author,
            visibility,
            body,
        },
    )
}

impl Highlighter {
    /// An HTML snippet of `body` with matched words in `<b>…</b>` (text HTML-escaped). Falls
    /// back to the start of the body when nothing in it matches (e.g. a phrase split oddly).
    pub fn snippet(&self, body: &str) -> String {
        let terms: BTreeMap<String, f32> = self.words.iter().map(|w| (w.clone(), 1.0)).collect();
        let generator =
            SnippetGenerator::new(terms, self.analyzer.clone(), self.body, SNIPPET_CHARS);
        let snippet = generator.snippet(body);
        if snippet.is_empty() {
            let start: String = body.chars().take(SNIPPET_CHARS).collect();
            return escape_html(&start);
        }
        snippet.to_html()
    }
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

impl SearchIndex {
    /// Opens (or creates) the index in `dir`.
    pub fn open(dir: &Path) -> Result<SearchIndex, SearchError> {
        Self::open_with_heap(dir, WRITER_HEAP_BYTES)
    }

    /// Opens (or creates) the index in `dir` with a writer heap of `heap_bytes` (bulk loads
    /// go faster with more).
    pub fn open_with_heap(dir: &Path, heap_bytes: usize) -> Result<SearchIndex, SearchError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| SearchError::Directory(format!("{}: {e}", dir.display())))?;
        let directory = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| SearchError::Directory(format!("{}: {e}", dir.display())))?;
        let (schema, _) = schema();
        let index = Index::open_or_create(directory, schema)?;
        Self::from_index(index, heap_bytes)
    }

    /// An index in memory (tests, benchmarks), with a writer heap of `heap_bytes`.
    pub fn in_memory(heap_bytes: usize) -> Result<SearchIndex, SearchError> {
        let (schema, _) = schema();
        Self::from_index(Index::create_in_ram(schema), heap_bytes)
    }

    fn from_index(index: Index, heap_bytes: usize) -> Result<SearchIndex, SearchError> {
        let schema = index.schema();
        let field = |name: &str| {
            schema.get_field(name).map_err(|_| {
                SearchError::Directory(format!("index has no field {name:?}; run reindex"))
            })
        };
        let fields = Fields {
            id: field("id")?,
            author: field("author")?,
            visibility: field("visibility")?,
            body: field("body")?,
        };
        index.tokenizers().register(TOKENIZER, analyzer());
        let writer = index.writer(heap_bytes)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SearchIndex {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            analyzer: analyzer(),
        })
    }

    fn document(&self, post: &PostRecord) -> TantivyDocument {
        doc!(
            self.fields.id => post.id.as_str(),
            self.fields.author => post.author_id.as_str(),
            self.fields.visibility => post.visibility.as_str(),
            self.fields.body => post.body.as_str(),
        )
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, IndexWriter> {
        // A panic while holding the writer leaves nothing half-done that a commit would
        // publish (uncommitted operations are discarded on rollback), so keep going.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `changes` and commits with `position` in the commit payload.
    pub fn apply(&self, changes: &[IndexChange], position: i64) -> Result<(), SearchError> {
        let mut writer = self.lock_writer();
        for change in changes {
            match change {
                IndexChange::Upsert(post) => {
                    writer.delete_term(Term::from_field_text(self.fields.id, &post.id));
                    writer.add_document(self.document(post))?;
                }
                IndexChange::Delete(id) => {
                    writer.delete_term(Term::from_field_text(self.fields.id, id));
                }
            }
        }
        self.commit(&mut writer, position)
    }

    fn commit(&self, writer: &mut IndexWriter, position: i64) -> Result<(), SearchError> {
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&position.to_string());
        prepared.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    /// Removes every document (the first step of a rebuild; nothing is visible until commit).
    pub fn clear(&self) -> Result<(), SearchError> {
        self.lock_writer().delete_all_documents()?;
        Ok(())
    }

    /// Adds documents for posts known not to be indexed (after [`SearchIndex::clear`], or
    /// fresh ids) without committing; call [`SearchIndex::commit_with`] when done.
    pub fn add_new(&self, posts: &[PostRecord]) -> Result<(), SearchError> {
        let writer = self.lock_writer();
        for post in posts {
            writer.add_document(self.document(post))?;
        }
        Ok(())
    }

    /// Commits what was added, recording `position`.
    pub fn commit_with(&self, position: i64) -> Result<(), SearchError> {
        let mut writer = self.lock_writer();
        self.commit(&mut writer, position)
    }

    /// Rewrites every segment holding deleted documents without them and removes the files no
    /// longer used; returns how many segments it rewrote. Tantivy only marks a deletion: the
    /// document's words and stored body stay in its segment until the segment is merged, so
    /// an erased post's text would otherwise stay on disk for as long as the merge policy
    /// leaves the segment alone. Blocks (a merge of the affected segments).
    pub fn purge_deleted(&self) -> Result<usize, SearchError> {
        let mut writer = self.lock_writer();
        let with_deletes: Vec<tantivy::index::SegmentId> = self
            .index
            .searchable_segment_metas()?
            .into_iter()
            .filter(|meta| meta.has_deletes())
            .map(|meta| meta.id())
            .collect();
        for id in &with_deletes {
            writer.merge(std::slice::from_ref(id)).wait()?;
        }
        // Searchers opened on the old segments keep their files; reload first so ours does not.
        self.reader.reload()?;
        writer.garbage_collect_files().wait()?;
        Ok(with_deletes.len())
    }

    /// Whether the index files in `dir` still hold `word` as a term of a post body, deleted
    /// documents included (tantivy keeps a deleted document's terms in its segment until the
    /// segment is merged). Opens the index read-only, without the writer lock, so it can look
    /// at a running service's index; for erasure checks.
    pub fn files_hold_word(dir: &Path, word: &str) -> Result<bool, SearchError> {
        let index = Index::open_in_dir(dir)?;
        let body = index
            .schema()
            .get_field("body")
            .map_err(|_| SearchError::Directory(format!("{}: no body field", dir.display())))?;
        let reader: IndexReader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let term = word.to_lowercase();
        for segment in reader.searcher().segment_readers() {
            let terms = segment.inverted_index(body)?;
            let found = terms
                .terms()
                .get(term.as_bytes())
                .map_err(|e| SearchError::Directory(format!("{}: {e}", dir.display())))?;
            if found.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// How many documents the index holds (as of the last reload).
    pub fn document_count(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The queue position recorded by the last commit, if any.
    pub fn applied_position(&self) -> Result<Option<i64>, SearchError> {
        let metas = self.index.load_metas()?;
        Ok(metas.payload.and_then(|p| p.parse().ok()))
    }

    /// Segments searchable now (fewer is faster; merges run in the background).
    pub fn segment_count(&self) -> usize {
        self.reader.searcher().segment_readers().len()
    }

    /// Documents searchable now.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Every indexed post id (for consistency checks; reads the whole index).
    pub fn all_ids(&self) -> Result<Vec<String>, SearchError> {
        let searcher = self.reader.searcher();
        let mut ids = Vec::new();
        for segment in searcher.segment_readers() {
            let store = segment
                .get_store_reader(1)
                .map_err(|e| SearchError::Directory(e.to_string()))?;
            for doc_id in 0..segment.max_doc() {
                if segment.is_deleted(doc_id) {
                    continue;
                }
                let doc: TantivyDocument = store.get(doc_id)?;
                if let Some(id) = doc.get_first(self.fields.id).and_then(|v| v.as_str()) {
                    ids.push(id.to_owned());
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Splits a query into bare words and quoted phrases, normalised like the index.
    pub fn parse_query(&self, text: &str) -> Result<ParsedQuery, SearchError> {
        let chars = text.chars().count();
        if chars > MAX_QUERY_CHARS {
            return Err(SearchError::BadQuery(format!(
                "query is {chars} characters; the limit is {MAX_QUERY_CHARS}"
            )));
        }
        let mut parsed = ParsedQuery::default();
        // Odd pieces of a split on '"' are inside quotes; an unclosed quote runs to the end.
        for (i, piece) in text.split('"').enumerate() {
            let words = self.tokens(piece);
            if i % 2 == 1 {
                if !words.is_empty() {
                    parsed.phrases.push(words);
                }
            } else {
                parsed.terms.extend(words);
            }
        }
        let mut seen = HashSet::new();
        parsed.terms.retain(|t| seen.insert(t.clone()));
        let words = parsed.terms.len() + parsed.phrases.iter().map(Vec::len).sum::<usize>();
        if words == 0 {
            return Err(SearchError::BadQuery(
                "query has no searchable words".into(),
            ));
        }
        if words > MAX_QUERY_WORDS {
            return Err(SearchError::BadQuery(format!(
                "query has {words} words; the limit is {MAX_QUERY_WORDS}"
            )));
        }
        Ok(parsed)
    }

    fn tokens(&self, text: &str) -> Vec<String> {
        let mut analyzer = self.analyzer.clone();
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while let Some(token) = stream.next() {
            out.push(token.text.clone());
        }
        out
    }

    /// The index terms within a word's typo distance (itself excluded), with their distance:
    /// closest first, then the most frequent.
    fn variants(
        &self,
        searcher: &tantivy::Searcher,
        word: &str,
    ) -> Result<Vec<(String, u8)>, SearchError> {
        let distance = typo_distance(word);
        if distance == 0 {
            return Ok(Vec::new());
        }
        let mut found: HashMap<String, u64> = HashMap::new();
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(self.fields.body)?;
            let automaton = DfaAutomaton(automaton_builder(distance).build_dfa(word));
            let mut stream = inverted
                .terms()
                .search(automaton)
                .into_stream()
                .map_err(|e| SearchError::Directory(e.to_string()))?;
            while let Some((bytes, info)) = stream.next() {
                if let Ok(term) = std::str::from_utf8(bytes) {
                    if term != word {
                        *found.entry(term.to_owned()).or_default() += u64::from(info.doc_freq);
                    }
                }
            }
        }
        let mut variants: Vec<(String, u8, u64)> = found
            .into_iter()
            .filter_map(|(term, freq)| {
                edit_distance(word, &term, distance).map(|d| (term, d, freq))
            })
            .collect();
        variants.sort_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
        variants.truncate(MAX_VARIANTS);
        Ok(variants.into_iter().map(|(t, d, _)| (t, d)).collect())
    }

    fn build_query(
        &self,
        parsed: &ParsedQuery,
        variants: &[Vec<(String, u8)>],
        scope: &SearchScope,
    ) -> Box<dyn Query> {
        let body = self.fields.body;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (word, variants) in parsed.terms.iter().zip(variants) {
            let term_query = |text: &str| -> Box<dyn Query> {
                Box::new(TermQuery::new(
                    Term::from_field_text(body, text),
                    IndexRecordOption::WithFreqs,
                ))
            };
            // Each word must match, exactly or as one of its typo variants; every variant is
            // a BM25-scored term, weighted down by its distance.
            let mut alternatives: Vec<(Occur, Box<dyn Query>)> =
                vec![(Occur::Should, term_query(word))];
            for (variant, distance) in variants {
                let boost = if *distance == 1 {
                    ONE_EDIT_BOOST
                } else {
                    TWO_EDITS_BOOST
                };
                alternatives.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(term_query(variant), boost)),
                ));
            }
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(alternatives))));
        }
        for phrase in &parsed.phrases {
            let terms: Vec<Term> = phrase
                .iter()
                .map(|w| Term::from_field_text(body, w))
                .collect();
            let query: Box<dyn Query> = if terms.len() == 1 {
                Box::new(TermQuery::new(
                    terms[0].clone(),
                    IndexRecordOption::WithFreqs,
                ))
            } else {
                Box::new(PhraseQuery::new(terms))
            };
            clauses.push((Occur::Must, query));
        }
        clauses.push((Occur::Must, self.visibility_filter(scope)));
        Box::new(BooleanQuery::new(clauses))
    }

    /// Public posts, plus (signed in) the caller's own and their connections' connections-only
    /// posts. Scores nothing: it only filters.
    fn visibility_filter(&self, scope: &SearchScope) -> Box<dyn Query> {
        let public: Box<dyn Query> = Box::new(TermQuery::new(
            Term::from_field_text(self.fields.visibility, Visibility::Public.as_str()),
            IndexRecordOption::Basic,
        ));
        let Some(viewer) = &scope.viewer else {
            return Box::new(ConstScoreQuery::new(public, 0.0));
        };
        let mut allowed: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Should, public),
            (
                Occur::Should,
                Box::new(TermQuery::new(
                    Term::from_field_text(self.fields.author, viewer),
                    IndexRecordOption::Basic,
                )),
            ),
        ];
        if !scope.connections.is_empty() {
            let authors = TermSetQuery::new(
                scope
                    .connections
                    .iter()
                    .map(|id| Term::from_field_text(self.fields.author, id)),
            );
            let connections_only = TermQuery::new(
                Term::from_field_text(self.fields.visibility, Visibility::Connections.as_str()),
                IndexRecordOption::Basic,
            );
            allowed.push((
                Occur::Should,
                Box::new(BooleanQuery::new(vec![
                    (Occur::Must, Box::new(connections_only) as Box<dyn Query>),
                    (Occur::Must, Box::new(authors)),
                ])),
            ));
        }
        Box::new(ConstScoreQuery::new(
            Box::new(BooleanQuery::new(allowed)),
            0.0,
        ))
    }

    /// Runs a parsed query for `scope`: `first` hits after skipping `offset`.
    pub fn search(
        &self,
        parsed: &ParsedQuery,
        scope: &SearchScope,
        first: usize,
        offset: usize,
    ) -> Result<SearchPage, SearchError> {
        let searcher = self.reader.searcher();
        let variants = parsed
            .terms
            .iter()
            .map(|word| self.variants(&searcher, word))
            .collect::<Result<Vec<_>, _>>()?;
        let query = self.build_query(parsed, &variants, scope);
        let collector = (TopDocs::with_limit(first + 1).and_offset(offset), Count);
        let (top, total) = searcher.search(query.as_ref(), &collector)?;
        let has_next = top.len() > first;
        let mut hits = Vec::with_capacity(first);
        for (score, address) in top.into_iter().take(first) {
            let doc: TantivyDocument = searcher.doc(address)?;
            if let Some(id) = doc.get_first(self.fields.id).and_then(|v| v.as_str()) {
                hits.push(SearchHit {
                    post_id: id.to_owned(),
                    score,
                });
            }
        }
        let mut words: Vec<String> = parsed.terms.clone();
        words.extend(parsed.phrases.iter().flatten().cloned());
        words.extend(variants.into_iter().flatten().map(|(t, _)| t));
        Ok(SearchPage {
            hits,
            total,
            has_next,
            highlighter: Highlighter {
                analyzer: self.analyzer.clone(),
                body: self.fields.body,
                words,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn purging_removes_deleted_posts_words_from_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let index = SearchIndex::open_with_heap(dir.path(), 15_000_000).unwrap();
        // Both in one commit, so one segment: deleting one marks it and keeps its words.
        let keep = post("p1", "a", "tidal energy notes", Visibility::Public);
        let erase = post("p2", "b", "xanthous gribble notes", Visibility::Public);
        index
            .apply(&[IndexChange::Upsert(keep), IndexChange::Upsert(erase)], 1)
            .unwrap();
        index.apply(&[IndexChange::Delete("p2".into())], 2).unwrap();
        assert_eq!(index.num_docs(), 1);
        let holds = |word| SearchIndex::files_hold_word(dir.path(), word).unwrap();
        assert!(
            holds("gribble"),
            "a deletion alone leaves the words on disk"
        );
        assert_eq!(index.purge_deleted().unwrap(), 1);
        assert!(!holds("gribble") && !holds("xanthous"));
        assert!(holds("tidal") && holds("notes"));
        assert_eq!(index.num_docs(), 1);
        assert_eq!(index.applied_position().unwrap(), Some(2));
        // Nothing left to purge.
        assert_eq!(index.purge_deleted().unwrap(), 0);
    }

    fn post(id: &str, author: &str, body: &str, visibility: Visibility) -> PostRecord {
        PostRecord {
            id: id.into(),
            author_id: author.into(),
            body: body.into(),
            visibility,
            created_at: Utc::now(),
            edited_at: None,
        }
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("search", "serach", 1), Some(1));
        assert_eq!(edit_distance("search", "seach", 1), Some(1));
        assert_eq!(edit_distance("search", "sxaxch", 1), None);
        assert_eq!(edit_distance("federation", "fedaretion", 2), Some(2));
        assert_eq!(edit_distance("same", "same", 2), Some(0));
        assert_eq!(typo_distance("cat"), 0);
        assert_eq!(typo_distance("rust"), 1);
        assert_eq!(typo_distance("gateways"), 2);
    }

    #[test]
    fn parse_splits_phrases_and_rejects_empty() {
        let index = SearchIndex::in_memory(15_000_000).unwrap();
        let parsed = index.parse_query(r#"Rust "Query Planner" rust"#).unwrap();
        assert_eq!(parsed.terms, vec!["rust"]);
        assert_eq!(parsed.phrases, vec![vec!["query", "planner"]]);
        assert!(matches!(
            index.parse_query(" \"\" !!"),
            Err(SearchError::BadQuery(_))
        ));
    }

    #[test]
    fn fuzzy_phrase_visibility_and_snippets() {
        let index = SearchIndex::in_memory(15_000_000).unwrap();
        index
            .apply(
                &[
                    IndexChange::Upsert(post(
                        "1",
                        "a",
                        "The federation gateway plans queries",
                        Visibility::Public,
                    )),
                    IndexChange::Upsert(post(
                        "2",
                        "b",
                        "Gateway gateway gateway <script>",
                        Visibility::Public,
                    )),
                    IndexChange::Upsert(post(
                        "3",
                        "c",
                        "A private gateway note",
                        Visibility::Connections,
                    )),
                ],
                3,
            )
            .unwrap();
        assert_eq!(index.applied_position().unwrap(), Some(3));
        let anon = SearchScope::default();
        let page = index
            .search(&index.parse_query("gatway").unwrap(), &anon, 10, 0)
            .unwrap();
        let ids: Vec<_> = page.hits.iter().map(|h| h.post_id.as_str()).collect();
        assert_eq!(ids.len(), 2, "{ids:?}");
        let snippet = page.highlighter.snippet("Gateway gateway gateway <script>");
        assert!(snippet.contains("<b>Gateway</b>"), "{snippet}");
        assert!(snippet.contains("&lt;script"), "escaped: {snippet}");

        let page = index
            .search(
                &index.parse_query("\"gateway plans\"").unwrap(),
                &anon,
                10,
                0,
            )
            .unwrap();
        assert_eq!(page.hits.len(), 1);
        assert_eq!(page.hits[0].post_id, "1");

        let friend = SearchScope {
            viewer: Some("x".into()),
            connections: vec!["c".into()],
        };
        let page = index
            .search(&index.parse_query("gateway").unwrap(), &friend, 10, 0)
            .unwrap();
        assert_eq!(page.total, 3);
        assert_eq!(page.hits[0].post_id, "2", "most occurrences ranks first");

        index.apply(&[IndexChange::Delete("2".into())], 4).unwrap();
        let page = index
            .search(&index.parse_query("gateway").unwrap(), &anon, 10, 0)
            .unwrap();
        assert_eq!(page.total, 1);
    }
}
