"""Reference BM25 scores for crates/ametist-core/tests/text_bm25.rs.

Run: pip install rank_bm25==0.2.2 && python3 bm25_reference.py

rank_bm25's BM25Okapi computes tf, document lengths, avgdl and the Okapi term weight
tf*(k1+1)/(tf + k1*(1 - b + b*|d|/avgdl)); its idf is Robertson-Sparck Jones' with an
epsilon floor. Ametist uses Lucene's idf, ln(1 + (N - n + 0.5)/(n + 0.5)), so the reference
is BM25Okapi with that idf plugged in (everything else is rank_bm25's own code). A direct
evaluation of the formula double-checks it. The printed Rust arrays are pasted into the test.
"""

import math

from rank_bm25 import BM25Okapi

K1, B = 1.2, 0.75

CORPUS = [
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
]

QUERIES = [
    "quick fox",
    "brown dog",
    "the",
    "text search",
    "search search",
    "lazy",
    "rust language unknownword",
    "fox dog bear",
]


class LuceneIdfBM25(BM25Okapi):
    def _calc_idf(self, nd):
        for word, freq in nd.items():
            self.idf[word] = math.log(1.0 + (self.corpus_size - freq + 0.5) / (freq + 0.5))


def direct(corpus, query):
    n_docs = len(corpus)
    avgdl = sum(len(d) for d in corpus) / n_docs
    out = []
    for d in corpus:
        s = 0.0
        for q in query:
            tf = d.count(q)
            if tf == 0:
                continue
            n = sum(1 for e in corpus if q in e)
            idf = math.log(1.0 + (n_docs - n + 0.5) / (n + 0.5))
            s += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * len(d) / avgdl))
        out.append(s)
    return out


def main():
    corpus = [t.lower().split() for t in CORPUS]
    bm25 = LuceneIdfBM25(corpus, k1=K1, b=B)
    print("const EXPECTED: [[f64; %d]; %d] = [" % (len(CORPUS), len(QUERIES)))
    for q in QUERIES:
        query = q.lower().split()
        scores = list(bm25.get_scores(query))
        check = direct(corpus, query)
        assert all(abs(a - b) < 1e-12 for a, b in zip(scores, check)), (q, scores, check)
        print("    // %r" % q)
        print("    [%s]," % ", ".join("%.10f" % s for s in scores))
    print("];")


if __name__ == "__main__":
    main()
