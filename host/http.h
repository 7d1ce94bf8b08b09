/*
 * http.h: the HTTP/1.1 server core, on GNU libmicrohttpd.
 *
 * It owns the listening socket, the pool of worker threads (each running
 * its own event loop), keep-alive,
 * request bodies and their size limit, time-outs, the connection limit, the
 * access log, reload watching and the graceful stop. It knows nothing about
 * Lua: each request goes to an http_app. Workers (the app's per-thread
 * state) are opened and closed on the thread that calls http_serve, one per
 * pool thread, and each is then handed to exactly one pool thread, the only
 * one that uses it: a worker is never used by two threads.
 */
#ifndef TODOHOST_HTTP_H
#define TODOHOST_HTTP_H

#include <stddef.h>

/* A request header; name in lower case. */
typedef struct http_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} http_header;

/* One request, as the app sees it. Every pointer is valid only during the
 * http_app.handle call. */
typedef struct http_request {
  const char *method;      /* "GET", "POST", ... */
  const char *path;        /* percent-decoded, without the query */
  const char *query;       /* raw query string after '?', "" when none */
  size_t query_len;
  const http_header *headers;   /* in the order received */
  size_t nheaders;
  const char *body;        /* NULL when the request had no body bytes */
  size_t body_len;
} http_request;

/* Sets the response: status (200..599) and body (copied; NULL = empty).
 * Replaces any earlier reply for this request. Returns 0, or -1 when out of
 * memory or the status is out of range. */
int http_reply(http_request *req, int status, const char *body, size_t len);

/* Adds a header to the reply made by http_reply (name and value copied).
 * Content-Length is computed by the server: setting it is ignored. Returns 0,
 * or -1 when there is no reply yet or the header is invalid (CR, LF, or a
 * bad name). */
int http_reply_header(http_request *req, const char *name, const char *value);

/* handle's answer when the request is not done yet (see http_app). */
#define HTTP_PENDING 1

/* What the server runs. open and close run on the thread calling
 * http_serve (before listening, and after each change when reloading);
 * handle, fd and tick run on the pool thread the worker was handed to.
 *
 * A request can be suspended until something of the app's own has
 * happened: handle returns HTTP_PENDING, and whenever it is ready the app
 * passes it to http_finish (from tick, or from handle answering another
 * request). The server knows nothing of what the app waits for: it
 * watches the one descriptor the app names, and calls tick after each
 * round of network events. */
typedef struct http_app {
  /* A new worker, or NULL with a one-line reason in err. */
  void *(*open)(void *ud, char *err, size_t errsize);
  /* Frees a worker (on the thread that opened it). */
  void (*close)(void *worker);
  /* Answers one request with http_reply (+ http_reply_header). Returns 0;
   * or -1 with a one-line cause in err: the client gets 500
   * {"detail":"Internal Server Error"} and the cause is logged; or
   * HTTP_PENDING: the request is suspended, and req stays valid until it
   * is passed to http_finish. */
  int (*handle)(void *worker, http_request *req, char *err, size_t errsize);
  void *ud;
  /* Optional (NULL when handle never returns HTTP_PENDING). fd: the
   * descriptor to watch for reading on the worker's behalf, or -1 (asked
   * again each round: it may change). tick: called after each round of
   * events (ready: that descriptor was readable); returns how many ms the
   * thread may sleep before calling it again, or -1 for no limit. */
  int (*fd)(void *worker);
  int (*tick)(void *worker, int ready);
  /* Optional: the server stops and will not wait any longer (its time-out
   * passed, or a second signal came): make what the suspended requests
   * wait for fail, so that they end (through tick and http_finish) now. */
  void (*abort)(void *worker);
} http_app;

/* Ends a suspended request; rc and err mean what handle's would have.
 * Called on the request's pool thread only. */
void http_finish(http_request *req, int rc, const char *err);

typedef struct http_config {
  const char *host;            /* name or address to listen on */
  unsigned port;               /* 0: any free port (see on_ready) */
  unsigned workers;            /* pool threads, >= 1 */
  size_t max_body;             /* larger bodies get 413 */
  int access_log;              /* one line per request to stderr: 1 text, 2 a JSON
                                  object ({"time","method","path","status","ms"}) */
  int reload;                  /* watch watch_dirs; on a change, open new workers and
                                  switch to them if they all open */
  const char *const *watch_dirs; /* NULL-terminated; *.lua files are watched */
  unsigned timeout;            /* seconds a request may take to come in whole from
                                  the connection's start or the previous answer
                                  (idle and slowloris), and an answer to be sent
                                  (a slow reader); 0: no limit */
  unsigned max_connections;    /* concurrent connections, in total (lowered, with
                                  a warning, to what the open-file limit allows) */
  unsigned max_per_ip;         /* concurrent connections per client address, 0: no limit */
  /* Called once listening, with the bound port (may be NULL). */
  void (*on_ready)(unsigned port, void *ud);
  void *ready_ud;
} http_config;

/* Opens the workers, listens and serves until SIGINT or SIGTERM (or
 * http_stop()): then stops accepting (connections the kernel had queued
 * on the listener are still taken and answered), lets requests in flight finish (up to
 * `timeout` seconds), closes the workers and returns 0. Returns -1 with a
 * one-line reason in err when it cannot start (port in use, bad host, the
 * app does not open). SIGINT and SIGTERM are blocked in the
 * calling thread while it serves; threads the caller made itself should
 * block them too. One server at a time. */
int http_serve(const http_config *cfg, const http_app *app, char *err, size_t errsize);

/* Asks a running http_serve to stop (async-signal-safe; from any thread). */
void http_stop(void);

/* Percent-decodes s[0..len) into out (at least len + 1 bytes), turning '+' into
 * a space first (form/query encoding). Returns the decoded length. */
size_t http_unescape(const char *s, size_t len, char *out);

#endif
