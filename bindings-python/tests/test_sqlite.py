"""The embedded SQLite store from Python: shared by threads and by separate processes."""

import subprocess
import sys

import racefree
from conftest import on_threads


def test_threads_share_one_file(tmp_path):
    url = f"sqlite:///{tmp_path}/racefree.db"

    def work(_):
        counter = racefree.Counter(racefree.open(url), "task:1")
        return [counter.next() for _ in range(500)]

    indexes = sorted(i for batch in on_threads(8, work) for i in batch)
    assert indexes == list(range(4_000))


def test_state_outlives_the_process(tmp_path):
    url = f"sqlite:///{tmp_path}/racefree.db?namespace=app"
    writer = (
        "import racefree, sys\n"
        "store = racefree.open(sys.argv[1])\n"
        "racefree.Counter(store, 'task:1').claim('exec-a')\n"
        "racefree.Records(store, 'pods').put('web-1', {'phase': 'Running'})\n"
        "print(racefree.StartLock(store, 'tasks').try_start('k', ttl=3600).token)\n"
    )
    out = subprocess.run([sys.executable, "-c", writer, url], capture_output=True, text=True, timeout=60, check=True)
    store = racefree.open(url)
    assert racefree.Counter(store, "task:1").index_of("exec-a") == 0
    assert racefree.Records(store, "pods").get("web-1").value == {"phase": "Running"}
    assert racefree.StartLock(store, "tasks").holder("k")[0] == int(out.stdout)
    # Another namespace in the same file sees none of it.
    other = racefree.open(f"sqlite:///{tmp_path}/racefree.db?namespace=other")
    assert racefree.Counter(other, "task:1").index_of("exec-a") is None
