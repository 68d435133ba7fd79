// {{ name }}: a small HTTP service on Node.js's http module (template `node`).
// GET / -> a greeting; GET /up -> 200 "ok" (the health check).
"use strict";
const http = require("http");
const port = Number(process.env.PORT || 8080);
http
  .createServer((req, res) => {
    if (req.url === "/up") {
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end("ok\n");
    } else if (req.url === "/") {
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end("hello from {{ name }}\n");
    } else {
      res.writeHead(404);
      res.end();
    }
  })
  .listen(port, "0.0.0.0");
