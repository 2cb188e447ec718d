// Bun's native (lsquic) HTTP/3 client, run WITHOUT our preload.
// usage: bun bun_native_fetch.mjs URL [FILE_TO_POST]
// prints: <status> <body length> <sha256 hex>
const [url, postFile] = process.argv.slice(2);
const init = { protocol: "http3", tls: { rejectUnauthorized: false } };
if (postFile) Object.assign(init, { method: "POST", body: await Bun.file(postFile).arrayBuffer() });
const res = await fetch(url, init);
const body = new Uint8Array(await res.arrayBuffer());
const hash = new Bun.CryptoHasher("sha256").update(body).digest("hex");
console.log(res.status, body.length, hash);
