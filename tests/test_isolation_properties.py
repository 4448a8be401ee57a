"""Property: whatever two users do, neither can read, change or detect the other's tasks."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)
from sqlalchemy import create_engine, text

from tests.helpers import jwt_settings, sync_url, task_url, tasks_url, token_for_path_user
from todo_api.api.caller import USER_ID_PATTERN
from todo_api.app import create_app
from todo_api.settings import Settings

user_ids = st.from_regex(USER_ID_PATTERN, fullmatch=True)
titles = st.text(
    alphabet=st.characters(categories=["L", "N", "P", "Zs"]), min_size=1, max_size=40
).filter(str.strip)
Task = dict[str, Any]


class TwoUsers(RuleBasedStateMachine):
    """A model of each user's tasks, checked against the API after every step."""

    client: TestClient
    database_url: str

    tasks = Bundle("tasks")

    def __init__(self) -> None:
        super().__init__()
        self.owned: dict[str, dict[int, Task]] = {}

    @initialize(users=st.lists(user_ids, min_size=2, max_size=2, unique=True))
    def start(self, users: list[str]) -> None:
        engine = create_engine(sync_url(self.database_url))
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM tasks"))
        engine.dispose()
        self.owned = {user: {} for user in users}

    @property
    def users(self) -> list[str]:
        return list(self.owned)

    def _other(self, user: str) -> str:
        return next(u for u in self.users if u != user)

    def _owner_of(self, task_id: int) -> str | None:
        return next((u for u, tasks in self.owned.items() if task_id in tasks), None)

    def _missing_body(self, user: str, method: str, suffix: str, task_id: int) -> Any:
        """What the API says about an id nobody has, worded for `task_id`."""
        missing_id = 10**15 + task_id
        response = self.client.request(method, task_url(user, missing_id) + suffix, json=None)
        assert response.status_code == 404
        body = response.json()
        body["detail"] = body["detail"].replace(str(missing_id), str(task_id))
        return body

    @rule(target=tasks, index=st.integers(0, 1), title=titles, completed=st.booleans())
    def create(self, index: int, title: str, completed: bool) -> int:
        user = self.users[index]
        response = self.client.post(tasks_url(user), json={"title": title, "completed": completed})
        assert response.status_code == 201, response.text
        task: Task = response.json()
        assert task["user_id"] == user
        self.owned[user][task["id"]] = task
        return int(task["id"])

    @rule(task_id=tasks, as_owner=st.booleans())
    def read(self, task_id: int, as_owner: bool) -> None:
        owner = self._owner_of(task_id)
        if owner is None:
            return
        actor = owner if as_owner else self._other(owner)
        response = self.client.get(task_url(actor, task_id))
        if as_owner:
            assert response.status_code == 200
            assert response.json() == self.owned[owner][task_id]
        else:
            assert response.status_code == 404
            assert response.json() == self._missing_body(actor, "GET", "", task_id)

    @rule(task_id=tasks, as_owner=st.booleans(), title=titles)
    def rename(self, task_id: int, as_owner: bool, title: str) -> None:
        owner = self._owner_of(task_id)
        if owner is None:
            return
        actor = owner if as_owner else self._other(owner)
        response = self.client.patch(task_url(actor, task_id), json={"title": title})
        if as_owner:
            assert response.status_code == 200
            self.owned[owner][task_id] = response.json()
            assert response.json()["title"] == title.strip()
        else:
            assert response.status_code == 404

    @rule(task_id=tasks, as_owner=st.booleans())
    def toggle(self, task_id: int, as_owner: bool) -> None:
        owner = self._owner_of(task_id)
        if owner is None:
            return
        actor = owner if as_owner else self._other(owner)
        before = self.owned[owner][task_id]
        response = self.client.patch(f"{task_url(actor, task_id)}/complete")
        if as_owner:
            assert response.status_code == 200
            assert response.json()["completed"] is not before["completed"]
            self.owned[owner][task_id] = response.json()
        else:
            assert response.status_code == 404
            assert response.json() == self._missing_body(actor, "PATCH", "/complete", task_id)

    @rule(task_id=consumes(tasks), as_owner=st.booleans())
    def delete(self, task_id: int, as_owner: bool) -> None:
        owner = self._owner_of(task_id)
        if owner is None:
            return
        actor = owner if as_owner else self._other(owner)
        response = self.client.delete(task_url(actor, task_id))
        if as_owner:
            assert response.status_code == 204
            del self.owned[owner][task_id]
        else:
            assert response.status_code == 404
            assert response.json() == self._missing_body(actor, "DELETE", "", task_id)

    @invariant()
    def each_user_sees_exactly_their_own_tasks(self) -> None:
        for user, tasks in self.owned.items():
            response = self.client.get(tasks_url(user), params={"limit": 200})
            assert response.status_code == 200
            assert response.headers["x-total-count"] == str(len(tasks))
            assert {task["id"]: task for task in response.json()} == tasks


@pytest.fixture(params=["none", "jwt"], ids=["path-is-caller", "tokens"])
def isolated_client(database_url: str, request: pytest.FixtureRequest) -> Any:
    # A sync client running the app in its own event loop, as Hypothesis drives it. With
    # tokens, each request carries a valid one for the user its path names.
    auth = jwt_settings() if request.param == "jwt" else {}
    app = create_app(Settings(_env_file=None, database_url=database_url, **auth))
    with TestClient(app, raise_server_exceptions=False) as client:
        if request.param == "jwt":
            client.auth = token_for_path_user
        yield client


def test_no_user_can_see_or_touch_another_users_tasks(
    isolated_client: TestClient, database_url: str
) -> None:
    TwoUsers.client = isolated_client
    TwoUsers.database_url = database_url
    run = TwoUsers.TestCase
    run.settings = settings(
        max_examples=20,
        stateful_step_count=15,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    run().runTest()
