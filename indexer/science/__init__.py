"""The science: pure functions over arrays (LID, orderings, reductions, exact kNN, metrics, sparse retrieval, analysis)."""
