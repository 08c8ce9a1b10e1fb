from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from accounts import (  # noqa: F401  (sign-in failure counter; OpenAPI auth extensions)
            backends,
            schema,
        )
