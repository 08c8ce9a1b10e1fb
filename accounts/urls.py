from django.urls import path

from accounts import api, views

api_urlpatterns = [
    path("me", api.MeView.as_view(), name="api-me"),
    path("keys", api.KeyListView.as_view(), name="api-keys"),
    path("keys/<str:key_id>", api.KeyDetailView.as_view(), name="api-key"),
    path("audit", api.AuditListView.as_view(), name="api-audit"),
]

console_urlpatterns = [
    path("", views.home, name="console-home"),
    path("signup", views.signup, name="console-signup"),
    path("signup/confirm/<str:token>", views.signup_confirm, name="console-signup-confirm"),
    path("login", views.signin, name="console-signin"),
    path("logout", views.signout, name="console-signout"),
    path("keys", views.keys, name="console-keys"),
    path("keys/<int:key_id>/revoke", views.key_revoke, name="console-key-revoke"),
    path("audit", views.audit, name="console-audit"),
]
