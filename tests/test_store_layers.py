"""The store's protocol modules (packing, graph and word tables) depend on protocols of what
they use, never on FeatureStore: no import circle inside the store, TYPE_CHECKING imports
included (import-linter's layers do not see inside one package)."""
import grimp
import pytest

PROTOCOL_MODULES = ("imgsearch.store.packed", "imgsearch.store.graph_tables", "imgsearch.store.words_tables")


@pytest.mark.parametrize("module", PROTOCOL_MODULES)
def test_a_store_protocol_module_never_reaches_feature_store(module) -> None:
    graph = grimp.build_graph("imgsearch", exclude_type_checking_imports=False)
    assert graph.find_shortest_chain(importer=module, imported="imgsearch.store.base") is None
