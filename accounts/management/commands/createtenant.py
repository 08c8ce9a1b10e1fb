"""`manage.py createtenant SLUG --email EMAIL [--plan free|pro|enterprise]`: prints the key alone on its last line."""

import secrets

from django.core.management.base import BaseCommand, CommandError

from accounts import services
from mem0web.errors import Mem0Error


class Command(BaseCommand):
    help = "Create an organisation, its owner and an API key; the key is printed alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--email", required=True)
        parser.add_argument("--plan", default="free", choices=["free", "pro", "enterprise"])
        parser.add_argument("--username", default=None)

    def handle(self, slug, email, plan, username, **options):
        try:
            org, user, raw = services.tenant_signup(username=username or slug, email=email,
                                                    password=secrets.token_urlsafe(24), org_name=slug,
                                                    org_slug=slug, plan=plan)
        except Mem0Error as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"organisation {org.slug} (plan {plan}), owner {user.username} <{email}>")
        self.stdout.write(raw)
