//! The tokenizer: Unicode word boundaries, lowercasing, length window, stop words,
//! stemming, and its serde config.

use ametist_core::text::{Language, StopwordsConfig, Tokenizer, TokenizerConfig};

fn tok(config: TokenizerConfig, text: &str) -> Vec<String> {
    Tokenizer::new(config).unwrap().tokenize(text)
}

#[test]
fn default_splits_on_unicode_words_and_lowercases() {
    let c = TokenizerConfig::default;
    assert_eq!(tok(c(), "Hello, World! Hello?"), ["hello", "world", "hello"]);
    // Punctuation and whitespace of every kind separate words and are dropped.
    assert_eq!(tok(c(), "a--b...c\t\nd (e) [f] {g} \"h\" ¿i? ¡j!"), ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]);
    // Non-ASCII scripts and case folding.
    assert_eq!(tok(c(), "Ünïcödé STRASSE Москва Αθήνα"), ["ünïcödé", "strasse", "москва", "αθήνα"]);
    // Apostrophes inside a word keep it whole; the typographic one is normalised.
    assert_eq!(tok(c(), "Don't don’t"), ["don't", "don't"]);
    // Numbers, decimals and letter-digit mixes are words.
    assert_eq!(tok(c(), "BM25 scores 3.14 and 42"), ["bm25", "scores", "3.14", "and", "42"]);
    // Ideographs are one token each (UAX #29 has no dictionary for them).
    assert_eq!(tok(c(), "東京タワー"), ["東", "京", "タワー"]);
    // Emoji and symbols alone are not words.
    assert!(tok(c(), "🚀 + = * / ✓").is_empty());
    assert!(tok(c(), "").is_empty());
}

#[test]
fn lowercase_can_be_turned_off() {
    let c = TokenizerConfig { lowercase: false, ..Default::default() };
    assert_eq!(tok(c, "Rust RUST rust"), ["Rust", "RUST", "rust"]);
}

#[test]
fn stemming_reduces_inflections() {
    let en = TokenizerConfig { stemmer: Some(Language::English), ..Default::default() };
    assert_eq!(tok(en.clone(), "running runs ran Runner"), ["run", "run", "ran", "runner"]);
    assert_eq!(tok(en, "connected connection connecting"), ["connect", "connect", "connect"]);
    let ru = TokenizerConfig { stemmer: Some(Language::Russian), ..Default::default() };
    assert_eq!(tok(ru, "книги книга"), ["книг", "книг"]);
}

#[test]
fn stop_words_builtin_and_custom() {
    let en = TokenizerConfig { stopwords: Some(StopwordsConfig::Language(Language::English)), ..Default::default() };
    assert_eq!(tok(en, "The cat is on the mat, and it's THE best"), ["cat", "mat", "best"]);
    let custom = TokenizerConfig {
        stopwords: Some(StopwordsConfig::Set { languages: vec![], custom: vec!["Cat".into(), "mat".into()] }),
        ..Default::default()
    };
    assert_eq!(tok(custom, "The cat is on the MAT"), ["the", "is", "on", "the"]);
    let both = TokenizerConfig {
        stopwords: Some(StopwordsConfig::Set { languages: vec![Language::English], custom: vec!["cat".into()] }),
        stemmer: Some(Language::English),
        ..Default::default()
    };
    // Stop words are removed before stemming ("cats" is not "cat" yet), then the rest stems.
    assert_eq!(tok(both, "The cat and the cats were running"), ["cat", "run"]);
    // Stop words apply case-insensitively even without lowercasing.
    let keep_case = TokenizerConfig {
        lowercase: false,
        stopwords: Some(StopwordsConfig::Language(Language::English)),
        ..Default::default()
    };
    assert_eq!(tok(keep_case, "The Cat"), ["Cat"]);
}

#[test]
fn token_length_window_counts_characters() {
    let c = TokenizerConfig { min_token_len: 2, max_token_len: 4, ..Default::default() };
    assert_eq!(tok(c, "a ab abc abcd abcde ñé ñ"), ["ab", "abc", "abcd", "ñé"]);
}

#[test]
fn config_serde_defaults_and_validation() {
    let c: TokenizerConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(c, TokenizerConfig::default());
    let c: TokenizerConfig = serde_json::from_str(
        r#"{"lowercase": false, "stemmer": "english", "stopwords": "english", "min_token_len": 2, "max_token_len": 10}"#,
    )
    .unwrap();
    assert_eq!(c.stemmer, Some(Language::English));
    assert_eq!(c.stopwords, Some(StopwordsConfig::Language(Language::English)));
    let c: TokenizerConfig =
        serde_json::from_str(r#"{"stopwords": {"languages": ["english"], "custom": ["foo"]}}"#).unwrap();
    assert_eq!(
        c.stopwords,
        Some(StopwordsConfig::Set { languages: vec![Language::English], custom: vec!["foo".into()] })
    );
    let back: TokenizerConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
    assert!(serde_json::from_str::<TokenizerConfig>(r#"{"stemmer": "klingon"}"#).is_err());
    assert!(serde_json::from_str::<TokenizerConfig>(r#"{"unknown": 1}"#).is_err());
    // Invalid windows and languages without a built-in stop list are refused.
    assert!(Tokenizer::new(TokenizerConfig { min_token_len: 0, ..Default::default() }).is_err());
    assert!(Tokenizer::new(TokenizerConfig { min_token_len: 5, max_token_len: 4, ..Default::default() }).is_err());
    let fr = TokenizerConfig { stopwords: Some(StopwordsConfig::Language(Language::French)), ..Default::default() };
    assert!(Tokenizer::new(fr).is_err());
}
