import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "federation_site.settings")

# Django must be set up before anything imports models; WebSocket routes join here in the subscriptions app.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

application = ProtocolTypeRouter({"http": django_asgi_app})

# Everything loaded so far lives as long as the process: keep it out of the garbage collector's full passes,
# which otherwise cost ~90 ms every few dozen requests (measured by benchmarks/bench_query.py).
gc.freeze()
