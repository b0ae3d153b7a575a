"""Builds killed or cut off from their database, then rerun: every image indexed exactly
once, no orphan rows, no half batch, the packed copy exact."""
import signal
import subprocess
import sys
import threading
import uuid

import pytest
from integrity import check_integrity, committed_images, run_cli, write_small_images

N_IMAGES = 1500
EXTRACTORS = ("rgb", "hsv72")


def build_args(folder, db_url: str) -> list[str]:
    return ["build", str(folder), "--db", db_url, "-e", "rgb", "-e", "hsv72", "--batch-size", "8", "-j", "1"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fault-photos")
    write_small_images(folder, N_IMAGES)
    return folder


# Kill points: before any commit, then after a given share of the images is committed
# (seen from another connection), so each run dies at a known stage on any machine.
@pytest.mark.parametrize("kill_at", [0.0, 0.1, 0.35, 0.6, 0.85])
def test_kill_9_during_build_then_rerun(photos, mysql_url, kill_at) -> None:
    code, _ = run_cli(build_args(photos, mysql_url),
                      kill_when=lambda: committed_images(mysql_url) >= kill_at * N_IMAGES)
    assert code == -signal.SIGKILL, "the build ended before the kill"
    check_integrity(mysql_url, EXTRACTORS)  # whatever was committed is whole
    code, err = run_cli(build_args(photos, mysql_url))
    assert code == 0, err
    check_integrity(mysql_url, EXTRACTORS, expected_images=N_IMAGES)


@pytest.mark.parametrize("stop_at", [0.2, 0.7])
def test_database_stopped_mid_build(photos, own_server, stop_at) -> None:
    url = own_server.url + f"imgsearch_stop_{uuid.uuid4().hex[:8]}"
    stopped = threading.Event()

    def stop_when_far_enough() -> bool:
        if not stopped.is_set() and committed_images(url) >= stop_at * N_IMAGES:
            own_server.stop(kill=True)
            stopped.set()
        return False  # never kill the build itself

    code, err = run_cli(build_args(photos, url), kill_when=stop_when_far_enough)
    assert stopped.is_set(), "the build ended before the server was stopped"
    assert code != 0, "the build claimed success while its database was gone"
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("imgsearch: error:")]
    assert len(errors) == 1 and "MySQL server" in errors[0], err
    own_server.start()
    check_integrity(url, EXTRACTORS)
    code, err = run_cli(build_args(photos, url))
    assert code == 0, err
    check_integrity(url, EXTRACTORS, expected_images=N_IMAGES)


def test_a_shard_killed_while_another_builds_then_rerun(photos, mysql_url) -> None:
    """Two shard builders into one MariaDB; one is killed with SIGKILL a third of the way
    through and rerun while the other is still writing: every image once, whole batches,
    packed == per-row."""
    other = subprocess.Popen([sys.executable, "-m", "imgsearch", *build_args(photos, mysql_url), "--shard", "1/2"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    code, _ = run_cli([*build_args(photos, mysql_url), "--shard", "2/2"],
                      kill_when=lambda: committed_images(mysql_url) >= 0.3 * N_IMAGES)
    assert code == -signal.SIGKILL, "the shard build ended before the kill"
    code, err = run_cli([*build_args(photos, mysql_url), "--shard", "2/2"])
    assert code == 0, err
    _, err = other.communicate(timeout=600)
    assert other.returncode == 0, err
    check_integrity(mysql_url, EXTRACTORS, expected_images=N_IMAGES)
