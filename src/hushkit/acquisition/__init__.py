"""Acquisition: getting real audio into the pipeline — downloading public corpora (fetch, archives, catalogue,
parsers), listing and ingesting the user's folders (scan, ingest) and turning `download.sources` into a corpus
(sources)."""
