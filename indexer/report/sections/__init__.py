"""One module per report section.

Each turns the grouped results (and the run's extras) into blocks, or returns None when it has nothing
to show; `indexer.report.document` puts them in reading order.
"""
