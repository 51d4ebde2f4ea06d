"""Schemathesis against the app's own OpenAPI document, on a real server.

Every operation of the document gets generated requests, valid-shaped and
deliberately invalid ones, bounded in number (and so in time). No answer may be a
5xx, and every answer must match the schema documented for its status code.
(schemathesis' pytest loader relies on pytest internals that pytest 9 removed, so
its strategies are driven here with hypothesis directly.)
"""

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from tests.processes import ServiceProcess

pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = 100
answers: Counter[int] = Counter()
unsatisfiable: list[str] = []


@pytest.fixture(scope="module")
def live_proxy(tmp_path_factory):
    proxy = ServiceProcess(tmp_path_factory.mktemp("fuzz"), "--store", "memory://",
                           "--max-delay", "0.05", "--max-queue", "1000000")
    yield proxy
    print(f"\nfuzzing: {sum(answers.values())} generated requests; answers by status: "
          f"{dict(sorted(answers.items()))}; no invalid input exists for: {unsatisfiable}")
    errors = proxy.error_events()
    proxy.stop()
    assert errors == []


@pytest.fixture(scope="module")
def api_schema(live_proxy):
    return schemathesis.openapi.from_url(f"{live_proxy.url}/openapi.json")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_breaks_the_api(api_schema, mode):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 7
    if mode is GenerationMode.NEGATIVE:  # nothing can be invalid where nothing is sent
        operations = [op for op in operations if op.body or op.path_parameters]
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def no_5xx_and_schema_kept(case):
            response = case.call(timeout=10)
            answers[response.status_code] += 1
            case.validate_response(
                response,
                checks=[not_a_server_error, response_schema_conformance,
                        content_type_conformance],
            )

        try:
            no_5xx_and_schema_kept()
        except Unsatisfiable:
            # Negative mode only: the schema admits any value (a free string path
            # parameter, say), so there is no invalid input to send.
            assert mode is GenerationMode.NEGATIVE, operation.label
            unsatisfiable.append(operation.label)
