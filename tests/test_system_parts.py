"""What the tests need beside Python packages is found, installed, or named in one line."""
import pytest
from system_parts import CHROMIUM, MYSQL_SERVER, SystemPart


def test_a_missing_part_that_may_not_be_installed_fails_with_the_line_that_installs_it() -> None:
    missing = SystemPart(("imgsearch-no-such-command",), "imgsearch-no-such-package", "this check")
    assert missing.find() is None
    with pytest.raises(RuntimeError) as failed:
        missing.ensure(may_install=False)
    assert "this check needs imgsearch-no-such-command" in str(failed.value)
    assert "sudo apt-get install imgsearch-no-such-package" in str(failed.value)


def test_the_parts_this_run_needs_are_there_after_ensure() -> None:
    """On a bare machine, as root, this is where they get installed."""
    for part in (MYSQL_SERVER, CHROMIUM):
        path = part.ensure()
        assert path == part.find() and path.rsplit("/", 1)[-1] in part.commands
