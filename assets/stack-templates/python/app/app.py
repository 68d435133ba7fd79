"""{{ name }}: a small HTTP service on the Python standard library (template `python`).

GET /    -> a greeting
GET /up  -> 200 "ok" (the health check)
"""
import http.server
import os


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/up":
            body = b"ok\n"
        elif self.path == "/":
            body = b"hello from {{ name }}\n"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
