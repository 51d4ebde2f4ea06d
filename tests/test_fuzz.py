"""Schemathesis against the app's own OpenAPI document, on a real server: every check
and every phase (the document's examples, coverage of each constraint's edges, random
fuzzing, and stateful sequences that feed one answer's ids into the next request).

No answer may be a 5xx, break its documented schema or headers, accept what the
document forbids or refuse what it allows. The rules the document can only state in
words (a callback URL while callbacks are off, a reused Idempotency-Key, more bulk
items than --bulk-max) are listed with their statuses in ``schemathesis.toml``, at the
repository root, which the run reads.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ServiceProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_PER_OPERATION = 30


@pytest.mark.parametrize(("store", "api_keys", "seed"), [
    ("memory", False, 20261128), ("memory", True, 20261201), ("sqlite", False, 26),
    ("postgres", False, 2026),
])
def test_no_request_breaks_the_documented_contract(tmp_path, request, store, api_keys, seed):
    """On every store: a value that one store takes and another cannot (a number past
    64 bits, a year before 1970) must be refused at the door, not by the driver."""
    url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path}/fuzz.db"}.get(store) or \
        request.getfixturevalue("postgres_url")
    options = ["--store", url, "--max-delay", "0.05", "--max-queue", "1000000"]
    auth = []
    if api_keys:  # the routes ask for a bearer key; schemathesis sends the right one
        options += ["--api-keys", "fuzz-key-1"]
        auth = ["--header", "Authorization: Bearer fuzz-key-1"]
    proxy = ServiceProcess(tmp_path, *options)
    try:
        run = subprocess.run(
            [str(Path(sys.executable).with_name("schemathesis")),
             "--config-file", str(ROOT / "schemathesis.toml"), "run",
             f"{proxy.url}/openapi.json", "--checks", "all",
             "--phases", "examples,coverage,fuzzing,stateful",
             "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", str(seed),
             "--request-timeout", "10", *auth],
            cwd=tmp_path,  # its cache goes there, not into the repository
            capture_output=True, text=True, timeout=300,
        )
    finally:
        errors = proxy.error_events()
        proxy.stop()
    summary = "\n".join(run.stdout.splitlines()[-40:])
    assert run.returncode == 0, summary
    counts = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert counts, summary
    generated, passed = map(int, counts.groups())
    assert generated == passed >= 500, summary
    assert errors == []
