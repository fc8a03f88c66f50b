"""A small service with pages, used to test the page kernel (not a product module)."""

from nameko.dependency_providers import Config

from pamong.health import HealthEndpoints
from pamong.replica import REPLICA_INDEXES
from pamong.storage import Mongo
from pamong.web import Problem
from pamong.web.pages import PageEndpoints, Pages, page

PAGES = Pages(__file__)  # html/ and static/ beside this file


class PagesKernelService(PageEndpoints, HealthEndpoints):
    name = "pagekernel"
    db = Mongo(indexes=REPLICA_INDEXES)
    config = Config()

    @page("/contoh")
    def example(self, request):
        return PAGES.render(request, "contoh.html", words=request.args.get("kata", ""))

    @page("/contoh/<code>", cache="no-store")
    def example_code(self, request, code):
        if code == "tidak-ada":
            raise Problem(404, "Kode ini tidak dikenal.")
        return PAGES.render(request, "contoh.html", words=code)

    @page("/rusak")
    def broken(self, request):
        raise RuntimeError("a bug, shown to nobody")

    @page("/unggah", method="POST", max_body=1024)
    def upload(self, request):
        return PAGES.render(request, "contoh.html", words=str(len(request.files["berkas"].read())))
