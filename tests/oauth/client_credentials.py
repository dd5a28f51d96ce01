"""A third-party OAuth2 client and resource server against a running keygate.

Gets tokens from keygate's token endpoint with Authlib's client-credentials flow (HTTP Basic and
form authentication), verifies each against the published JWKS with PyJWT's PyJWKClient, and
checks that a tampered token fails verification. Prints what it saw as one JSON object.

Usage: client_credentials.py BASE_URL CLIENT_ID CLIENT_SECRET SCOPE AUDIENCE
"""

import base64
import json
import sys

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session


def verify(jwks_client, token, audience, issuer):
    signing_key = jwks_client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        signing_key.key,
        algorithms=["RS256", "ES256", "EdDSA"],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "sub", "aud", "jti"]},
    )


def main():
    base, client_id, client_secret, scope, audience = sys.argv[1:6]
    metadata = requests.get(base + "/.well-known/oauth-authorization-server", timeout=10).json()
    jwks_client = jwt.PyJWKClient(metadata["jwks_uri"])
    seen = {"metadata": metadata, "tokens": []}
    for method in ("client_secret_basic", "client_secret_post"):
        session = OAuth2Session(client_id, client_secret, scope=scope, token_endpoint_auth_method=method)
        token = session.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
        access_token = token["access_token"]
        claims = verify(jwks_client, access_token, audience, metadata["issuer"])
        header = jwt.get_unverified_header(access_token)
        seen["tokens"].append({"method": method, "token": token, "claims": claims, "header": header})

    # A tampered token must not verify.
    header, payload, signature = seen["tokens"][0]["token"]["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = claims["scope"] + " admin:keys:write"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    try:
        verify(jwks_client, f"{header}.{forged}.{signature}", audience, metadata["issuer"])
        seen["tampered"] = "verified"
    except jwt.InvalidSignatureError:
        seen["tampered"] = "rejected"

    # A wrong secret gets RFC 6749's invalid_client.
    bad = requests.post(
        metadata["token_endpoint"],
        data={"grant_type": "client_credentials"},
        auth=(client_id, client_secret + "x"),
        timeout=10,
    )
    seen["wrong_secret"] = {"status": bad.status_code, "body": bad.json(), "www_authenticate": bad.headers.get("WWW-Authenticate")}
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
