"""Every header the webhook receiver reads, given any value a sender can put in it (HTTP header values are
Latin-1 text: NUL, '²', 'é', a 5,000-digit number), gets a 4xx with a JSON body naming the problem, never a
500, which a sender would retry for hours (issue 10, fault 3)."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from subscriptions import signing
from subscriptions.models import Subscription
from tests.subscriptions.test_inbox import blocker, fake  # noqa: F401 (a fixture)
from tests.subscriptions.watching_fakes import event_body, signed_post, watching_node
from tracker import services

pytestmark = pytest.mark.django_db(transaction=True)

READ = [
    "HTTP_AUTHORIZATION",
    "HTTP_X_SUDOCODE_SIGNATURE",
    "HTTP_X_SUDOCODE_SUBSCRIPTION",
    "HTTP_X_SUDOCODE_EVENT_ID",
    "HTTP_X_SUDOCODE_SEQUENCE",
    "HTTP_X_SUDOCODE_PREVIOUS_SEQUENCE",
    "HTTP_X_SUDOCODE_FROM",
]
LATIN_1 = st.text(st.characters(max_codepoint=0xFF, exclude_characters="\r\n"), max_size=120)
NUMBERS = st.builds(
    "".join,
    st.tuples(st.sampled_from(["", "-", "+"]), st.text(st.sampled_from("0123456789"), min_size=1, max_size=5000)),
)
ODD_DIGITS = st.text(st.sampled_from("0123456789²³¹٣۳߃₃_ +-"), min_size=1, max_size=30)


@pytest.fixture
def sub(node_repo, fake, monkeypatch):  # noqa: F811
    monkeypatch.setattr("subscriptions.delivery.wake", lambda: None)
    watching_node(node_repo, fake)
    services.issue_create(title="Profile page", actor="ana", remote_relationships=[blocker("issue-084")])
    return Subscription.objects.get(direction="outgoing", auto=True)


def _answer_is_a_client_error_or_success(response) -> None:
    assert response.status_code < 500, response.content
    assert isinstance(json.loads(response.content), dict)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.sampled_from(READ), value=st.one_of(LATIN_1, NUMBERS, ODD_DIGITS))
def test_any_value_of_any_header_is_answered_without_a_server_error(sub, header, value):
    response = signed_post(sub, event_body(41), previous=40, extra={header: value})
    _answer_is_a_client_error_or_success(response)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(LATIN_1, ODD_DIGITS).filter(lambda v: not v.isascii() or not v.isdigit()))
def test_a_content_length_that_is_not_a_number_is_a_400_before_the_body_is_read(sub, value):
    # (A number that disagrees with the body is the HTTP server's to refuse: daphne never passes one on.)
    response = signed_post(sub, event_body(41), previous=40, extra={"CONTENT_LENGTH": value})
    _answer_is_a_client_error_or_success(response)
    assert response.status_code == 400 or value.strip() == "", response.content


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(digest=LATIN_1)
def test_a_signature_of_any_text_is_a_401(sub, digest):
    response = signed_post(
        sub, event_body(41), previous=40, extra={"HTTP_X_SUDOCODE_SIGNATURE": f"t={int(time.time())},v1={digest}"}
    )
    assert response.status_code == 401, response.content


def test_the_reported_values_are_refused_with_400_and_401(sub):
    non_ascii = signed_post(
        sub, event_body(41), previous=40, extra={"HTTP_X_SUDOCODE_SIGNATURE": f"t={int(time.time())},v1=ab\xe9cd"}
    )
    assert non_ascii.status_code == 401
    superscript = signed_post(sub, event_body(41), previous="²")
    assert superscript.status_code == 400
    assert "X-Sudocode-Previous-Sequence" in superscript.json()["errors"][0]["path"]
    huge_time = signed_post(
        sub, event_body(41), previous=40, extra={"HTTP_X_SUDOCODE_SIGNATURE": f"t={'9' * 5000},v1=00"}
    )
    assert huge_time.status_code == 401
    assert signing.SIGNATURE_HEADER in huge_time.json()["detail"]
