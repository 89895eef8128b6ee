// A certified OpenID Connect provider (panva's oidc-provider) for the single sign-on tests,
// configured the way providers are run in practice: PKCE required for every client, scope
// claims (e-mail, name) only at the userinfo endpoint (the library's default for the code flow).
// A tiny login page replaces its dev interactions: one button per test user, every time.
//
// Environment: OIDC_PROVIDER_MODULE (path to oidc-provider's lib/index.js), OIDC_PORT,
// OIDC_CLIENTS (JSON list of {client_id, client_secret, redirect_uris}), OIDC_USERS (JSON
// object: subject -> claims). Prints "listening <issuer>" once it accepts connections.
import { generateKeyPairSync } from 'node:crypto';
import { pathToFileURL } from 'node:url';

const { default: Provider, interactionPolicy } = await import(
  pathToFileURL(process.env.OIDC_PROVIDER_MODULE).href
);
const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;
const users = JSON.parse(process.env.OIDC_USERS);
const clients = JSON.parse(process.env.OIDC_CLIENTS).map((client) => ({
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  ...client,
}));

// Always show the login page (the session of an earlier test user is never reused), but let
// the authorization resume once this interaction logged someone in.
const policy = interactionPolicy.base();
policy.get('login').checks.add(
  new interactionPolicy.Check('always', 'the test picks a user every time', (ctx) =>
    ctx.oidc.result?.login ? interactionPolicy.Check.NO_NEED_TO_PROMPT
      : interactionPolicy.Check.REQUEST_PROMPT),
);

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'test', use: 'sig', alg: 'RS256' }] },
  cookies: { keys: ['gptstudio-sso-tests'] },
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  features: { devInteractions: { enabled: false } },
  interactions: { policy, url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    if (!users[sub]) return undefined;
    return { accountId: sub, claims: async () => ({ sub, ...users[sub] }) };
  },
});

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function body(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString());
}

provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([\w-]+)(\/login)?$/);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (ctx.method === 'GET' && !match[2]) {
    const buttons = Object.keys(users).map((sub) => `<form method="post" action="/interaction/${
      escape(details.uid)}/login"><input type="hidden" name="sub" value="${escape(sub)}">`
      + `<button type="submit">${escape(sub)}</button></form>`);
    ctx.type = 'html';
    ctx.body = `<!doctype html><title>Test provider: log in</title><h1>Log in as</h1>${
      buttons.join('')}`;
    return undefined;
  }
  if (ctx.method === 'POST' && match[2]) {
    const sub = (await body(ctx.req)).get('sub');
    if (!users[sub]) ctx.throw(400, 'unknown test user');
    const grant = new provider.Grant({ accountId: sub, clientId: details.params.client_id });
    grant.addOIDCScope(String(details.params.scope));
    const grantId = await grant.save();
    const target = await provider.interactionResult(
      ctx.req, ctx.res, { login: { accountId: sub }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
    ctx.status = 303;
    ctx.redirect(target);
    return undefined;
  }
  return ctx.throw(405);
});

provider.listen(port, '127.0.0.1', () => console.log(`listening ${issuer}`));
