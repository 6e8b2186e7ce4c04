// A test OpenID provider for caplens' OIDC sign-in tests: the certified `oidc-provider`
// (pinned in package.json) with one confidential client, a fixed list of accounts and the
// library's built-in development login/consent pages, served over plain http on 127.0.0.1.
//
//   OIDC_PORT=0 OIDC_REDIRECT_URIS=http://127.0.0.1:3000/auth/oidc/callback node provider.mjs
//
// Environment:
//   OIDC_PORT            port to listen on (default 0: a free port is picked)
//   OIDC_CLIENT_ID       default "caplens"
//   OIDC_CLIENT_SECRET   default "caplens-test-secret"
//   OIDC_REDIRECT_URIS   comma separated, exact redirect URIs of the client (required)
//   DEBUG=oidc-provider:* the library's own debug log (stderr)
//
// Prints exactly one line `ready http://127.0.0.1:<port>` on stdout when listening (the issuer,
// no trailing slash); everything else (the library's dev-mode warnings) goes to stderr.
//   OIDC_EXIT_ON_STDIN_EOF=1  also stop when stdin reaches EOF (for a harness holding a pipe)
//
// Stops on SIGTERM / SIGINT (or, opted in, at EOF on stdin).
//
// Accounts (the dev login page takes any username and any password):
//   alice    alice@team.example (verified)   "Alice Admin"   groups ["caplens-admins"]
//   bob      bob@team.example (verified)     "Bob Builder"   groups []
//   carol    carol@team.example (NOT verified) "Carol Unverified" groups []
//   mallory  mallory@evil.example (verified) "Mallory"       groups []
//   anything else: signs in, but the account has no claims but `sub` (no email, name or
//   groups), so a relying party can test "provider gave no email".
// `sub` is the username itself.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const ACCOUNTS = {
  alice: { email: 'alice@team.example', email_verified: true, name: 'Alice Admin', groups: ['caplens-admins'] },
  bob: { email: 'bob@team.example', email_verified: true, name: 'Bob Builder', groups: [] },
  carol: { email: 'carol@team.example', email_verified: false, name: 'Carol Unverified', groups: [] },
  mallory: { email: 'mallory@evil.example', email_verified: true, name: 'Mallory', groups: [] },
};

const port = Number(process.env.OIDC_PORT ?? 0);
const clientId = process.env.OIDC_CLIENT_ID || 'caplens';
const clientSecret = process.env.OIDC_CLIENT_SECRET || 'caplens-test-secret';
const redirectUris = (process.env.OIDC_REDIRECT_URIS || '').split(',').map((s) => s.trim()).filter(Boolean);
if (redirectUris.length === 0) {
  console.error('provider.mjs: set OIDC_REDIRECT_URIS (comma separated)');
  process.exit(2);
}

// Listen first, so that with port 0 the issuer (which must contain the port) is known before the
// Provider is built; requests are handed to it once it exists.
const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

// A fresh RS256 signing key per run (instead of the library's fixed dev keys, which it warns
// about); relying parties fetch it from /jwks. RS256 is the ID token default and what Rust's
// `openidconnect` core types verify out of the box.
const signingKey = {
  ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
  kid: randomUUID(),
  alg: 'RS256',
  use: 'sig',
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: redirectUris, // http on 127.0.0.1 is fine for code flow ("web" clients)
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'openid email profile groups', // the scopes this client may ask for
  }],
  jwks: { keys: [signingKey] },

  // Scope -> claims. A key that is not a standard scope (here `groups`) becomes a scope of its
  // own and is listed in discovery's scopes_supported.
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  // By default (OIDC Core 5.4) scope-requested claims are only served by the userinfo endpoint
  // for response_type=code; false puts them in the ID token too, which is what caplens reads.
  conformIdTokenClaims: false,

  // Authorization code + PKCE only; S256 only (these are also the 8.x defaults, kept explicit).
  pkce: { methods: ['S256'], required: () => true },

  async findAccount(ctx, id) {
    const known = ACCOUNTS[id];
    return {
      accountId: id,
      // Called with the use ('id_token' / 'userinfo') and the granted scope; the library
      // filters the returned claims down to what was granted.
      async claims() {
        return known ? { sub: id, ...known } : { sub: id };
      },
    };
  },

  features: {
    devInteractions: { enabled: true }, // the built-in login + consent pages (default, explicit)
  },

  cookies: {
    // Cookies ignore ports: the provider and caplens both live on 127.0.0.1, so a browser (and
    // drive-login.mjs) sends each one's cookies to the other. Prefix ours to avoid clashing
    // with caplens' cookie names.
    names: { session: 'op_session', interaction: 'op_interaction', resume: 'op_interaction_resume' },
    // 8.x default for the long-lived session cookie is SameSite=None, which browsers drop unless
    // the cookie is Secure (impossible over http). Lax works for top-level redirects.
    long: { httpOnly: true, sameSite: 'lax' },
    short: { httpOnly: true, sameSite: 'lax' },
    keys: ['caplens-test-cookie-signing-key'],
  },
  // No `proxy` setting needed: over plain http the provider just doesn't mark its cookies
  // Secure and uses the issuer as given. (Behind a TLS-terminating proxy you'd set
  // provider.proxy = true so X-Forwarded-Proto is trusted.)
});

server.on('request', provider.callback());

// Surface server-side errors of the flow on stderr (helps when a test fails).
for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error']) {
  provider.on(event, (ctx, err) => console.error(`provider ${event}: ${err?.message} ${err?.error_description ?? ''}`));
}

process.stdout.write(`ready ${issuer}\n`);

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// Opt-in: a test harness that gives us a piped stdin can set OIDC_EXIT_ON_STDIN_EOF=1 so that we
// also stop when it dies (its end of the pipe closes). Not the default: with stdin at /dev/null
// we would stop at once.
if (process.env.OIDC_EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('end', stop).on('error', stop).resume();
}
