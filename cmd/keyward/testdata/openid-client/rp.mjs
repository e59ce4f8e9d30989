// The Node.js relying party of cmd/keyward's end-to-end test: openid-client
// v6 as an application uses it. Arguments: issuer, client id (a public
// client), redirect URI, post-logout redirect URI. It discovers the issuer,
// prints {"authorization_url"} (PKCE S256, state, nonce), reads the URL the
// browser came back to on standard input, exchanges the code (checking
// state, iss per RFC 9207, and the ID token with its nonce), and prints
// {"claims", "scope", "end_session_url"}.
import * as client from 'openid-client';
import * as readline from 'node:readline';

const [issuer, clientId, redirectUri, postLogout] = process.argv.slice(2);
// A loopback http issuer: openid-client refuses http unless told.
const config = await client.discovery(new URL(issuer), clientId, undefined, client.None(),
  { execute: [client.allowInsecureRequests] });
const verifier = client.randomPKCECodeVerifier();
const challenge = await client.calculatePKCECodeChallenge(verifier);
const state = client.randomState();
const nonce = client.randomNonce();
const authorizationUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri, scope: 'openid profile email',
  code_challenge: challenge, code_challenge_method: 'S256', state, nonce,
});
console.log(JSON.stringify({ authorization_url: authorizationUrl.href }));

const rl = readline.createInterface({ input: process.stdin });
const callback = await new Promise((resolve) => rl.once('line', resolve));
rl.close();
const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
  pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
});
const endSession = client.buildEndSessionUrl(config, {
  id_token_hint: tokens.id_token, post_logout_redirect_uri: postLogout, state: 'bye-' + state,
});
console.log(JSON.stringify({ claims: tokens.claims(), scope: tokens.scope, end_session_url: endSession.href }));
