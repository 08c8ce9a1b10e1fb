"""The ASGI handler Mem0 serves HTTP with."""

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler


class SyncChainASGIHandler(ASGIHandler):
    """Django's ASGI handler, but the middleware chain and the view run in one worker thread per request.

    Stock ASGI runs each MiddlewareMixin hook through sync_to_async (about 20 thread hops per request with
    our stack) or, with a sync-only middleware, bounces back to the event loop for the innermost handler;
    both wait on the busy loop (py-spy: 3/4 of a request's time was spent waiting there). Our views are
    sync, so the whole chain runs sync in one hop. Streaming responses with async iterators still stream.
    """

    def __init__(self):
        super().__init__()
        self.load_middleware(is_async=False)

    async def get_response_async(self, request):
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)
