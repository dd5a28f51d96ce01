"""Schemathesis hooks for tests/it/schemathesis.rs: keep the run's own admin key alive.

Schemathesis finds key ids in the lists it reads and feeds them to every operation, its own
credential's too. Disabling that key, rotating it without a grace period or patching away its
`admin` scope would turn every later call into a 401 or 403: documented answers, so the run would
still pass, having tested nothing. A change aimed at that key is sent to a well-formed key id that
does not exist instead (a documented 404); every other case goes out as generated.
"""

import os

import schemathesis

PROTECTED = os.environ["KEYGATE_PROTECTED_KEY_ID"]
ABSENT = "k_000000000000"


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method.upper() != "GET" and case.path_parameters and case.path_parameters.get("key_id") == PROTECTED:
        case.path_parameters = {**case.path_parameters, "key_id": ABSENT}
