from django.http import HttpRequest

from federation_site import identity


def node(request: HttpRequest) -> dict:
    return {"node": identity.describe()}
