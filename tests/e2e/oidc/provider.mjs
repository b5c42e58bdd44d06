// A real OpenID provider for tests/e2e/sso.rs: `oidc-provider` (npm, pinned in
// tests/e2e/oidc/package.json), with only what a test needs around it:
//
// - accounts from OIDC_ACCOUNTS (JSON: {sub: {email, email_verified, preferred_username}});
// - no login form: the interaction logs in the account set by `POST /_test/login?sub=…` and
//   grants the scopes asked, as a user clicking through would;
// - the signing key from OIDC_KEYS (a JWKS file, made on first use): a test restarts the
//   provider with another file to rotate its keys;
// - OIDC_CLOCK_SKEW (seconds): the provider's clock, hence its tokens' iat and exp, moved;
// - OIDC_FORGE_JWKS=1: /jwks serves another key under the signing key's kid, so that every ID
//   token's signature is wrong for the keys the relying party is given.
//
// Run: node provider.mjs (OIDC_MODULES = the node_modules folder holding oidc-provider).

import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { generateKeyPairSync, randomUUID } from 'node:crypto';

const modules = process.env.OIDC_MODULES;
const { default: Provider } = await import(pathToFileURL(join(modules, 'oidc-provider/lib/index.js')).href);

const skew = Number(process.env.OIDC_CLOCK_SKEW || 0) * 1000;
if (skew) {
  const now = Date.now;
  Date.now = () => now() + skew;
}

function newKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

const keysFile = process.env.OIDC_KEYS;
if (!existsSync(keysFile)) writeFileSync(keysFile, JSON.stringify({ keys: [newKey()] }));
const jwks = JSON.parse(readFileSync(keysFile, 'utf8'));

const accounts = JSON.parse(process.env.OIDC_ACCOUNTS || '{}');
const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.OIDC_CLIENT_ID,
    client_secret: process.env.OIDC_CLIENT_SECRET,
    redirect_uris: [process.env.OIDC_REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  jwks,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username'],
  },
  // The claims of the scopes asked for go in the ID token, as Keycloak's do.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  async findAccount(ctx, sub) {
    const account = accounts[sub];
    if (!account) return undefined;
    return { accountId: sub, async claims() { return { sub, ...account }; } };
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
});

let nextLogin = null;
const forged = process.env.OIDC_FORGE_JWKS === '1' ? newKey() : null;

provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && ctx.path === '/_test/login') {
    nextLogin = ctx.query.sub;
    ctx.body = { next: nextLogin };
    return;
  }
  if (forged && ctx.path === '/jwks') {
    const { d, p, q, dp, dq, qi, ...pub } = forged;
    ctx.body = { keys: [{ ...pub, kid: jwks.keys[0].kid }] };
    return;
  }
  if (ctx.method === 'GET' && ctx.path.startsWith('/interaction/')) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const accountId = nextLogin;
    const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    await provider.interactionFinished(
      ctx.req, ctx.res,
      { login: { accountId }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
    ctx.respond = false;
    return;
  }
  await next();
});

provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
