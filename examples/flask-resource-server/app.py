"""A Flask resource server that accepts Keyward access tokens.

Run:  KEYWARD_ISSUER=http://127.0.0.1:8080 KEYWARD_AUDIENCE=api PORT=5000 \
      python3 examples/flask-resource-server/app.py

GET /protected needs a valid access token with scope api:read and answers the
token's subject; GET /orders needs api:write; GET /healthz answers 200 once the
JWKS has been fetched. Needs Flask, PyJWT (2.6 or later) and cryptography
(Debian: python3-flask python3-jwt python3-cryptography).
"""

import functools
import json
import os
import re
import sys
import threading
import time
import urllib.request

import jwt
from flask import Flask, g, jsonify, request
from jwt import PyJWKClient, PyJWKSet
from jwt.exceptions import PyJWKClientError

ISSUER = os.environ["KEYWARD_ISSUER"]  # exact: no trailing slash added or removed
AUDIENCE = os.environ["KEYWARD_AUDIENCE"]
PORT = int(os.environ.get("PORT", "5000"))
REALM = AUDIENCE
LEEWAY = 10  # seconds of clock skew tolerated on exp, nbf and iat
HTTP_TIMEOUT = 5  # seconds for discovery and JWKS fetches


def fetch_json(url):
    """GET url and return (the decoded JSON, the response headers), with a timeout."""
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp:
        return json.load(resp), resp.headers


class KeywardKeyCache(PyJWKClient):
    """PyJWT's PyJWKClient with the fixes a resource server needs (PyJWT 2.6-2.8):

    * it honours the JWKS's Cache-Control max-age (PyJWKClient keeps a fixed lifespan);
    * an unknown kid refetches the JWKS at most once per cooldown (PyJWKClient refetches
      on every unknown kid, so a flood of forged kids is a flood of fetches);
    * a failed fetch keeps the last good key set (PyJWKClient's cache is emptied);
    * every fetch has a timeout (none before PyJWT 2.8).
    The typ header, which PyJWKClient never looks at, is checked in validate().
    """

    def __init__(self, jwks_uri, cooldown=30, default_max_age=300):
        super().__init__(jwks_uri, cache_jwk_set=False)
        self.cooldown = cooldown
        self.default_max_age = default_max_age
        self._lock = threading.Lock()
        self._keys = None  # the last good PyJWKSet
        self._expires = 0.0
        self._last_unknown_fetch = float("-inf")

    def fetch_data(self):
        # Overrides PyJWKClient.fetch_data: a timeout, and the max-age of the answer.
        data, headers = fetch_json(self.uri)
        max_age = self.default_max_age
        m = re.search(r"max-age=(\d+)", headers.get("Cache-Control", ""))
        if m:
            max_age = min(max(int(m.group(1)), 10), 86400)
        return data, max_age

    def _refresh(self):
        """Fetch the key set; on failure keep the last good one (and say so)."""
        try:
            data, max_age = self.fetch_data()
            keys = PyJWKSet.from_dict(data)
        except Exception as e:  # network, JSON or key errors: keep what we have
            print(f"JWKS fetch failed, keeping the last good key set: {e}", file=sys.stderr)
            if self._keys is not None:
                self._expires = time.monotonic() + min(self.cooldown, 60)  # retry soon
            return
        self._keys, self._expires = keys, time.monotonic() + max_age

    @property
    def ready(self):
        return self._keys is not None

    def get_signing_key(self, kid):
        with self._lock:
            now = time.monotonic()
            if self._keys is None or now >= self._expires:
                self._refresh()
            key = self._find(kid)
            if key is None and now - self._last_unknown_fetch >= self.cooldown:
                self._last_unknown_fetch = now
                self._refresh()  # a rotation: the new kid should be there now
                key = self._find(kid)
            if key is None:
                raise PyJWKClientError("no key with this kid")
            return key

    def _find(self, kid):
        if self._keys is None or not kid:
            return None
        for k in self._keys.keys:
            if k.key_id == kid and k.public_key_use in ("sig", None):
                return k
        return None


def discover():
    """Read the issuer's metadata; its issuer must be exactly ours (RFC 8414 §3.3)."""
    meta, _ = fetch_json(ISSUER + "/.well-known/openid-configuration")
    if meta.get("issuer") != ISSUER:
        raise RuntimeError(f"discovery names issuer {meta.get('issuer')!r}, not {ISSUER!r}")
    return meta["jwks_uri"]


keys = None  # set by start(), once discovery answered


def start():
    """Discover the JWKS and fetch it, retrying every second until both worked."""
    global keys
    cache = None
    while cache is None or not cache.ready:
        try:
            if cache is None:
                cache = KeywardKeyCache(discover())
            cache._refresh()
        except Exception as e:
            print(f"waiting for Keyward at {ISSUER}: {e}", file=sys.stderr)
        if cache is None or not cache.ready:
            time.sleep(1)
    keys = cache


class TokenError(Exception):
    pass


def validate(token):
    """Return the claims of a valid Keyward access token (RFC 9068), or raise."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenError("malformed token")
    if header.get("alg") != "RS256":  # never none, never HS256 with the public key
        raise TokenError("unexpected algorithm")
    if str(header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
        raise TokenError("not an access token")
    if keys is None:
        raise TokenError("keys not loaded yet")
    try:
        key = keys.get_signing_key(header.get("kid"))
        return jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=LEEWAY,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except (jwt.PyJWTError, PyJWKClientError) as e:
        raise TokenError(type(e).__name__)


def challenge(status, error=None, description=None, scope=None):
    """An RFC 6750 §3 answer: 401 or 403 with WWW-Authenticate."""
    parts = [f'realm="{REALM}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{description}"')
    if scope:
        parts.append(f'scope="{scope}"')
    body = {"error": error} if error else {"error": "unauthorized"}
    resp = jsonify(body)
    resp.status_code = status
    resp.headers["WWW-Authenticate"] = "Bearer " + ", ".join(parts)
    return resp


def token_required(scope):
    """Require a valid Keyward access token carrying scope."""

    def decorator(f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            auth = request.headers.get("Authorization", "")
            if not auth:
                return challenge(401)
            kind, _, token = auth.partition(" ")
            if kind.lower() != "bearer" or not token:
                return challenge(401, "invalid_request", "use the Bearer scheme")
            try:
                claims = validate(token.strip())
            except TokenError as e:
                return challenge(401, "invalid_token", str(e))
            if scope not in str(claims.get("scope", "")).split():
                return challenge(403, "insufficient_scope", f"needs {scope}", scope)
            g.claims = claims
            return f(*args, **kwargs)

        return wrapper

    return decorator


app = Flask(__name__)


@app.get("/healthz")
def healthz():
    if keys is None or not keys.ready:
        return jsonify(status="starting"), 503
    return jsonify(status="ok")


@app.get("/protected")
@token_required("api:read")
def protected():
    return jsonify(message="Protected resource!", sub=g.claims["sub"])


@app.get("/orders")
@token_required("api:write")
def orders():
    return jsonify(orders=[], sub=g.claims["sub"])


if __name__ == "__main__":
    threading.Thread(target=start, daemon=True).start()
    app.run(host="127.0.0.1", port=PORT)
