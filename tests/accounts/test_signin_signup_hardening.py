"""The console's public doors under attack: open redirects, password guessing, sign-up floods, enumeration."""

import re

import pytest
from django.contrib.auth import get_user_model

from accounts.models import APIKey, Organization
from tests.conftest import client_for

PASSWORD = "a-long-password-1"


def sign_in(client, username, password, next_url=None, addr="10.1.0.1"):
    url = "/login" + (f"?next={next_url}" if next_url else "")
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=addr)


def sign_up(client, username, email, organization="Acme", addr="10.2.0.1"):
    return client.post(
        "/signup",
        {"username": username, "email": email, "password": "correct-horse-42", "organization": organization},
        REMOTE_ADDR=addr,
    )


# open redirect (finding 14)


@pytest.mark.parametrize("target", ["https://evil.example/phish", "//evil.example/phish", "\\\\evil.example"])
def test_sign_in_never_redirects_off_site(client, org_a, target):
    r = sign_in(client, "org-a-owner", PASSWORD, next_url=target)
    assert r.status_code == 302
    assert "evil.example" not in r["Location"] and r["Location"] == "/"


def test_sign_in_follows_a_local_next(client, org_a):
    assert sign_in(client, "org-a-owner", PASSWORD, next_url="/keys")["Location"] == "/keys"


# password guessing (finding 15)


def test_wrong_passwords_lock_the_account_and_then_the_right_one_is_refused(client, org_a, settings):
    for _ in range(settings.MEM0_SIGNIN_FAILURES_PER_ACCOUNT):
        assert sign_in(client, "org-a-owner", "wrong-password-00").status_code == 200
    r = sign_in(client, "org-a-owner", PASSWORD)
    assert r.status_code == 429
    assert "Too many failed sign-in attempts" in r.content.decode()
    assert 0 < int(r["Retry-After"]) <= settings.MEM0_SIGNIN_LOCKOUT_SECONDS
    assert "_auth_user_id" not in client.session
    # another address does not help: the lockout is per account (case of the name does not matter either)
    assert sign_in(client, "ORG-A-OWNER", PASSWORD, addr="10.9.9.9").status_code == 429


def test_the_account_lockout_also_covers_the_admin_login(client, org_a, settings):
    for _ in range(settings.MEM0_SIGNIN_FAILURES_PER_ACCOUNT):
        sign_in(client, "org-a-owner", "wrong-password-00")
    get_user_model().objects.filter(username="org-a-owner").update(is_staff=True, is_superuser=True)
    r = client.post(
        "/admin/login/", {"username": "org-a-owner", "password": PASSWORD}, REMOTE_ADDR="10.7.0.1"
    )
    assert r.status_code == 200 and "_auth_user_id" not in client.session


def test_one_address_guessing_many_accounts_is_locked_out(client, tenant, settings):
    settings.MEM0_SIGNIN_FAILURES_PER_ADDRESS = 4
    tenant("victim")
    for i in range(4):
        assert sign_in(client, f"nobody-{i}", "wrong-password-00", addr="10.3.0.1").status_code == 200
    r = sign_in(client, "victim-owner", PASSWORD, addr="10.3.0.1")
    assert r.status_code == 429 and "Retry-After" in r
    assert sign_in(client, "victim-owner", PASSWORD, addr="10.3.0.2").status_code == 302


def test_ipv6_clients_are_counted_per_64(client, tenant, settings):
    settings.MEM0_SIGNIN_FAILURES_PER_ADDRESS = 3
    tenant("victim")
    for i in range(3):
        sign_in(client, f"nobody-{i}", "wrong-password-00", addr=f"2001:db8:1:2::{i + 1}")
    assert sign_in(client, "victim-owner", PASSWORD, addr="2001:db8:1:2:ffff::9").status_code == 429


# sign-up flood (finding 15)


def test_sign_ups_are_limited_per_address(client, db, settings):
    settings.MEM0_SIGNUPS_PER_ADDRESS_PER_HOUR = 2
    assert sign_up(client, "bot1", "bot1@example.com", "Bot 1").status_code == 302
    client.logout()
    assert sign_up(client, "bot2", "bot2@example.com", "Bot 2").status_code == 302
    client.logout()
    r = sign_up(client, "bot3", "bot3@example.com", "Bot 3")
    assert r.status_code == 429 and "Too many sign-ups" in r.content.decode() and "Retry-After" in r
    assert not get_user_model().objects.filter(username="bot3").exists()
    assert sign_up(client, "human", "human@example.com", "Human", addr="10.2.0.2").status_code == 302


def test_free_organisations_are_limited_per_address(client, db, settings):
    settings.MEM0_FREE_ORGS_PER_ADDRESS = 2
    for i in range(2):
        assert sign_up(client, f"bot{i}", f"bot{i}@example.com", f"Bot {i}").status_code == 302
        client.logout()
    r = sign_up(client, "bot9", "bot9@example.com", "Bot 9")
    assert r.status_code == 429 and "limit of free organisations" in r.content.decode()
    assert Organization.objects.filter(name__startswith="Bot").count() == 2


# e-mail confirmation and enumeration (finding 15)


@pytest.fixture
def confirming(settings):
    settings.MEM0_SIGNUP_CONFIRMATION = True
    return settings


def confirmation_link(mail) -> str:
    return re.search(r"http://testserver(/signup/confirm/\S+)", mail.body).group(1)


def test_with_confirmation_a_new_account_is_inactive_until_its_link_is_followed(
    client, db, confirming, mailoutbox
):
    r = sign_up(client, "ada", "ada@example.com", "Analytical Engines")
    assert r.status_code == 200 and "Check your e-mail" in r.content.decode()
    user = get_user_model().objects.get(username="ada")
    assert not user.is_active and "_auth_user_id" not in client.session
    assert not APIKey.objects.filter(organization__memberships__user=user).exists()
    assert sign_in(client, "ada", "correct-horse-42").status_code == 200  # not yet
    link = confirmation_link(mailoutbox[0])
    assert mailoutbox[0].to == ["ada@example.com"]
    assert client.get(link).status_code == 200  # a mail scanner's GET confirms nothing
    assert not get_user_model().objects.get(username="ada").is_active
    r = client.post(link)
    assert r.status_code == 302 and r["Location"] == "/quickstart"
    raw = client.get("/quickstart").content.decode().split('<code id="new-key">')[1].split("</code>")[0]
    assert client_for(raw).get("/api/v1/me").json()["organization"]["name"] == "Analytical Engines"
    client.logout()
    assert client.post(link).status_code == 400  # once only
    assert sign_in(client, "ada", "correct-horse-42").status_code == 302


def test_a_tampered_or_expired_link_is_refused(client, db, confirming, mailoutbox):
    sign_up(client, "ada", "ada@example.com")
    link = confirmation_link(mailoutbox[0])
    assert client.post(link[:-2] + "xx").status_code == 400
    confirming.MEM0_SIGNUP_CONFIRM_SECONDS = -1
    assert client.post(link).status_code == 400
    assert not get_user_model().objects.get(username="ada").is_active


def test_a_taken_name_or_email_answers_like_a_free_one_and_tells_the_owner(
    client, org_a, confirming, mailoutbox
):
    free = sign_up(client, "newcomer", "new@example.com", "Fresh")
    taken_name = sign_up(client, "org-a-owner", "someone@example.com", "Fresh")
    taken_email = sign_up(client, "other-name", "ORG-A@example.com", "Fresh")
    taken_org = sign_up(client, "third", "third@example.com", "org-a")
    pages = {r.status_code for r in (free, taken_name, taken_email, taken_org)}
    assert pages == {200}
    assert free.content == taken_name.content == taken_email.content == taken_org.content
    notices = [m for m in mailoutbox if m.to == ["org-a@example.com"]]
    assert len(notices) == 2 and "No account was created" in notices[0].body
    assert not get_user_model().objects.filter(username__in=["other-name"]).exists()
    # the organisation name was free to reuse: it got its own slug, and nothing said "taken"
    assert Organization.objects.filter(name="org-a").exclude(slug="org-a").exists()


def test_without_confirmation_sign_up_signs_in_and_a_taken_org_name_gets_its_own_slug(client, org_a):
    r = sign_up(client, "someone", "someone@example.com", "org-a")
    assert r.status_code == 302
    org = Organization.objects.get(memberships__user__username="someone")
    assert org.slug.startswith("org-a-") and org.name == "org-a"
