"""What issue 17's defences cost per message: signing and verifying one RFC 9421 signature (target: under 0.2 ms
each; `*_library_only`: the same with the `http-message-signatures` library alone, the figure before our fast
path), the raw Ed25519 operations underneath (the floor), minting and checking a JWT, and the URL guard per call
(a vouched origin, a public IP literal, a name through a stubbed resolver: no DNS, no traffic).

Pure functions, in this process: no node, no database (JWT checking needs one, so it times PyJWT's decode with
the same options `remotes.auth.caller_for_jwt` passes). Prints one JSON document on stdout; progress goes to
stderr. Nothing is asserted about the times.

    .venv/bin/python benchmarks/bench_security.py [--rounds 2000]
"""

from __future__ import annotations

import argparse
import email.utils
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jwt  # noqa: E402
import requests  # noqa: E402
from common import machine, percentile, progress  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from http_message_signatures import HTTPMessageSigner, algorithms  # noqa: E402

from federation_site.keys import NodeKey  # noqa: E402
from remotes import urlguard  # noqa: E402
from remotes.signatures import (  # noqa: E402
    COVERED,
    LABEL,
    SIGNATURE_HEADERS,
    TAG,
    _Keys,
    _library_verify,
    sign_request,
    verify_request,
)
from remotes.urlguard import UrlGuard  # noqa: E402

URL = "https://api-service.example.com/api/v1/federation/query"


def timed(function, rounds: int) -> dict:
    """Per-call wall time in milliseconds: p50, p90, p99 over `rounds` calls after a warm-up, and the CPU time
    of this process per call (`cpu_ms_per_call`: time.process_time over all the rounds; the figure to trust on
    a loaded machine, where another process may take the core in the middle of a wall-clock sample)."""
    for _ in range(min(100, rounds)):
        function()
    samples = []
    cpu_started = time.process_time()
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    cpu = (time.process_time() - cpu_started) * 1000 / rounds
    return {
        "p50_ms": round(percentile(samples, 0.5), 4),
        "p90_ms": round(percentile(samples, 0.9), 4),
        "p99_ms": round(percentile(samples, 0.99), 4),
        "cpu_ms_per_call": round(cpu, 4),
    }


def library_figures(key: NodeKey, body: bytes, message, rounds: int) -> tuple[dict, dict]:
    """The same signature made and checked by the `http-message-signatures` library alone (what
    remotes/signatures.py did before its fast path, and still does for any other shape): the before figure,
    measured in the same minute as the after."""
    resolver = _Keys(private=key.private_key, public={key.key_id: key.private_key.public_key()})
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=resolver)
    prepared = message()

    def sign() -> None:
        for name in SIGNATURE_HEADERS:
            prepared.headers.pop(name, None)
        prepared.headers["Date"] = email.utils.formatdate(usegmt=True)
        signer.sign(prepared, key_id=key.key_id, label=LABEL, tag=TAG, covered_component_ids=COVERED, body=body)

    signed = timed(sign, rounds)
    lowered = {name.lower(): value for name, value in prepared.headers.items()}
    public = {key.key_id: key.private_key.public_key()}
    verified = timed(
        lambda: _library_verify(method="POST", url=URL, headers=lowered, body=body, public_keys=public), rounds
    )
    return signed, verified


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    key = NodeKey(Ed25519PrivateKey.generate())
    public = {key.key_id: key.private_key.public_key()}
    body = json.dumps({"type": "query", "from": "github.com/org/frontend", "query": {"entity": "issue"}}).encode()

    def message() -> requests.PreparedRequest:
        return requests.Request(
            "POST", URL, data=body, headers={"Content-Type": "application/json", "X-Correlation-ID": uuid.uuid4().hex}
        ).prepare()

    progress("signing and verifying")
    prepared = message()
    sign = timed(lambda: sign_request(prepared, key_id=key.key_id, private_key=key.private_key, body=body), args.rounds)
    headers = dict(prepared.headers)
    verify = timed(
        lambda: verify_request(method="POST", url=URL, headers=headers, body=body, public_keys=public), args.rounds
    )
    library_sign, library_verify = library_figures(key, body, message, args.rounds)
    raw_sign = timed(lambda: key.private_key.sign(body), args.rounds)
    signature = key.private_key.sign(body)
    raw_verify = timed(lambda: key.private_key.public_key().verify(signature, body), args.rounds)

    progress("JWT")
    now = datetime.now(UTC)
    claims = {"iss": "github.com/org/frontend", "aud": "github.com/org/api-service", "iat": now,
              "exp": now + timedelta(minutes=5), "jti": uuid.uuid4().hex}  # fmt: skip
    token = jwt.encode(claims, key.private_key, algorithm="EdDSA")
    mint = timed(lambda: jwt.encode(claims, key.private_key, algorithm="EdDSA"), args.rounds)
    check = timed(
        lambda: jwt.decode(
            token,
            key=key.private_key.public_key(),
            algorithms=["EdDSA"],
            audience="github.com/org/api-service",
            issuer="github.com/org/frontend",
            options={"require": ["iss", "aud", "exp", "iat", "jti"]},
        ),
        args.rounds,
    )

    progress("the URL guard")
    urlguard.resolve = lambda host, port: ["93.184.216.34"]  # a stub: no DNS query leaves this process
    guard = UrlGuard.for_endpoints(["http://127.0.0.1:8001/api/v1"])
    vouched = timed(lambda: guard.check("http://127.0.0.1:8001/api/v1/webhooks/cross-repo"), args.rounds)
    literal = timed(lambda: guard.check("https://93.184.216.34/hook"), args.rounds)
    named = timed(lambda: guard.check("https://hooks.example.com/hook"), args.rounds)

    def refused() -> None:
        try:
            guard.check("https://169.254.169.254/latest/meta-data/")
        except urlguard.UrlRefused:
            pass

    refusal = timed(refused, args.rounds)
    print(
        json.dumps(
            {
                "benchmark": "security",
                "target_ms": {"sign": 0.2, "verify": 0.2},
                "rounds": args.rounds,
                "body_bytes": len(body),
                "rfc9421_sign": sign,
                "rfc9421_verify": verify,
                "rfc9421_sign_library_only": library_sign,
                "rfc9421_verify_library_only": library_verify,
                "ed25519_sign_raw": raw_sign,
                "ed25519_verify_raw": raw_verify,
                "jwt_mint": mint,
                "jwt_check": check,
                "url_guard_vouched_origin": vouched,
                "url_guard_public_ip": literal,
                "url_guard_name_stub_resolver": named,
                "url_guard_refusal": refusal,
                "machine": machine(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
