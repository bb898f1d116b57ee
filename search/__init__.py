"""The search math, by id: nearest neighbours, filters, recommendation strategies and
explanations over an index version's arrays.

numpy and FAISS only (scikit-learn's SVM imported on first use); ids in, `(ids,
scores)` out, batch-first, as implicit's `similar_items` / `recommend`. No titles,
limits or gRPC here: the server wraps these in requests and answers, and the
indexer's calibration and the trainer's evaluation call the same functions, so what
is measured is what is served.
"""
