"""Descriptor families. Each is an Extractor; `registry.EXTRACTORS` names them."""
