"""An HTTP-only service for the launcher tests (`pamong run` / `pamong serve`): it needs no
broker and no database, and has a slow route to show that a stop lets in-flight work finish."""

import time

from nameko.web.handlers import http


class HelloService:
    name = "hello"

    @http("GET", "/hello")
    def hello(self, request):
        return 200, "hello"

    @http("GET", "/slow")
    def slow(self, request):
        time.sleep(2)
        return 200, "done"
