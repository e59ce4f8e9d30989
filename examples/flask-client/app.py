"""The Flask tutorial's /login, moved to Keyward.

Before, /login checked the password against the users table and minted an HS256 JWT
with the app's SECRET_KEY. Now Keyward holds the users (imported with their hashes,
see docs/migrating-from-flask.md) and issues the tokens: /login sends the username and
password to Keyward's token endpoint (the password grant, for a first-party app moving
off its own login form) with requests-oauthlib, keeps the tokens server-side, and
/refresh renews them through Keyward.

    KEYWARD_ISSUER=http://127.0.0.1:8080 KEYWARD_CLIENT_ID=web KEYWARD_CLIENT_SECRET=... \
    API_URL=http://127.0.0.1:5000 PORT=5001 python3 examples/flask-client/app.py

    curl -c jar -u alice:password -X POST http://127.0.0.1:5001/login
    curl -b jar http://127.0.0.1:5001/me          # calls the resource server with the token
    curl -b jar -X POST http://127.0.0.1:5001/refresh

Needs Flask, requests and requests-oauthlib (Debian: python3-flask python3-requests
python3-requests-oauthlib).
"""

import os
import secrets
import threading
import time

import requests
from flask import Flask, jsonify, make_response, request
from oauthlib.oauth2 import LegacyApplicationClient, OAuth2Error
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

ISSUER = os.environ["KEYWARD_ISSUER"]
CLIENT_ID = os.environ["KEYWARD_CLIENT_ID"]
CLIENT_SECRET = os.environ["KEYWARD_CLIENT_SECRET"]
API_URL = os.environ.get("API_URL", "http://127.0.0.1:5000")
PORT = int(os.environ.get("PORT", "5001"))
SCOPE = ["api:read"]
TIMEOUT = 10  # seconds; requests has no default timeout

# requests-oauthlib refuses http:// token endpoints. Allow it only for a Keyward on
# loopback during development; in production the issuer is https.
if ISSUER.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
    os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

# The token endpoint comes from discovery, not from a hand-built URL.
META = requests.get(ISSUER + "/.well-known/openid-configuration", timeout=TIMEOUT).json()
if META.get("issuer") != ISSUER:
    raise SystemExit(f"discovery names issuer {META.get('issuer')!r}, not {ISSUER!r}")
TOKEN_URL = META["token_endpoint"]

# Client authentication is HTTP Basic (client_secret_basic), the method Keyward
# registers by default. Trap: requests-oauthlib's documented refresh recipe passes
# client_id and client_secret as extra body fields (client_secret_post), which puts the
# secret in request bodies and is not how the client is registered: pass auth= every
# time, to fetch_token and to refresh_token.
CLIENT_AUTH = HTTPBasicAuth(CLIENT_ID, CLIENT_SECRET)

# Tokens stay on the server, keyed by a random session id in an HttpOnly cookie: the
# refresh token must never reach the browser. (A real app uses its session store.)
TOKENS = {}
LOCK = threading.Lock()

app = Flask(__name__)


def oauth_session(token=None):
    # Trap: OAuth2Session(scope=...) does not put the scope in a password-grant request
    # (requests-oauthlib 1.3 drops it): without scope= in fetch_token Keyward grants the
    # client's default scopes instead. Pass it to fetch_token, as login() does.
    return OAuth2Session(client=LegacyApplicationClient(client_id=CLIENT_ID), scope=SCOPE, token=token)


@app.post("/login")
def login():
    auth = request.authorization
    if not auth or not auth.username or not auth.password:
        return make_response("Could not verify", 401, {"WWW-Authenticate": 'Basic realm="Login required"'})
    try:
        token = oauth_session().fetch_token(
            TOKEN_URL,
            username=auth.username,
            password=auth.password,
            scope=SCOPE,  # see oauth_session(): without it the scope is dropped
            auth=CLIENT_AUTH,  # Basic; include_client_id stays False, nothing secret in the body
            timeout=TIMEOUT,
        )
    except OAuth2Error as e:
        # invalid_grant: wrong username or password (Keyward does not say which), or a
        # locked account. Never log the password.
        return jsonify(error=e.error), 401
    sid = secrets.token_urlsafe(32)
    with LOCK:
        TOKENS[sid] = token
    resp = jsonify(expires_in=token.get("expires_in"), scope=token.get("scope"))
    resp.set_cookie("sid", sid, httponly=True, samesite="Lax", secure=not ISSUER.startswith("http://"))
    return resp


def refresh(sid):
    """Renew the tokens of session sid through Keyward and store the new pair.

    Keyward rotates refresh tokens: every refresh answers a new refresh token and the old
    one is spent. Presenting a spent one again is taken as theft and revokes the whole
    session, so store the new token before anything else can use the old one (the lock),
    and never retry a refresh with the token just sent.
    """
    with LOCK:
        token = TOKENS.get(sid)
        if token is None:
            return None
        new = oauth_session(token).refresh_token(
            TOKEN_URL,
            refresh_token=token["refresh_token"],
            auth=CLIENT_AUTH,  # Basic, not client_id/client_secret in the body
            timeout=TIMEOUT,
        )
        TOKENS[sid] = new
        return new


@app.post("/refresh")
def refresh_route():
    try:
        token = refresh(request.cookies.get("sid", ""))
    except OAuth2Error as e:
        return jsonify(error=e.error), 401  # expired or revoked: sign in again
    if token is None:
        return jsonify(error="not signed in"), 401
    return jsonify(expires_in=token.get("expires_in"), scope=token.get("scope"))


@app.get("/me")
def me():
    sid = request.cookies.get("sid", "")
    with LOCK:
        token = TOKENS.get(sid)
    if token is None:
        return jsonify(error="not signed in"), 401
    # Access tokens are short-lived (RS256, minutes): refresh a little before expiry.
    if token.get("expires_at", 0) - time.time() < 30:
        try:
            token = refresh(sid)
        except OAuth2Error as e:
            return jsonify(error=e.error), 401
    r = requests.get(API_URL + "/protected", headers={"Authorization": "Bearer " + token["access_token"]},
                     timeout=TIMEOUT)
    return jsonify(api_status=r.status_code, api=r.json() if r.content else None)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=PORT)
