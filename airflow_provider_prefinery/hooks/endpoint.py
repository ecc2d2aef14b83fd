"""One row of an API's endpoint table: the type the Prefinery and the Piggy tables share.

Light on purpose (standard library only): the tables are read by operators and sensors at DAG parse time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Shape = Literal["doc", "client", "assumed"]
"""Where a row's facts come from: the API's docs, public code calling the live API, or not published."""


@dataclass(frozen=True)
class Endpoint:
    """One API action: how to call it, what it counts against, whether a replay is safe, how sure we are.

    :param path: relative to the API prefix; ``{placeholders}`` are URL-quoted by the hook that fills them.
    :param wrapper: the key the JSON body is wrapped in, None for a top-level body.
    :param limit: the name of the client-side rate budget the call counts against (the hook's own table
        of limits), None for none.
    :param replay_safe: a replayed POST is reported as a duplicate (``duplicate_code``), never applied
        twice, so the REST core may retry it after an ambiguous failure.
    """

    method: str
    path: str
    wrapper: str | None = None
    limit: str | None = None
    replay_safe: bool = False
    duplicate_code: int | None = None
    shape: Shape = "doc"
