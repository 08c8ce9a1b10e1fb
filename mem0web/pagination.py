"""Cursor pagination for every list endpoint (stable under inserts, no offset scans)."""

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination


class Cursor(CursorPagination):
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    ordering = ("-created_at", "-id")

    def decode_cursor(self, request):
        """DRF's decoding, and the position (client text, compared with `created_at`) must be a timestamp:
        anything else is DRF's "Invalid cursor" 404, not a database error (a 500 on 426d6cf)."""
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            try:
                valid = parse_datetime(cursor.position) is not None
            except ValueError:
                valid = False
            if not valid:
                raise NotFound(self.invalid_cursor_message)
        return cursor
