"""What the tests need from the system beside Python packages (a MySQL/MariaDB server
binary, Debian's chromium), installed where missing so that README's test command passes on
a bare machine: as root with apt-get, once per run; otherwise the run fails with the one
line that installs it. Never a skipped test."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

SBIN = ("/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin", "/usr/bin")


@dataclass(frozen=True)
class SystemPart:
    commands: tuple[str, ...]  # any of these on PATH (or in SBIN) is the part
    package: str  # the Debian package that installs it
    why: str

    def find(self) -> str | None:
        for command in self.commands:
            found = shutil.which(command) or shutil.which(command, path=os.pathsep.join(SBIN))
            if found:
                return found
        return None

    def ensure(self, may_install: bool | None = None) -> str:
        """Its path, installing it first where it is missing and this process may (root, apt-get)."""
        found = self.find()
        if found:
            return found
        if may_install is None:
            may_install = os.geteuid() == 0 and shutil.which("apt-get") is not None
        if may_install:
            _apt_install(self.package)
            found = self.find()
            if found:
                return found
        raise RuntimeError(f"{self.why} needs {' or '.join(self.commands)}, which is not installed; "
                           f"install it with: sudo apt-get install {self.package}")


def _apt_install(package: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True, timeout=600)
    done = subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, capture_output=True, text=True,
                          timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"apt-get install {package} failed:\n{done.stderr[-2000:]}")


MYSQL_SERVER = SystemPart(("mariadbd", "mysqld"), "mariadb-server",
                          "the tests' throwaway MySQL/MariaDB server (or IMGSEARCH_TEST_MYSQL_URL)")
CHROMIUM = SystemPart(("chromium",), "chromium", "the page tests (Playwright drives Debian's chromium, no download)")
