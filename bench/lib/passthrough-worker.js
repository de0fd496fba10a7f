// Baseline for the Worker numbers: the thinnest possible proxy under the same
// `wrangler dev`, forwarding every request to nginx (env.UPSTREAM) and
// streaming the body back. eris's Worker cannot be faster than this here; the
// gap between the two is the eris Worker's own cost (auth, KV, headers, logs).
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const res = await fetch(env.UPSTREAM + url.pathname + url.search, { method: request.method, cache: 'no-store' });
    return new Response(res.body, { status: res.status, headers: res.headers });
  },
};
