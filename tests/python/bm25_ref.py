"""Independent BM25 references for the keyword-search tests (not a test module).

Ametist scores with Okapi BM25 and Lucene's idf (crates/ametist-core/src/text/bm25.rs):

    score(d, q) = sum over terms t of q (repeats count):
                  idf(t) * tf(t,d) * (k1 + 1) / (tf(t,d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t)      = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))

`direct_scores` evaluates that formula in float64 from scratch; `rank_bm25_scores` uses
the rank_bm25 package's BM25Okapi (its tf, lengths, avgdl and term weight) with that idf
plugged in (rank_bm25's own idf is Robertson-Sparck Jones' with an epsilon floor computed
over the whole vocabulary, which a partitioned index cannot know).

Documents and queries here are lowercase ASCII words separated by single spaces, so
`str.split()` is the same tokenisation as the server's default text index (Unicode word
boundaries, lowercase, no stemming, no stop words).
"""

from __future__ import annotations

import math

K1, B = 1.2, 0.75


def direct_scores(docs: dict, query: str, k1: float = K1, b: float = B) -> dict:
    """{id: score} of every document with a positive score; `docs` is {id: text}."""
    toks = {i: t.lower().split() for i, t in docs.items()}
    n_docs = len(toks)
    avgdl = sum(len(t) for t in toks.values()) / n_docs
    df: dict[str, int] = {}
    for t in toks.values():
        for w in set(t):
            df[w] = df.get(w, 0) + 1
    out = {}
    for i, t in toks.items():
        s = 0.0
        for q in query.lower().split():
            tf = t.count(q)
            if tf == 0:
                continue
            idf = math.log(1.0 + (n_docs - df[q] + 0.5) / (df[q] + 0.5))
            s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(t) / avgdl))
        if s > 0:
            out[i] = s
    return out


def rank_bm25_scores(docs: dict, query: str, k1: float = K1, b: float = B) -> dict:
    """The same scores from rank_bm25's BM25Okapi with Lucene's idf (see above)."""
    from rank_bm25 import BM25Okapi

    class LuceneIdfBM25(BM25Okapi):
        def _calc_idf(self, nd):
            for word, freq in nd.items():
                self.idf[word] = math.log(1.0 + (self.corpus_size - freq + 0.5) / (freq + 0.5))

    ids = list(docs)
    bm25 = LuceneIdfBM25([docs[i].lower().split() for i in ids], k1=k1, b=b)
    scores = bm25.get_scores(query.lower().split())
    return {i: float(s) for i, s in zip(ids, scores) if s > 0}
