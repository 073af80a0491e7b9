// A web app in another language (Node 18+, no dependency) using the HTTP API of `krtc-rec serve`:
// start a recording, wait until it records, stop it.
//
//   KRTC_API_URL=http://127.0.0.1:8080 KRTC_API_TOKEN=token-of-app-1 node examples/client.mjs math-101
const base = process.env.KRTC_API_URL ?? "http://127.0.0.1:8080";
const token = process.env.KRTC_API_TOKEN;
const lesson = process.argv[2] ?? "math-101";

async function call(method, path, body, headers = {}) {
  const response = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) {
    // One error body for every failure: {"error": {"code", "message", "fields"}}.
    const { code, message, fields } = data.error;
    throw new Error(`${response.status} ${code}: ${message} ${JSON.stringify(fields)}`);
  }
  return data;
}

const start = {
  appId: "my-app",
  cname: lesson,
  uid: "900001",
  mode: "mix",
  clientRequest: {
    recordingConfig: { maxIdleTime: 120, streamTypes: 2 },
    recordingFileConfig: { avFileType: ["hls"] },
    storageConfig: { profile: "recordings" },
  },
  maxDurationS: 7200,
};
// The same Idempotency-Key again (a retry after a timeout) gives back the same session.
const session = await call("POST", "/v1/recordings", start, { "Idempotency-Key": `lesson-${lesson}` });
console.log(`started ${session.id} (${session.phase})`);

let current = session;
for (let i = 0; i < 100 && current.phase !== "recording"; i++) {
  await new Promise((resolve) => setTimeout(resolve, 200));
  current = await call("GET", `/v1/recordings/${session.id}`);
}
console.log(`${current.id} is ${current.phase} (sid ${current.sid})`);

const stopped = await call("POST", `/v1/recordings/${session.id}/stop`);
console.log(`stop requested for ${stopped.id}`);
