from django.core.management import call_command

from accounts.models import APIKey, AuditEvent, Membership, Organization
from tests.conftest import client_for


def test_signup_creates_org_owner_and_shows_key_once(client, db):
    """The key is shown once, on the quickstart page sign-up lands on (tests/console has the page itself)."""
    r = client.post("/signup", {"username": "ada", "email": "ada@example.com", "password": "correct-horse-42",
                                "organization": "Analytical Engines"})
    assert r.status_code == 302
    org = Organization.objects.get(slug="analytical-engines")
    assert org.plan.slug == "free"
    assert Membership.objects.get(organization=org).role == "owner"
    page = client.get("/quickstart").content.decode()
    raw = page.split('<code id="new-key">')[1].split("</code>")[0]
    assert client_for(raw).get("/api/v1/me").json()["organization"]["slug"] == "analytical-engines"
    assert '<code id="new-key">' not in client.get("/quickstart").content.decode()
    assert '<code id="new-key">' not in client.get("/keys").content.decode()


def test_sign_in_is_audited_and_console_pages_render(client, org_a):
    assert client.post("/login", {"username": "org-a-owner", "password": "a-long-password-1"}).status_code == 302
    assert AuditEvent.objects.filter(organization=org_a[0], action="user.sign_in").exists()
    for page in ("/", "/keys", "/audit"):
        assert client.get(page).status_code == 200
    r = client.post("/keys", {"name": "from-console"})
    assert "new-key" in r.content.decode()
    key = APIKey.objects.get(name="from-console")
    client.post(f"/keys/{key.pk}/revoke")
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_session_api_access_uses_the_users_org(client, org_a):
    client.login(username="org-a-owner", password="a-long-password-1")
    assert client.get("/api/v1/me").json()["organization"]["slug"] == "org-a"


def test_console_cannot_revoke_another_tenants_key(client, org_a, org_b):
    client.login(username="org-a-owner", password="a-long-password-1")
    other = APIKey.objects.get(organization=org_b[0])
    assert client.post(f"/keys/{other.pk}/revoke").status_code == 404
    other.refresh_from_db()
    assert other.revoked_at is None


def test_createtenant_prints_a_working_key_last(db, capsys):
    call_command("createtenant", "initech", "--email", "bill@initech.example", "--plan", "pro")
    last = capsys.readouterr().out.strip().splitlines()[-1]
    me = client_for(last).get("/api/v1/me").json()
    assert me["organization"]["slug"] == "initech" and me["plan"]["slug"] == "pro"


def test_admin_hides_key_secrets_and_audit_is_read_only(admin_client, org_a):
    key = APIKey.objects.get(organization=org_a[0])
    page = admin_client.get(f"/admin/accounts/apikey/{key.pk}/change/").content.decode()
    assert key.digest not in page
    event = AuditEvent.objects.filter(organization=org_a[0]).first()
    assert admin_client.post(f"/admin/accounts/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()
