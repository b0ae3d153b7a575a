"""The streaming scan over a real server: a broken stream is an error, never a short list."""
import numpy as np
import pytest
from conftest import admin_connection
from synthetic import fill

from imgsearch.errors import ImgsearchError
from imgsearch.scan.kernel import prefetched, scan
from imgsearch.scan.metrics import get_metric
from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url

ROWS, DIM = 20_000, 512  # 40 MB of vectors: more than the socket buffers hold


def kill_scan_connection(base_url: str) -> None:
    admin = admin_connection(base_url)
    with admin.cursor() as cur:
        cur.execute("SELECT id FROM information_schema.processlist WHERE info LIKE 'SELECT image_id, vec FROM features%%'")
        (thread_id,) = cur.fetchone()
        cur.execute("KILL %s", (thread_id,))
    admin.close()


def test_killed_scan_raises_instead_of_returning_fewer_rows(mysql_base_url, mysql_url) -> None:
    with open_store(parse_database_url(mysql_url), create=True) as store:
        extractor = fill(store, ROWS, DIM)
        blocks = store.stream_blocks(extractor, 256)

        def killed_after_first_block():
            for n, block in enumerate(blocks):
                if n == 1:
                    kill_scan_connection(mysql_base_url)
                yield block

        with pytest.raises(ImgsearchError, match="broke before its end"):
            scan(prefetched(killed_after_first_block()), np.ones(DIM, np.float32), get_metric("cosine"), 10)

        # The store itself is still usable, and a full scan sees every row.
        full = scan(store.stream_blocks(extractor, 1000), np.ones(DIM, np.float32), get_metric("cosine"), 10)
        assert full.rows_scanned == ROWS


def test_a_scan_left_early_releases_its_connection(mysql_base_url, mysql_url) -> None:
    with open_store(parse_database_url(mysql_url), create=True) as store:
        extractor = fill(store, ROWS, DIM)
        blocks = prefetched(store.stream_blocks(extractor, 256))
        next(blocks)
        blocks.close()
        admin = admin_connection(mysql_base_url)
        with admin.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE 'SELECT image_id%%'")
            assert cur.fetchone()[0] == 0
        admin.close()
