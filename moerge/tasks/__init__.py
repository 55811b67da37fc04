"""Real benchmark tasks built from Debian packages, and users' own labelled data.

`moerge data fetch` puts the packages into a data directory; `load_task(name)` then
returns a task's labels (each with a natural-language description) and its
stratified train, validation and test splits. `load_user_task` reads a CSV or JSONL
file of `text,label` rows plus a file of label descriptions.
"""

from __future__ import annotations

from moerge.tasks import dictionaries, fortunes, wordnet  # noqa: F401  (they register the tasks)
from moerge.tasks.core import (
    TASKS,
    Example,
    Split,
    TaskData,
    TaskError,
    TaskSource,
    default_data_dir,
    load_task,
)
from moerge.tasks.fetch import PACKAGES, FetchError, fetch
from moerge.tasks.userdata import load_user_task

__all__ = [
    "PACKAGES",
    "TASKS",
    "Example",
    "FetchError",
    "Split",
    "TaskData",
    "TaskError",
    "TaskSource",
    "default_data_dir",
    "fetch",
    "load_task",
    "load_user_task",
]
