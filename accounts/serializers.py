"""JSON shapes for tenancy resources."""

from rest_framework import serializers

from accounts import keys as keymod
from accounts.models import APIKey, AuditEvent


class APIKeySerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = APIKey
        fields = ["id", "name", "prefix", "scopes", "created_by", "created_at", "last_used_at", "expires_at",
                  "revoked_at", "active"]


class APIKeyCreatedSerializer(APIKeySerializer):
    """A new key: its fields and, this once, the full key."""

    key = serializers.CharField(read_only=True, help_text="The full key `mem0_<prefix>_<secret>`, shown once.")

    class Meta(APIKeySerializer.Meta):
        fields = [*APIKeySerializer.Meta.fields, "key"]


class APIKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=keymod.ALL_SCOPES), required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label")

    class Meta:
        model = AuditEvent
        fields = ["id", "action", "actor", "target_type", "target_id", "ip", "user_agent", "metadata", "created_at"]
