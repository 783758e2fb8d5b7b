"""The shared vocabulary on the ground floor: the strict base model, the spec's parts, library seeds, the typed
results and the graph read out of an index. Every layer above imports it; it imports nothing of the project
but `indexer.common` (tests/test_layers.py keeps it so)."""
