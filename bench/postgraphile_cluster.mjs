// PostGraphile 5 on N processes sharing one port (node:cluster), for batchgraph's read bench.
import cluster from "node:cluster";
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";

const [, , connectionString, port, workers] = process.argv;
if (cluster.isPrimary && Number(workers) > 1) {
  for (let i = 0; i < Number(workers); i++) cluster.fork();
} else {
  const preset = {
    extends: [PostGraphileAmberPreset],
    pgServices: [makePgService({ connectionString, schemas: ["public"] })],
    grafserv: { port: Number(port), host: "127.0.0.1" },
  };
  const serv = postgraphile(preset).createServ(grafserv);
  const server = createServer();
  await serv.addTo(server);
  server.listen(Number(port), "127.0.0.1");
}
