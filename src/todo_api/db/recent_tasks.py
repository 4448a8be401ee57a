"""What this process last saw of a bounded number of tasks.

A write that must compute from the task as it is (completing a repeating task makes its
next occurrence from its rule) would first have to read it: a second round trip. Planned
from the record remembered here instead, it acts only if the task is still at the record's
version and `updated_at`, and every change to a task moves both; so a record that is out of
date costs the round trip saved, never a wrong write (`todo_api.db.tasks._write_knowing`).
"""

from collections import OrderedDict
from typing import Generic, TypeVar

#: Records kept: one is at most about 10 kB (title, description and tags at their limits),
#: so this stays under 40 MB, and is usually a few.
RECENT_TASKS_SIZE = 4096

_Record = TypeVar("_Record")


class RecentTasks(Generic[_Record]):
    """The latest record seen of each task, by owner and id; the least recently used go
    first once there are `size`."""

    def __init__(self, size: int = RECENT_TASKS_SIZE) -> None:
        self._size = size
        self._records: OrderedDict[tuple[str, int], _Record] = OrderedDict()

    def recall(self, owner: str, task_id: int) -> _Record | None:
        key = (owner, task_id)
        record = self._records.get(key)
        if record is not None:
            self._records.move_to_end(key)
        return record

    def remember(self, owner: str, task_id: int, record: _Record) -> None:
        key = (owner, task_id)
        self._records[key] = record
        self._records.move_to_end(key)
        if len(self._records) > self._size:
            self._records.popitem(last=False)

    def of_owner(self, owner: str) -> list[_Record]:
        """The records kept of the owner's tasks: a pass over all that are kept."""
        return [record for (kept, _), record in self._records.items() if kept == owner]

    def forget(self, owner: str, task_id: int) -> None:
        self._records.pop((owner, task_id), None)
