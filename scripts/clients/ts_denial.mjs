// The official TypeScript MCP SDK's client (its default Streamable HTTP
// transport) calling a tool the policy denies, then one it allows, on the
// same session. Prints one JSON line per step: what the application sees
// (the call's result, or the error's class, code and message) and how often
// the client's onerror fired (applications commonly treat that as a broken
// connection). The SDK comes from MCP_TS_SDK (a path to
// @modelcontextprotocol/sdk, as scripts/test installs it).
// Usage: MCP_TS_SDK=... node ts_denial.mjs URL TOKEN DENIED_TOOL ALLOWED_TOOL
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const [url, token, denied, allowed] = process.argv.slice(2);
const sdk = process.env.MCP_TS_SDK;
const load = (p) => import(pathToFileURL(join(sdk, "dist/esm", p)).href);
const { Client } = await load("client/index.js");
const { StreamableHTTPClientTransport } = await load("client/streamableHttp.js");

const out = (o) => console.log(JSON.stringify(o));
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "denial-probe", version: "1.0.0" });
let onerror = 0;
client.onerror = () => {
  onerror += 1;
};
await client.connect(transport);
out({ step: "protocol", version: transport.protocolVersion ?? null });

const call = async (step, name) => {
  try {
    const r = await client.callTool({ name, arguments: { message: "still here" } });
    out({ step, ok: true, isError: r.isError ?? false, text: r.content?.[0]?.text ?? null });
  } catch (e) {
    out({ step, ok: false, type: e?.constructor?.name, code: e?.code ?? null, message: String(e?.message) });
  }
};
await call("denied", denied);
const afterDenial = onerror;
await call("allowed", allowed);
out({ step: "onerror", afterDenial, total: onerror });
await client.close();
