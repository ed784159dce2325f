//! Turning a text into the terms the index stores: Unicode word boundaries (UAX #29),
//! lowercasing, a token-length window, stop words and Snowball stemming, in that order.
//!
//! The same [`Tokenizer`] must be used for the documents and for the queries of a field;
//! the field's [`TokenizerConfig`] is the only thing the coordinator and the partitions need
//! to share for that.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

/// The longest token length a text index may be configured with (a token is a word; this
/// bounds a setting that only nonsense would exceed).
pub const MAX_TOKEN_LEN: usize = 65_536;

use rust_stemmers::{Algorithm, Stemmer};
use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

use super::stopwords;
use super::TextError;

/// The languages a Snowball stemmer exists for (serialised in lowercase: `"english"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Arabic,
    Danish,
    Dutch,
    English,
    Finnish,
    French,
    German,
    Greek,
    Hungarian,
    Italian,
    Norwegian,
    Portuguese,
    Romanian,
    Russian,
    Spanish,
    Swedish,
    Tamil,
    Turkish,
}

impl Language {
    fn algorithm(self) -> Algorithm {
        match self {
            Language::Arabic => Algorithm::Arabic,
            Language::Danish => Algorithm::Danish,
            Language::Dutch => Algorithm::Dutch,
            Language::English => Algorithm::English,
            Language::Finnish => Algorithm::Finnish,
            Language::French => Algorithm::French,
            Language::German => Algorithm::German,
            Language::Greek => Algorithm::Greek,
            Language::Hungarian => Algorithm::Hungarian,
            Language::Italian => Algorithm::Italian,
            Language::Norwegian => Algorithm::Norwegian,
            Language::Portuguese => Algorithm::Portuguese,
            Language::Romanian => Algorithm::Romanian,
            Language::Russian => Algorithm::Russian,
            Language::Spanish => Algorithm::Spanish,
            Language::Swedish => Algorithm::Swedish,
            Language::Tamil => Algorithm::Tamil,
            Language::Turkish => Algorithm::Turkish,
        }
    }

    /// The built-in stop-word list of this language, if there is one (English only, for now).
    fn stopwords(self) -> Option<&'static [&'static str]> {
        match self {
            Language::English => Some(stopwords::ENGLISH),
            _ => None,
        }
    }
}

/// Which stop words to drop: a language's built-in list (`"english"`), or
/// `{"languages": ["english"], "custom": ["foo", "bar"]}`. Custom words are compared
/// case-insensitively (they are lowercased like the tokens).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StopwordsConfig {
    Language(Language),
    Set {
        #[serde(default)]
        languages: Vec<Language>,
        #[serde(default)]
        custom: Vec<String>,
    },
}

/// How a text field is split into terms. Every field has a default, so `{}` is a valid
/// config: words lowercased, no stemming, no stop words, tokens of 1 to 40 characters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenizerConfig {
    /// Lowercase every token (Unicode-aware). Default true.
    pub lowercase: bool,
    /// Snowball stemmer to apply to each token, if any. Default none.
    pub stemmer: Option<Language>,
    /// Stop words to drop, if any. Default none.
    pub stopwords: Option<StopwordsConfig>,
    /// Tokens shorter than this many characters are dropped (checked before stemming).
    /// Default 1.
    pub min_token_len: usize,
    /// Tokens longer than this many characters are dropped (checked before stemming).
    /// Default 40: longer "words" are mostly identifiers, hashes and URLs glued together.
    pub max_token_len: usize,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        TokenizerConfig { lowercase: true, stemmer: None, stopwords: None, min_token_len: 1, max_token_len: 40 }
    }
}

impl TokenizerConfig {
    /// Checks the config: a non-empty length window, and stop-word languages that have a
    /// built-in list.
    pub fn validate(&self) -> Result<(), TextError> {
        // Validated here, where every way a text index is made passes.
        if self.min_token_len == 0 || self.max_token_len < self.min_token_len || self.max_token_len > MAX_TOKEN_LEN {
            return Err(TextError::InvalidConfig(format!(
                "token length window must satisfy 1 <= min_token_len <= max_token_len <= {MAX_TOKEN_LEN}, got {}..={}",
                self.min_token_len, self.max_token_len
            )));
        }
        let languages: &[Language] = match &self.stopwords {
            None => &[],
            Some(StopwordsConfig::Language(l)) => std::slice::from_ref(l),
            Some(StopwordsConfig::Set { languages, .. }) => languages,
        };
        for l in languages {
            if l.stopwords().is_none() {
                return Err(TextError::InvalidConfig(format!("no built-in stop-word list for {l:?}")));
            }
        }
        Ok(())
    }
}

/// A ready-to-use tokenizer built from a [`TokenizerConfig`]. Cheap to clone.
pub struct Tokenizer {
    config: TokenizerConfig,
    stemmer: Option<Stemmer>,
    stopwords: HashSet<String>,
}

impl Clone for Tokenizer {
    fn clone(&self) -> Self {
        Tokenizer {
            config: self.config.clone(),
            stemmer: self.config.stemmer.map(|l| Stemmer::create(l.algorithm())),
            stopwords: self.stopwords.clone(),
        }
    }
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer").field("config", &self.config).finish()
    }
}

impl Tokenizer {
    /// Builds the tokenizer; an invalid config is an error.
    pub fn new(config: TokenizerConfig) -> Result<Tokenizer, TextError> {
        config.validate()?;
        let mut stopwords = HashSet::new();
        match &config.stopwords {
            None => {}
            Some(StopwordsConfig::Language(l)) => {
                stopwords.extend(l.stopwords().unwrap_or(&[]).iter().map(|w| w.to_string()));
            }
            Some(StopwordsConfig::Set { languages, custom }) => {
                for l in languages {
                    stopwords.extend(l.stopwords().unwrap_or(&[]).iter().map(|w| w.to_string()));
                }
                stopwords.extend(custom.iter().map(|w| normalise_apostrophes(&w.to_lowercase()).into_owned()));
            }
        }
        let stemmer = config.stemmer.map(|l| Stemmer::create(l.algorithm()));
        Ok(Tokenizer { config, stemmer, stopwords })
    }

    /// The config this tokenizer was built from.
    pub fn config(&self) -> &TokenizerConfig {
        &self.config
    }

    /// The terms of `text`, in order, repeats included.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each_token(text, |t| out.push(t.to_owned()));
        out
    }

    /// Calls `f` on each term of `text`, in order, repeats included.
    pub fn for_each_token(&self, text: &str, mut f: impl FnMut(&str)) {
        let mut lower = String::new();
        let fold = self.config.lowercase || !self.stopwords.is_empty();
        for word in text.unicode_words() {
            let len = word.chars().count();
            if len < self.config.min_token_len || len > self.config.max_token_len {
                continue;
            }
            let word = normalise_apostrophes(word);
            if fold {
                lower.clear();
                if word.is_ascii() {
                    lower.push_str(&word);
                    lower.make_ascii_lowercase();
                } else {
                    lower.push_str(&word.to_lowercase());
                }
                if self.stopwords.contains(lower.as_str()) {
                    continue;
                }
            }
            let token: &str = if self.config.lowercase { &lower } else { &word };
            match &self.stemmer {
                Some(s) => f(&s.stem(token)),
                None => f(token),
            }
        }
    }
}

/// The typographic apostrophe (U+2019) becomes the ASCII one, so "don’t" and "don't" are the
/// same term.
fn normalise_apostrophes(word: &str) -> Cow<'_, str> {
    if word.contains('\u{2019}') {
        Cow::Owned(word.replace('\u{2019}', "'"))
    } else {
        Cow::Borrowed(word)
    }
}
