"""How soon `imgsearch watch` makes a copied photo searchable, and how many builds a burst
costs: the watcher started on a folder of N photos (default extractors), then one photo
copied in (seconds until a query by its name answers), then a burst of 500 (builds it ran).

    python bench/watch.py ../shared/data/flowers102/jpg WORKDIR [--files 1000]
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time

from moves import arguments, fresh_collection  # bench/ is the script's folder: on sys.path


def main() -> None:
    args = arguments(__doc__)
    folder, sources = fresh_collection(args, "old")
    db = f"sqlite:///{args.workdir / 'index.sqlite3'}"
    lines: list[str] = []
    watcher = subprocess.Popen([sys.executable, "-m", "imgsearch", "watch", str(folder), "--db", db],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    threading.Thread(target=lambda: lines.extend(line.rstrip() for line in watcher.stdout), daemon=True).start()
    try:
        while not any(" indexed " in line for line in lines):
            time.sleep(0.1)
        print(f"start: {next(line for line in lines if ' indexed ' in line)}")
        copied = sources[args.files]
        started = time.perf_counter()
        shutil.copy(copied, folder / copied.name)
        while subprocess.run([sys.executable, "-m", "imgsearch", "query", copied.name, "--db", db, "-k", "1"],
                             capture_output=True).returncode != 0:
            time.sleep(0.05)
        print(f"a copied photo answers a query {time.perf_counter() - started:.1f} s after the copy "
              "(the query's own start included)")
        before = sum(" indexed " in line for line in lines)
        (folder / "burst").mkdir()
        started = time.perf_counter()
        for source in sources[args.files + 1 : args.files + 501]:
            shutil.copy(source, folder / "burst" / source.name)
        def runs() -> list[str]:
            return [line for line in lines if " indexed " in line][before:]

        while sum(int(r.split("indexed ")[1].split(",")[0]) for r in runs()) < 500:
            time.sleep(0.1)
        print(f"a burst of 500 copies: {len(runs())} builds, all 500 indexed {time.perf_counter() - started:.1f} s "
              "after the first copy began")
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(120)


if __name__ == "__main__":
    main()
