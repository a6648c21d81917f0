// Starts fauxqs 1.9.2 through its library entry (its CLI ignores
// FAUXQS_LOGGER), with request logging off, on 127.0.0.1 and the port given
// as the first argument (0: a free port). It prints "port=N" on stdout once
// listening, and exits when stdin closes, so that it dies with its parent.
import { buildApp } from "fauxqs";

const port = Number.parseInt(process.argv[2] ?? "0", 10);
const region = process.argv[3] ?? "us-east-1";
const app = buildApp({ logger: false, host: "localhost", defaultRegion: region });
await app.listen({ port, host: "127.0.0.1" });
process.stdout.write(`port=${app.server.address().port}\n`);

const stop = async () => {
  try {
    await app.close();
  } finally {
    process.exit(0);
  }
};
process.stdin.on("end", stop);
process.stdin.on("error", stop);
process.stdin.resume();
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
