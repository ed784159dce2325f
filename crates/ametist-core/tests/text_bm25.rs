//! The BM25 index: scores against an independent reference, collection-wide statistics
//! across partitions, writes, the `match: {text}` helper, and snapshots.

use ametist_core::text::{Bm25Params, CorpusStats, Language, TextIndex, TextIndexConfig, TokenizerConfig};

const CORPUS: [&str; 10] = [
    "The quick brown fox jumps over the lazy dog",
    "A quick brown dog outpaces a quick fox",
    "Lazy dogs sleep all day",
    "The fox the fox the fox",
    "Rust is a systems programming language",
    "Vector databases index embeddings for nearest neighbour search",
    "Full text search ranks documents with BM25",
    "The brown bear and the brown fox are friends",
    "Search engines use inverted indexes for text search",
    "dog",
];

const QUERIES: [&str; 8] = [
    "quick fox",
    "brown dog",
    "the",
    "text search",
    "search search",
    "lazy",
    "rust language unknownword",
    "fox dog bear",
];

// Produced by tests/data/bm25_reference.py: rank_bm25 0.2.2's BM25Okapi (k1 = 1.2,
// b = 0.75) with Lucene's idf ln(1 + (N - n + 0.5)/(n + 0.5)) plugged in.
const EXPECTED: [[f64; 10]; 8] = [
    // 'quick fox'
    [
        2.0829105548,
        2.7598746142,
        0.0000000000,
        1.4367366949,
        0.0000000000,
        0.0000000000,
        0.0000000000,
        0.7837522601,
        0.0000000000,
        0.0000000000,
    ],
    // 'brown dog'
    [
        2.0082391630,
        2.1218416298,
        0.0000000000,
        0.0000000000,
        0.0000000000,
        0.0000000000,
        0.0000000000,
        1.4359208988,
        0.0000000000,
        1.7564256155,
    ],
    // 'the'
    [
        1.4359208988,
        0.0000000000,
        0.0000000000,
        1.8407033986,
        0.0000000000,
        0.0000000000,
        0.0000000000,
        1.4359208988,
        0.0000000000,
        0.0000000000,
    ],
    // 'text search'
    [
        0.0000000000,
        0.0000000000,
        0.0000000000,
        0.0000000000,
        0.0000000000,
        1.0609208149,
        2.5794870819,
        0.0000000000,
        2.8657276344,
        0.0000000000,
    ],
    // 'search search'
    [
        0.0000000000,
        0.0000000000,
        0.0000000000,
        0.0000000000,
        0.0000000000,
        2.1218416298,
        2.2490673105,
        0.0000000000,
        2.9861565972,
        0.0000000000,
    ],
    // 'lazy'
    [
        1.2991582947,
        0.0000000000,
        1.6532059753,
        0.0000000000,
        0.0000000000,
        0.0000000000,
        0.0000000000,
        0.0000000000,
        0.0000000000,
        0.0000000000,
    ],
    // 'rust language unknownword'
    [
        0.0000000000,
        0.0000000000,
        0.0000000000,
        0.0000000000,
        4.1627810953,
        0.0000000000,
        0.0000000000,
        0.0000000000,
        0.0000000000,
        0.0000000000,
    ],
    // 'fox dog bear'
    [
        1.7878718416,
        1.8890085266,
        0.0000000000,
        1.4367366949,
        0.0000000000,
        0.0000000000,
        0.0000000000,
        2.5308326068,
        0.0000000000,
        1.7564256155,
    ],
];

fn index_of(docs: &[(u32, &str)], config: TextIndexConfig) -> TextIndex {
    let mut index = TextIndex::new(config).unwrap();
    for &(slot, text) in docs {
        index.add(slot, text);
    }
    index
}

fn corpus_index() -> TextIndex {
    let docs: Vec<(u32, &str)> = CORPUS.iter().enumerate().map(|(i, t)| (i as u32, *t)).collect();
    index_of(&docs, TextIndexConfig::default())
}

#[test]
fn scores_match_the_reference() {
    let index = corpus_index();
    for (q, expected) in QUERIES.iter().zip(EXPECTED) {
        let terms = index.tokenize(q);
        let stats = index.term_stats(&terms);
        let hits = index.search(&terms, &stats, 100, None);
        // Exactly the documents with a positive reference score, best first.
        let want: Vec<usize> = (0..CORPUS.len()).filter(|&d| expected[d] > 0.0).collect();
        let mut got: Vec<usize> = hits.iter().map(|h| h.0 as usize).collect();
        assert!(hits.windows(2).all(|w| w[0].1 > w[1].1 || (w[0].1 == w[1].1 && w[0].0 < w[1].0)), "{q}: order");
        got.sort_unstable();
        assert_eq!(got, want, "{q}: matching documents");
        for &(slot, score) in &hits {
            let e = expected[slot as usize];
            assert!((score as f64 - e).abs() < 1e-4, "{q}: doc {slot} scored {score}, reference {e}");
        }
        // `score` re-scores bit for bit; a document without the terms scores 0.
        for d in 0..CORPUS.len() as u32 {
            let s = index.score(d, &terms, &stats).unwrap();
            match hits.iter().find(|h| h.0 == d) {
                Some(h) => assert_eq!(s.to_bits(), h.1.to_bits()),
                None => assert_eq!(s, 0.0),
            }
        }
    }
    assert_eq!(index.score(99, &index.tokenize("fox"), &CorpusStats::default()), None);
}

#[test]
fn k_and_accept_limit_the_answer() {
    let index = corpus_index();
    let terms = index.tokenize("fox dog bear");
    let stats = index.term_stats(&terms);
    let all = index.search(&terms, &stats, 100, None);
    assert_eq!(all.len(), 5);
    assert_eq!(index.search(&terms, &stats, 2, None), all[..2]);
    assert!(index.search(&terms, &stats, 0, None).is_empty());
    let calls = std::cell::Cell::new(0);
    let even = |s: u32| {
        calls.set(calls.get() + 1);
        s & 1 == 0
    };
    let filtered = index.search(&terms, &stats, 100, Some(&even));
    assert_eq!(filtered, all.iter().copied().filter(|h| h.0 % 2 == 0).collect::<Vec<_>>());
    assert_eq!(calls.get(), 5, "accept is called once per candidate");
    assert!(index.search(&index.tokenize("nothing here"), &stats, 10, None).is_empty());
    assert!(index.search(&[], &stats, 10, None).is_empty());
}

#[test]
fn split_across_five_partitions_scores_identically() {
    // A larger corpus, with stemming and stop words, dealt to 5 partitions by slot.
    let words = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "running",
        "runs",
        "search",
        "index",
        "vector",
        "the",
        "and",
        "partition",
        "coordinator",
        "score",
        "query",
        "token",
        "rust",
        "actor",
        "graph",
        "filter",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let docs: Vec<String> = (0..400)
        .map(|_| {
            let len = 1 + next() % 30;
            (0..len).map(|_| words[(next() % words.len() as u64) as usize]).collect::<Vec<_>>().join(" ")
        })
        .collect();
    let config = TextIndexConfig {
        tokenizer: TokenizerConfig {
            stemmer: Some(Language::English),
            stopwords: Some(ametist_core::text::StopwordsConfig::Language(Language::English)),
            ..Default::default()
        },
        bm25: Bm25Params { k1: 1.5, b: 0.6 },
    };
    let whole =
        index_of(&docs.iter().enumerate().map(|(i, d)| (i as u32, d.as_str())).collect::<Vec<_>>(), config.clone());
    // Partition p holds the documents with i % 5 == p, at local slots i / 5.
    let parts: Vec<TextIndex> = (0..5)
        .map(|p| {
            let mine: Vec<(u32, &str)> = docs
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 5 == p)
                .map(|(i, d)| ((i / 5) as u32, d.as_str()))
                .collect();
            index_of(&mine, config.clone())
        })
        .collect();
    for q in ["alpha beta", "running search", "the gamma gamma", "vector index coordinator rust", "missing", "runs"] {
        let terms = whole.tokenize(q);
        let global_whole = whole.term_stats(&terms);
        let global = CorpusStats::sum(parts.iter().map(|p| p.term_stats(&terms)).collect::<Vec<_>>().iter());
        assert_eq!(global, global_whole, "{q}: summed stats equal the whole corpus' stats");
        let want = whole.search(&terms, &global_whole, docs.len(), None);
        let mut got: Vec<(u32, f32)> = parts
            .iter()
            .enumerate()
            .flat_map(|(p, idx)| {
                idx.search(&terms, &global, docs.len(), None).into_iter().map(move |(s, v)| (s * 5 + p as u32, v))
            })
            .collect();
        got.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(got.len(), want.len(), "{q}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((g.0, g.1.to_bits()), (w.0, w.1.to_bits()), "{q}: identical bit for bit");
        }
    }
    // Without the global stats each partition scores differently: the point of the protocol.
    let terms = whole.tokenize("alpha");
    let local = parts[0].search(&terms, &parts[0].term_stats(&terms), 1000, None);
    let global = CorpusStats::sum(parts.iter().map(|p| p.term_stats(&terms)).collect::<Vec<_>>().iter());
    let right = parts[0].search(&terms, &global, 1000, None);
    assert_ne!(local, right);
    // Stats passed through serde (as between actors) are unchanged.
    let json = serde_json::to_string(&global).unwrap();
    assert_eq!(serde_json::from_str::<CorpusStats>(&json).unwrap(), global);
}

#[test]
fn remove_and_update_are_reflected_in_stats_and_scores() {
    let mut index = corpus_index();
    let fox = index.tokenize("fox");
    let before = index.term_stats(&fox);
    assert_eq!((before.doc_count, before.doc_freq["fox"]), (10, 4));
    let total_before = before.total_doc_len;
    // Remove the document "The fox the fox the fox" (6 terms).
    assert!(index.remove(3));
    assert!(!index.remove(3), "a second remove finds nothing");
    assert!(!index.remove(1000));
    let after = index.term_stats(&fox);
    assert_eq!((after.doc_count, after.total_doc_len, after.doc_freq["fox"]), (9, total_before - 6, 3));
    assert!(!index.contains(3));
    assert!(index.search(&fox, &after, 10, None).iter().all(|h| h.0 != 3));
    // The scores equal those of an index built without that document from the start.
    let docs: Vec<(u32, &str)> =
        CORPUS.iter().enumerate().filter(|(i, _)| *i != 3).map(|(i, t)| (i as u32, *t)).collect();
    let fresh = index_of(&docs, TextIndexConfig::default());
    assert_eq!(index.search(&fox, &after, 10, None), fresh.search(&fox, &fresh.term_stats(&fox), 10, None));
    // Update: slot 9 "dog" becomes a fox document; add on an occupied slot is the same.
    index.update(9, "fox fox");
    let s = index.term_stats(&index.tokenize("fox dog"));
    assert_eq!((s.doc_count, s.doc_freq["fox"], s.doc_freq["dog"]), (9, 4, 2));
    assert_eq!(index.doc_len(9), Some(2));
    let mut docs: Vec<(u32, &str)> = docs.into_iter().filter(|d| d.0 != 9).collect();
    docs.push((9, "fox fox"));
    let fresh = index_of(&docs, TextIndexConfig::default());
    let q = index.tokenize("fox dog quick");
    assert_eq!(index.search(&q, &index.term_stats(&q), 10, None), fresh.search(&q, &fresh.term_stats(&q), 10, None));
    // Re-adding the removed slot (a reused slot: postings insert in the middle).
    index.add(3, "The fox the fox the fox");
    let all: Vec<(u32, &str)> =
        CORPUS.iter().enumerate().map(|(i, t)| (i as u32, if i == 9 { "fox fox" } else { *t })).collect();
    let fresh = index_of(&all, TextIndexConfig::default());
    assert_eq!(index.search(&q, &index.term_stats(&q), 10, None), fresh.search(&q, &fresh.term_stats(&q), 10, None));
    assert_eq!(index.stats().postings, fresh.stats().postings);
    // An empty text is a document of length 0 that matches nothing.
    index.add(20, "");
    assert_eq!((index.len(), index.doc_len(20)), (11, Some(0)));
    assert!(index.matching_slots(&index.tokenize("fox")).iter().all(|&s| s != 20));
}

#[test]
fn random_writes_equal_a_fresh_build() {
    let seed: u64 = match std::env::var("AMETIST_TEST_SEED") {
        Ok(s) => s.parse().expect("AMETIST_TEST_SEED must be a u64"),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64,
    };
    println!("random_writes_equal_a_fresh_build: seed {seed} (replay with AMETIST_TEST_SEED={seed})");
    let mut x = seed | 1;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let words = ["red", "green", "blue", "fox", "dog", "cat", "run", "jump", "fast", "slow", "alpha", "omega"];
    let mut index = TextIndex::new(TextIndexConfig::default()).unwrap();
    let mut docs: Vec<Option<String>> = vec![None; 300];
    for op in 0..3000 {
        let slot = next(300) as u32;
        if next(4) == 0 {
            assert_eq!(index.remove(slot), docs[slot as usize].is_some());
            docs[slot as usize] = None;
        } else {
            let text: Vec<&str> = (0..next(12)).map(|_| words[next(words.len() as u64) as usize]).collect();
            let text = text.join(" ");
            index.add(slot, &text);
            docs[slot as usize] = Some(text);
        }
        if op % 1000 == 999 {
            index.compact();
        }
    }
    let mut fresh = TextIndex::new(TextIndexConfig::default()).unwrap();
    for (s, d) in docs.iter().enumerate() {
        if let Some(d) = d {
            fresh.add(s as u32, d);
        }
    }
    let (a, b) = (index.stats(), fresh.stats());
    assert_eq!((a.docs, a.terms, a.postings, a.total_doc_len), (b.docs, b.terms, b.postings, b.total_doc_len));
    for q in ["red", "fox dog", "alpha omega omega", "cat run fast slow", "missing fox"] {
        let t = index.tokenize(q);
        let stats = index.term_stats(&t);
        assert_eq!(stats, fresh.term_stats(&t));
        assert_eq!(index.search(&t, &stats, 1000, None), fresh.search(&t, &stats, 1000, None), "{q}");
        assert_eq!(index.matching_slots(&t), fresh.matching_slots(&t), "{q}");
        for s in 0..300 {
            assert_eq!(index.matches(s, &t), fresh.matches(s, &t));
            assert_eq!(index.score(s, &t, &stats), fresh.score(s, &t, &stats));
        }
    }
    let (mut b1, mut b2) = (Vec::new(), Vec::new());
    index.write_to(&mut b1).unwrap();
    fresh.write_to(&mut b2).unwrap();
    assert!(b1 == b2, "snapshots differ");
}

#[test]
fn many_removals_compact_the_dictionary() {
    let mut index = TextIndex::new(TextIndexConfig::default()).unwrap();
    for s in 0..3000u32 {
        index.add(s, &format!("common unique{s}"));
    }
    assert_eq!(index.stats().terms, 3001);
    for s in 0..2900u32 {
        index.remove(s);
    }
    let st = index.stats();
    assert_eq!((st.docs, st.terms, st.postings), (100, 101, 200));
    let q = index.tokenize("common unique2950");
    let hits = index.search(&q, &index.term_stats(&q), 3, None);
    assert_eq!(hits[0].0, 2950);
    assert_eq!(index.matching_slots(&q), [2950]);
}

#[test]
fn matching_slots_needs_every_term() {
    let index = corpus_index();
    let m = |q: &str| index.matching_slots(&index.tokenize(q));
    assert_eq!(m("fox"), [0, 1, 3, 7]);
    assert_eq!(m("brown fox"), [0, 1, 7]);
    assert_eq!(m("fox brown"), [0, 1, 7]);
    assert_eq!(m("FOX, brown! fox"), [0, 1, 7]);
    assert_eq!(m("brown fox lazy"), [0]);
    assert_eq!(m("fox rust"), Vec::<u32>::new());
    assert_eq!(m("unknownword"), Vec::<u32>::new());
    assert_eq!(m("..."), Vec::<u32>::new(), "no terms match nothing");
    assert!(index.matches(7, &index.tokenize("bear fox")));
    assert!(!index.matches(7, &index.tokenize("bear dog")));
    assert!(!index.matches(7, &[]));
    assert!(!index.matches(100, &index.tokenize("fox")));
    // Against brute force on every pair of corpus words.
    let vocab: Vec<String> = {
        let mut v: Vec<String> = CORPUS.iter().flat_map(|t| index.tokenize(t)).collect();
        v.sort();
        v.dedup();
        v
    };
    for a in &vocab {
        for b in vocab.iter().step_by(3) {
            let q = vec![a.clone(), b.clone()];
            let want: Vec<u32> = (0..CORPUS.len() as u32)
                .filter(|&s| {
                    let t = index.tokenize(CORPUS[s as usize]);
                    t.contains(a) && t.contains(b)
                })
                .collect();
            assert_eq!(index.matching_slots(&q), want, "{a} {b}");
        }
    }
}

#[test]
fn global_stats_fallback_for_a_single_partition() {
    let index = corpus_index();
    let q = index.tokenize("quick fox");
    assert_eq!(index.search(&q, &CorpusStats::default(), 10, None), index.search(&q, &index.term_stats(&q), 10, None));
}

#[test]
fn config_validation() {
    let bad = |bm25| TextIndex::new(TextIndexConfig { bm25, ..Default::default() }).is_err();
    assert!(bad(Bm25Params { k1: -1.0, b: 0.5 }));
    assert!(bad(Bm25Params { k1: f32::NAN, b: 0.5 }));
    assert!(bad(Bm25Params { k1: 1.0, b: 1.5 }));
    assert!(!bad(Bm25Params { k1: 0.0, b: 0.0 }));
    let c: TextIndexConfig = serde_json::from_str(r#"{"bm25": {"k1": 2.0}}"#).unwrap();
    assert_eq!(c.bm25, Bm25Params { k1: 2.0, b: 0.75 });
    assert_eq!(Bm25Params::default(), Bm25Params { k1: 1.2, b: 0.75 });
}

#[test]
fn snapshot_round_trip_and_corruption() {
    let mut index = TextIndex::new(TextIndexConfig {
        tokenizer: TokenizerConfig { stemmer: Some(Language::English), ..Default::default() },
        bm25: Bm25Params { k1: 0.9, b: 0.4 },
    })
    .unwrap();
    for (i, t) in CORPUS.iter().enumerate() {
        index.add(i as u32 * 2, t);
    }
    index.remove(4);
    index.add(3, "a reused slot with Ünïcödé text");
    let mut bytes = Vec::new();
    index.write_to(&mut bytes).unwrap();
    let back = TextIndex::read_from(&mut bytes.as_slice()).unwrap();
    assert_eq!(back.config(), index.config());
    let (a, b) = (back.stats(), index.stats());
    assert_eq!((a.docs, a.terms, a.postings, a.total_doc_len), (b.docs, b.terms, b.postings, b.total_doc_len));
    for q in QUERIES.iter().chain(&["ünïcödé reused"]) {
        let terms = index.tokenize(q);
        let stats = index.term_stats(&terms);
        assert_eq!(back.term_stats(&terms), stats);
        assert_eq!(back.search(&terms, &stats, 100, None), index.search(&terms, &stats, 100, None));
        assert_eq!(back.matching_slots(&terms), index.matching_slots(&terms));
    }
    let mut again = Vec::new();
    back.write_to(&mut again).unwrap();
    assert_eq!(again, bytes, "the bytes depend only on the contents");
    // An index rebuilt in another order writes the same bytes.
    let mut other = TextIndex::new(index.config().clone()).unwrap();
    other.add(3, "a reused slot with Ünïcödé text");
    for (i, t) in CORPUS.iter().enumerate().rev() {
        if i != 2 {
            other.add(i as u32 * 2, t);
        }
    }
    let mut third = Vec::new();
    other.write_to(&mut third).unwrap();
    assert_eq!(third, bytes);
    // A round-tripped index keeps working.
    let mut back = back;
    back.add(100, "new fox");
    assert!(back.matching_slots(&back.tokenize("fox")).contains(&100));
    // Truncation anywhere and any flipped bit give errors, never panics.
    for cut in 0..bytes.len() {
        assert!(TextIndex::read_from(&mut &bytes[..cut]).is_err(), "cut at {cut}");
    }
    for i in 0..bytes.len() {
        for bit in [0, 3, 7] {
            let mut bad = bytes.clone();
            bad[i] ^= 1 << bit;
            assert!(TextIndex::read_from(&mut bad.as_slice()).is_err(), "flip at {i}");
        }
    }
    // Corruption with a valid checksum (a forged file) is caught by the structural checks
    // or gives a usable index; it never panics.
    let body = bytes.len() - 8;
    for i in 0..body {
        for x in [1u8, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[i] ^= x;
            let sum = fnv(&bad[..body]);
            bad[body..].copy_from_slice(&sum.to_le_bytes());
            if let Ok(mut idx) = TextIndex::read_from(&mut bad.as_slice()) {
                let q = idx.tokenize("fox brown the");
                let _ = idx.search(&q, &idx.term_stats(&q), 10, None);
                let _ = idx.matching_slots(&q);
                for s in 0..30 {
                    idx.remove(s);
                }
                let mut out = Vec::new();
                idx.write_to(&mut out).unwrap();
            }
        }
    }
    // A header claiming a huge size does not allocate it.
    let mut huge = bytes[..12].to_vec();
    huge.extend_from_slice(&(u32::MAX - 1).to_le_bytes());
    huge.extend_from_slice(&[b'{'; 16]);
    assert!(TextIndex::read_from(&mut huge.as_slice()).is_err());
    assert!(TextIndex::read_from(&mut &b"AMSPARSE\x01\0\0\0"[..]).is_err());
    // Empty index round trip.
    let empty = TextIndex::new(TextIndexConfig::default()).unwrap();
    let mut bytes = Vec::new();
    empty.write_to(&mut bytes).unwrap();
    assert!(TextIndex::read_from(&mut bytes.as_slice()).unwrap().is_empty());
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

#[test]
fn indexes_and_stats_can_move_between_threads() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<TextIndex>();
    send_sync::<CorpusStats>();
    send_sync::<ametist_core::sparse::SparseIndex>();
    send_sync::<ametist_core::sparse::SparseStats>();
    send_sync::<ametist_core::text::Tokenizer>();
}
